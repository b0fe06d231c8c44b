"""The copy-paste examples of the README and the documentation pages run as written."""
import ast
import builtins
import doctest
import io
import re
import sys
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


def check_printed(claim: str, values: tuple, text: str) -> None:
    """What a page says a print line prints (its ``# comment``), against what it printed: a Python literal (or
    ``-> literal``) exactly, a repr with ``...`` as doctest's ELLIPSIS, "a rate in [0, 1]", "the N channels"."""
    claim = claim.removeprefix("->").strip()
    rate, channels = re.match(r"a rate in \[0, 1\]", claim), re.match(r"the (\d+) channels", claim)
    if rate:
        assert len(values) == 1 and 0.0 <= float(values[0]) <= 1.0, f"not a rate in [0, 1]: {text}"
    elif channels:
        top = values[0]
        assert len(top) == int(channels.group(1)) == len(set(top)) and all(isinstance(c, int) for c in top), text
    elif "..." in claim:
        assert doctest.OutputChecker().check_output(claim + "\n", text, doctest.ELLIPSIS), f"{text!r} is not {claim!r}"
    else:
        try:
            ast.literal_eval(claim)
        except (ValueError, SyntaxError):
            raise AssertionError(f"the comment of a print line says what it prints in a form no check reads: {claim!r}")
        assert text.strip() == claim, f"printed {text.strip()!r}, the page says {claim!r}"


def commented_prints(code: str) -> dict[int, str]:
    """``{line number: comment}`` of the block's print lines that say what they print."""
    return {number: line.split("#", 1)[1].strip() for number, line in enumerate(code.splitlines(), 1)
            if re.match(r"\s*print\(", line) and "#" in line}


@pytest.mark.parametrize("heading,code", readme_blocks("python", DOCUMENTS), ids=lambda v: v if len(v) < 40 else None)
def test_readme_python_block_runs_and_prints_what_the_page_says(heading, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    filename, printed = f"README.md: {heading}", {}

    def recording_print(*values, **options):
        caller = sys._getframe(1)
        if caller.f_code.co_filename == filename:
            out = io.StringIO()
            builtins.print(*values, **{**options, "file": out})
            printed[caller.f_lineno] = (values, out.getvalue())
        builtins.print(*values, **options)

    exec(compile(code, filename, "exec"), {"__name__": "__readme__", "print": recording_print})
    for number, claim in commented_prints(code).items():
        assert number in printed, f"line {number} of {heading!r} printed nothing"
        check_printed(claim, *printed[number])


@pytest.mark.parametrize("claim, values, text", [
    ("True", (False,), "False"),
    ("-> 3", (4,), "4"),
    ("a rate in [0, 1], beside eval_loss", (1.5,), "1.5"),
    ("the 2 channels that move most", ([4, 4],), "[4, 4]"),
    ("{'loss': ..., 'criterion': ...}", ({"loss": 1.0},), "{'loss': 1.0}"),
    ("some words the test cannot read", (1,), "1"),
])
def test_a_print_that_does_not_print_what_the_page_says_fails(claim, values, text):
    with pytest.raises(AssertionError):
        check_printed(claim, values, text)


def test_the_readme_is_a_landing_page_and_the_pages_speak_of_the_product():
    assert len(README.read_text().splitlines()) <= 200
    wording = re.compile(r"\b(lent|lease|this session|device call)\b", re.I)
    found = [f"{page.name}: {line}" for page in DOCUMENTS for line in page.read_text().splitlines() if wording.search(line)]
    assert not found, found
