"""A core one can depend on: every public name imports on its own, the core loads nothing heavy, the layers and
their contracts hold (import-linter), no benchmark script imports another in a circle, and a missing optional
package is one line naming its extra."""
from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = (
    "augshift", "augshift.data", "augshift.distributed", "augshift.engine", "augshift.models", "augshift.position",
    "augshift.protocols", "augshift.reporting", "augshift.seeding", "augshift.integrations.accelerate",
    "augshift.integrations.evaluate", "augshift.integrations.lightning", "augshift.integrations.timm",
    "augshift.integrations.transformers",
)
HEAVY = ("timm", "torchvision", "PIL", "datasets", "transformers", "accelerate", "evaluate", "matplotlib", "yaml",
         "lightning", "submitit")
# each name imported by a child forked from a process that has imported torch and the optional packages, but nothing
# of augshift: the child's import of augshift starts from scratch, as in a fresh interpreter, at a fraction of the cost
EACH_ALONE = """
import os, sys, importlib
import torch, timm, torchvision, transformers, datasets, evaluate, accelerate, matplotlib, lightning  # shared
assert not any(name == "augshift" or name.startswith("augshift.") for name in sys.modules)
failed = []
for module, name in {pairs!r}:
    pid = os.fork()
    if pid == 0:
        try:
            exec(f"from {{module}} import {{name}}", {{}})
        except BaseException as error:
            print(f"{{module}}.{{name}}: {{type(error).__name__}}: {{error}}", flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(f"{{module}}.{{name}}")
print("FAILED", failed)
"""


def public_names() -> list[tuple[str, str]]:
    return [(module, name) for module in PUBLIC_MODULES for name in importlib.import_module(module).__all__]


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, **kwargs)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the batched fresh imports fork")
def test_every_public_name_imports_on_its_own_in_a_fresh_interpreter():
    pairs = public_names()
    assert len(pairs) > 40 and ("augshift", "ChannelPermutation") in pairs
    result = run_python(EACH_ALONE.format(pairs=pairs))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("FAILED []"), result.stdout[-3000:]


def test_every_name_an_init_imports_is_one_it_exports():
    """A package's ``__init__`` imports what it exports (``__all__``) and nothing else (typing names, private helpers
    and the submodules whose import registers something aside)."""
    extra = {}
    for module in PUBLIC_MODULES:
        path = Path(importlib.import_module(module).__file__)
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module not in ("__future__", "typing") and not (node.level and node.module is None)
                    for alias in node.names if not (alias.asname or alias.name).startswith("_")}
        exported = set(importlib.import_module(module).__all__)
        if imported - exported:
            extra[module] = sorted(imported - exported)
    assert extra == {}


def test_the_core_names_load_nothing_heavy():
    core = [name for module, name in public_names() if module == "augshift"]
    result = run_python(f"import sys, augshift\nfrom augshift import {', '.join(core)}\n"
                        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
                        "print(sorted(m for m in sys.modules if m.startswith(('augshift.models', 'augshift.data', "
                        "'augshift.engine', 'augshift.reporting', 'augshift.position', 'augshift.cli'))))")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]
    importtime = run_python("from augshift import AugShift", env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in importtime.stderr.splitlines() if "|" in line}
    assert "torch" in loaded and not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_augshift_shift_is_the_function_and_augshift_shifts_the_module():
    result = run_python("import augshift.shifts as module, augshift\n"
                        "print(type(module).__name__, module.RandomShift.__name__, callable(augshift.shift), "
                        "augshift.shift is module.shift)")
    assert result.stdout.split() == ["module", "RandomShift", "True", "True"], result.stderr[-2000:]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--config", str(ROOT / ".importlinter")], capture_output=True,
                          text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """The packages the contracts read, copied: a test may break the copy."""
    copy = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.md")
    for folder in ("augshift", "integrations", "benchmarks/sweep"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=ignore)
    return copy


def test_the_import_contracts_hold(source_copy):
    result = lint_imports(source_copy)
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("module, line, broken", [
    ("augshift/permute.py", "from .models.adapter import default_layer", "The layers point one way"),
    ("augshift/shifts.py", "import timm", "The core imports only torch and numpy"),
    ("augshift/models/zoos/timm.py", "from ..adapter import default_layer", "No import circle"),
    ("integrations/timm/task.py", "from ..transformers import trainer", "The integrations are independent"),
    ("augshift/engine/config.py", "import sweep", "The library never imports the benchmark harness"),
])
def test_each_contract_fails_when_broken(source_copy, module, line, broken):
    path = source_copy / module
    original = path.read_text()
    try:
        path.write_text(original.replace("from __future__ import annotations\n",
                                         f"from __future__ import annotations\n{line}  # noqa\n", 1))
        result = lint_imports(source_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout.split(broken, 1)[1].split("\n", 1)[0]


def test_no_benchmark_script_imports_another_in_a_circle():
    scripts = {path.stem: path for path in (ROOT / "benchmarks").glob("*.py")}
    graph = {name: {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                    for alias in (node.names if isinstance(node, ast.Import) else [])} |
                   {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}
             for name, path in scripts.items()}
    graph = {name: sorted(found & scripts.keys() - {name}) for name, found in graph.items()}
    assert graph["invariance"] and graph["throughput"]  # the graph is read: scripts do import their neighbours
    seen, done = [], set()

    def visit(name: str) -> None:
        assert name not in seen, f"import circle: {' -> '.join([*seen[seen.index(name):], name])}"
        if name in done:
            return
        seen.append(name)
        for other in graph[name]:
            visit(other)
        seen.pop()
        done.add(name)

    for name in graph:
        visit(name)


BLOCK = textwrap.dedent("""
    import sys
    class Missing:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Missing())
""")


@pytest.mark.parametrize("blocked, command, extra", [
    ("matplotlib", ["-m", "augshift.cli", "demo", "--out", "{tmp}/demo"], "plots"),
    ("accelerate", ["-m", "augshift.integrations.accelerate.train", "--help"], "accelerate"),
    ("transformers", ["-m", "augshift.integrations.transformers.run_image_classification", "--help"], "transformers"),
    ("datasets", ["-m", "augshift.cli", "consistency", "--model", "resnet18", "--data", "{tmp}", "--out", "{tmp}/c"],
     "data"),
])
def test_a_missing_extra_is_one_line_naming_it_before_any_work(tmp_path, blocked, command, extra):
    (tmp_path / "sitecustomize.py").write_text(BLOCK.format(blocked=(blocked,)))
    args = [part.format(tmp=tmp_path) for part in command]
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f'pip install "augshift[{extra}]"' in lines[0] and blocked in lines[0]
    assert not (tmp_path / "demo").exists() and not (tmp_path / "c").exists()  # refused before any work


def test_importing_the_transformers_integration_without_transformers_is_an_import_error_naming_the_extra(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK.format(blocked=("transformers",)))
    code = "from augshift.integrations.transformers import AugShiftTrainer"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("augshift.errors.MissingExtraError: ")
    assert 'pip install "augshift[transformers]"' in result.stderr.splitlines()[-1]
