"""The pages a reader follows: every code line fits the page (88 columns), every guide has sections for the table
of contents, the site's landing page is the README's install and quick start (and no developer set-up), the Results
page opens with its results and folds its commands, and the site shows the version the changelog starts with."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import DOCUMENTS

import augshift

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = 88
RESULTS = ROOT / "benchmarks" / "README.md"
PAGES = (*DOCUMENTS, RESULTS, ROOT / "ARCHITECTURE.md", ROOT / "CHANGELOG.md", ROOT / "integrations" / "timm" / "README.md",
         ROOT / "integrations" / "evaluate" / "shift_consistency" / "README.md")  # every Markdown page of the site
FENCE = re.compile(r"^\s*(```|~~~)")  # a block closes at a fence of the same kind
DEVELOPER_SET_UP = ("../shared/data", "tests/conftest.py", ".ci/run", "python -m pytest")


def code_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line inside a fenced code block."""
    found, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        opened = FENCE.match(line)
        if opened and fence in (None, opened.group(1)):
            fence = None if fence else opened.group(1)
        elif fence:
            found.append((number, line))
    return found


def too_wide(pages) -> list[str]:
    return [f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{number}: {len(line)} columns"
            for page in pages for number, line in code_lines(page.read_text()) if len(line) > COLUMNS]


def test_code_lines_are_found_and_measured(tmp_path):
    page = tmp_path / "page.md"  # prose of any width; a ~~~ inside a ``` block is code; 88 columns fit, 89 do not
    page.write_text("\n".join(["text " * 40, "```bash", "short", "x" * COLUMNS, "~~~", "```", "y" * 200, "~~~",
                               "z" * (COLUMNS + 1), "~~~"]) + "\n")
    assert [number for number, _ in code_lines(page.read_text())] == [3, 4, 5, 9]
    assert too_wide([page]) == [f"{page}:9: {COLUMNS + 1} columns"]


def test_every_code_line_fits_88_columns():
    assert not too_wide(PAGES), "wrap commands with \\ and shorten comments:\n" + "\n".join(too_wide(PAGES))


@pytest.mark.parametrize("guide", sorted((ROOT / "docs" / "guides").glob("*.md")), ids=lambda p: p.stem)
def test_every_guide_has_sections(guide):
    sections = re.findall(r"^## .+$", guide.read_text(), re.M)
    assert len(sections) >= 2, f"{guide.name}: give it ## sections the table of contents can show"


def readme_sections() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    starts = set(re.findall(r"^<!-- section:([\w-]+) -->$", readme, re.M))
    assert starts == set(re.findall(r"^<!-- /section:([\w-]+) -->$", readme, re.M)), "a README section is not closed"
    return starts


def test_pages_include_readme_sections_that_exist():
    included = {(page.name, name) for page in (ROOT / "docs").rglob("*.md")
                for name in re.findall(r"^<!-- include README\.md#([\w-]+) -->$", page.read_text(), re.M)}
    assert {name for _, name in included} <= readme_sections()
    landing = {name for page, name in included if page == "index.md"}
    assert {"install", "quickstart"} <= landing and "setup" not in landing


def test_the_changelog_starts_with_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert releases and releases[0] in ("Unreleased", augshift.__version__), releases[:2]
    assert augshift.__version__ in releases, f"CHANGELOG.md has no section for {augshift.__version__}"
    for section in ("Added", "Changed", "Fixed"):
        assert f"### {section}" in changelog


class Page(HTMLParser):
    """The text of a built page's article, its h1, its h2s, and the order of its tables and code blocks (and
    whether each code block is inside a <details>)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.details = 0
        self.events: list[tuple[str, bool]] = []  # ("table" | "pre", inside a details)
        self.headings: dict[str, list[str]] = {"h1": [], "h2": []}
        self.text: list[str] = []
        self.footer: list[str] = []
        self.in_article = self.in_footer = 0

    def handle_starttag(self, tag, attrs):
        classes = dict(attrs).get("class") or ""
        if tag == "article":
            self.in_article += 1
        if tag == "footer":
            self.in_footer += 1
        if tag == "details":
            self.details += 1
        if tag in ("table", "pre") and self.in_article:
            self.events.append((tag, self.details > 0))
        if tag in self.headings and self.in_article:
            self.headings[tag].append("")
        self.stack.append(tag if "headerlink" not in classes else "headerlink")

    def handle_endtag(self, tag):
        if tag == "article":
            self.in_article -= 1
        if tag == "footer":
            self.in_footer -= 1
        if tag == "details":
            self.details -= 1
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        if self.in_article:
            self.text.append(data)
            open_heading = next((t for t in reversed(self.stack) if t in self.headings or t == "headerlink"), None)
            if open_heading in self.headings:
                self.headings[open_heading][-1] += data
        if self.in_footer:
            self.footer.append(data)


@pytest.fixture
def site(docs_site: Path) -> Path:
    """The site built once for the session (`conftest.docs_site`)."""
    return docs_site


def page(site: Path, path: str) -> Page:
    parsed = Page()
    parsed.feed((site / path / "index.html").read_text())
    return parsed


def nav_title(path: str) -> str:
    found = re.search(rf"^\s*- ([^:\n]+): {re.escape(path)}$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert found, f"mkdocs.yml has no nav entry for {path}"
    return found.group(1)


def test_the_landing_page_is_the_readme_quick_start(site):
    landing = page(site, "")
    text = "".join(landing.text)
    readme = (ROOT / "README.md").read_text()
    for name in ("install", "quickstart"):
        section = re.search(rf"<!-- section:{name} -->\n(.*?)<!-- /section:{name} -->", readme, re.S).group(1)
        for heading in re.findall(r"^## (.+)$", section, re.M):
            assert heading.replace("`", "") in landing.headings["h2"], heading
    assert all(words in text for words in ("pip install augshift", "augshift-timm", "accelerator.prepare",
                                           "AugShiftTrainer")), "install and the three uses"
    shown = [words for words in DEVELOPER_SET_UP if words in text]
    assert not shown, f"developer set-up on the landing page: {shown} (it belongs on the Development page)"


def test_the_results_page_opens_with_results_and_folds_its_commands(site):
    results = page(site, "benchmarks")
    assert [h.strip() for h in results.headings["h1"]] == [nav_title("benchmarks/README.md")]
    sections = [h.strip() for h in results.headings["h2"]]
    running = sections.index("Running the benchmarks")
    measured = [i for i, heading in enumerate(sections) if "measured" in heading]
    assert measured and measured[0] == 0 and max(measured) < running, f"results first, then how to run: {sections}"
    assert "pre" in [kind for kind, _ in results.events]
    unfolded = [inside for kind, inside in results.events if kind == "pre" and not inside]
    assert not unfolded, f"{len(unfolded)} code block(s) of the Results page are not folded in a <details>"


def test_the_site_shows_the_version_and_the_changelog(site):
    assert f"augshift {augshift.__version__}" in " ".join(page(site, "").footer)
    assert nav_title("CHANGELOG.md") == "Changelog" and (site / "CHANGELOG" / "index.html").is_file()
