"""The copy-paste examples of the README and the documentation pages run as written."""
import re
from pathlib import Path

import pytest
from helpers import DOCUMENTS

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(language: str, pages=(README,)) -> list[tuple[str, str]]:
    """``(heading, code)`` for every fenced block of ``language`` in ``pages`` (the README by default)."""
    blocks, heading = [], ""
    text = "\n".join(page.read_text() for page in pages)
    for match in re.finditer(r"^(#+ [^\n]*)$|^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("# ").strip()
        elif match.group(2) == language:
            blocks.append((heading, match.group(3)))
    return blocks


def test_readme_has_the_two_setup_commands():
    setup = [code.strip() for heading, code in readme_blocks("bash") if heading.startswith("Set-up")]
    assert setup == ['pip install -e ".[all,test]" && augshift demo', 'python -m pytest -m "not slow"']
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'python3 -m pytest -m "not slow"' in ci


@pytest.mark.parametrize("heading,code", readme_blocks("python", DOCUMENTS), ids=lambda v: v if len(v) < 40 else None)
def test_readme_python_block_runs(heading, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md: {heading}", "exec"), {"__name__": "__readme__"})


def test_the_readme_is_a_landing_page_and_the_pages_speak_of_the_product():
    assert len(README.read_text().splitlines()) <= 200
    wording = re.compile(r"\b(lent|lease|this session|device call)\b", re.I)
    found = [f"{page.name}: {line}" for page in DOCUMENTS for line in page.read_text().splitlines() if wording.search(line)]
    assert not found, found
