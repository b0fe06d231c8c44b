"""Docstrings and help texts speak one Markdown dialect: no reStructuredText left where a reader sees it. The built
site's pages, every command's `--help` (read as plain text in a terminal) and every docstring of the package, the
integrations and the benchmark scripts are scanned for what reStructuredText leaves behind."""
from __future__ import annotations

import ast
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = {  # what each looks like once a Markdown renderer (or a terminal) shows it as text
    "a table rule (=====)": re.compile(r"^[ \t]*={4,}", re.M),
    "a literal block marker (:: at line end)": re.compile(r"::[ \t]*$", re.M),
    "a double-backtick literal": re.compile(r"(?<!`)``(?!`)"),
    "a Sphinx role (:class:`...`)": re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|ref):`"),
    "a Sphinx link target (`text <module.path>`)": re.compile(r"`[^`\n]+ <[A-Za-z_]\w*(?:\.\w+)+>`"),
}
BENCHMARK_SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if "def main(" in p.read_text())


def artefacts(text: str) -> list[str]:
    """`kind: the line` for each reStructuredText artefact in `text`."""
    found = []
    for kind, pattern in ARTEFACTS.items():
        for match in pattern.finditer(text):
            start, end = text.rfind("\n", 0, match.start()) + 1, text.find("\n", match.end())
            found.append(f"{kind}: {text[start:end if end >= 0 else None].strip()[:120]!r}")
    return found


def visible_text(page: str) -> str:
    """What a reader of an HTML page sees: its text, scripts and styles left out, entities decoded."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_the_artefact_patterns_find_each_artefact():
    text = "Usage::\n\n  x\n=====  ====\n``code`` and :class:`Foo`\n```python\nfenced\n```\na::b `f <a.f>`"
    kinds = {hit.split(":")[0] for hit in artefacts(text)}  # the fence and a::b are Markdown, not artefacts
    assert kinds == {kind.split(":")[0] for kind in ARTEFACTS}, artefacts(text)
    assert not artefacts("```python\nfenced\n```\n| a | b |\n|---|---|\n`code` and a::b, `<prog>: error: <message>`")


def test_no_built_page_shows_restructuredtext(docs_site):
    found = [f"{page.relative_to(docs_site)}: {hit}" for page in sorted(docs_site.rglob("*.html"))
             for hit in artefacts(visible_text(page.read_text(errors="replace")))]
    assert not found, found[:20]


def help_outputs() -> dict[str, str]:
    """`--help` of `augshift`, of each of its commands, of `augshift-timm` and of every benchmark script, all
    asked in one interpreter (the scripts import torch once)."""
    probe = f"""
import contextlib, importlib, io, json, sys
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from augshift.cli import build_parser, main
from augshift.integrations.timm.launcher import main as timm_main
commands = build_parser()._subparsers._group_actions[0].choices
calls = {{"augshift": (main, [])}}
calls.update({{f"augshift {{name}}": (main, [name]) for name in commands}})
calls["augshift-timm"] = (timm_main, [])
calls.update({{f"benchmarks/{{name}}.py": (importlib.import_module(name).main, []) for name in {BENCHMARK_SCRIPTS!r}}})
outputs = {{}}
for label, (function, argv) in calls.items():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        function([*argv, "--help"])
    outputs[label] = out.getvalue()
print(json.dumps(outputs))
"""
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_help_text_shows_restructuredtext():
    outputs = help_outputs()
    assert {"augshift", "augshift consistency", "augshift-timm", "benchmarks/invariance.py"} <= set(outputs)
    assert all("usage:" in text.lower() for text in outputs.values()), [k for k, v in outputs.items() if not v]
    found = [f"{label}: {hit}" for label, text in outputs.items() for hit in artefacts(text)]
    assert not found, found


def docstrings(path: Path):
    """`(line, docstring)` of a module, its classes and functions."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc


@pytest.mark.parametrize("folder", ["augshift", "integrations", "benchmarks", "docs"])
def test_no_docstring_is_restructuredtext(folder):
    found = [f"{path.relative_to(ROOT)}:{line}: {hit}" for path in sorted((ROOT / folder).rglob("*.py"))
             for line, doc in docstrings(path) for hit in artefacts(doc)]
    assert not found, found[:20]
