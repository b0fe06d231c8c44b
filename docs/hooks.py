"""mkdocs hook: the repository's own Markdown and results outside `docs/` (the benchmark results with their plots,
the integrations' READMEs, ARCHITECTURE.md, CHANGELOG.md) become part of the site at their repository paths, so
pages link to them as the repository does and nothing is copied; a page includes a section of README.md by a line
`<!-- include README.md#NAME -->` (the README marks it `<!-- section:NAME -->` ... `<!-- /section:NAME -->`),
so the landing page and the README's quick start are written once; the footer shows the package's version. A
generated page, `results.md`, links every result page, so that each one is reached from the navigation however many
runs are added."""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("ARCHITECTURE.md", "CHANGELOG.md", "benchmarks", "integrations/timm/README.md",
          "integrations/evaluate/shift_consistency/README.md")
SUFFIXES = {".md", ".png", ".json", ".svg"}
RESULTS = "benchmarks/results"
RESULT_PAGES = "results.md"
INCLUDE = re.compile(r"^<!-- include README\.md#([\w-]+) -->$", re.M)
MARKER = re.compile(r"^<!-- /?section:[\w-]+ -->\n", re.M)
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s#]+)(#[^)\s]*)?\)")


def version() -> str:
    """`augshift.__version__`, read from the package's source without importing it."""
    found = re.search(r'^__version__ = "([^"]+)"', (ROOT / "augshift" / "__init__.py").read_text(), re.M)
    if not found:
        raise ValueError("augshift/__init__.py has no __version__ = \"...\" line")
    return found.group(1)


def readme_section(name: str) -> str:
    """The Markdown between `<!-- section:NAME -->` and `<!-- /section:NAME -->` in README.md, without the
    markers of the sections inside it."""
    found = re.search(rf"<!-- section:{name} -->\n(.*?)<!-- /section:{name} -->", (ROOT / "README.md").read_text(),
                      re.S)
    if not found:
        raise ValueError(f"README.md has no section {name!r} (<!-- section:{name} --> ... <!-- /section:{name} -->)")
    return MARKER.sub("", found.group(1))


def relinked(markdown: str, source: str, page: str) -> str:
    """The relative links of `markdown`, written in the repository file `source`, made relative to `page` (a
    path on the site): a page of `docs/` is on the site at its path there, every other shared file at its
    repository path."""
    def target(match: re.Match) -> str:
        path = match.group(2)
        if re.match(r"^[a-z]+:", path) or path.startswith("/"):
            return match.group(0)
        in_repository = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        on_site = in_repository[len("docs/"):] if in_repository.startswith("docs/") else in_repository
        return f"{match.group(1)}{posixpath.relpath(on_site, posixpath.dirname(page) or '.')}{match.group(3) or ''})"
    return LINK.sub(target, markdown)


def on_config(config):
    config["copyright"] = f"augshift {version()} · Apache-2.0"
    return config


def on_files(files: Files, config) -> Files:
    for entry in SHARED:
        path = ROOT / entry
        for found in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            if found.suffix in SUFFIXES:
                files.append(File(str(found.relative_to(ROOT)), str(ROOT), config["site_dir"],
                                  config["use_directory_urls"]))
    files.append(File.generated(config, RESULT_PAGES, content=result_pages()))
    return files


def result_pages() -> str:
    """The page that links every result page of `benchmarks/results`, by benchmark, each under its own title."""
    lines = ["# Every result page", "",
             f"Each Markdown file under `{RESULTS}`, by benchmark; the [benchmarks page](benchmarks/README.md) says "
             "what each run measured and which ones the documentation quotes.", ""]
    pages = sorted((ROOT / RESULTS).rglob("*.md"))
    for benchmark in sorted({page.relative_to(ROOT / RESULTS).parts[0] for page in pages}):
        lines += [f"## {benchmark}", "", "| page | title |", "|---|---|"]
        for page in pages:
            path = page.relative_to(ROOT / RESULTS)
            if path.parts[0] == benchmark:
                title = next((line.lstrip("# ").strip() for line in page.read_text().splitlines()
                              if line.startswith("# ")), path.stem)
                lines.append(f"| [`{path}`]({RESULTS}/{path.as_posix()}) | {title.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    source = page.file.src_uri
    if page.file.abs_src_path and not Path(page.file.abs_src_path).is_relative_to(Path(config["docs_dir"]).resolve()):
        markdown = relinked(markdown, source, source)  # a shared file: its links to docs/ pages
    return INCLUDE.sub(lambda m: relinked(readme_section(m.group(1)), "README.md", source), markdown)
