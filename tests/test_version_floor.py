"""The declared timm floor is real: in a scratch environment holding exactly that timm, every module imports and the
timm integration's tests pass (timm.task, which AugShiftTask builds on, arrived in 1.0.23 and took its present API,
``trainable_module``, in 1.0.27)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORT_ALL = """
import importlib, pkgutil, augshift, timm
assert timm.__version__ == {version!r}, timm.__version__
names = [m.name for m in pkgutil.walk_packages(augshift.__path__, "augshift.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def timm_floor() -> str:
    return re.search(r'"timm>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


@pytest.mark.slow
def test_every_module_works_with_the_declared_timm_floor(tmp_path):
    venv = tmp_path / "floor"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", f"timm=={timm_floor()}"],
                             capture_output=True, text=True)
    if install.returncode:
        pytest.skip(f"cannot install timm=={timm_floor()} here (no package index?): {install.stderr[-300:]}")
    imported = subprocess.run([str(python), "-c", IMPORT_ALL.format(version=timm_floor())], capture_output=True,
                              text=True, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert int(imported.stdout.split()[-1]) > 40
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                            "tests/test_timm_integration.py", "tests/test_registry.py"], capture_output=True, text=True,
                           cwd=ROOT)
    assert tests.returncode == 0, tests.stdout[-3000:]


TRANSFORMERS_FLOOR_SET = ("huggingface_hub==0.36.0", "tokenizers==0.22.1", "datasets==3.6.0")  # what its floor needs


def transformers_floor() -> str:
    return re.search(r'"transformers>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


@pytest.mark.slow
def test_the_trainer_works_with_the_declared_transformers_floor(tmp_path):
    """Releases before ``loss_is_scaled_for_ga`` divide a custom loss over gradient accumulation only when the model
    takes no loss kwargs: the accumulation test and the trainer's tests run against the floor itself."""
    venv = tmp_path / "floor"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                              f"transformers=={transformers_floor()}", *TRANSFORMERS_FLOOR_SET],
                             capture_output=True, text=True)
    if install.returncode:
        pytest.skip(f"cannot install transformers=={transformers_floor()} here (no package index?): "
                    f"{install.stderr[-300:]}")
    version = subprocess.run([str(python), "-c", "import transformers; print(transformers.__version__)"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout.strip() == transformers_floor(), version.stderr[-2000:]
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                            "tests/test_transformers.py", "-k", "trainer or gradient_accumulation"],
                           capture_output=True, text=True, cwd=ROOT)
    assert tests.returncode == 0, tests.stdout[-3000:]
