"""mkdocs hook: the repository's own Markdown and results outside `docs/` (the benchmark results with their plots,
the integrations' READMEs, ARCHITECTURE.md) become part of the site at their repository paths, so pages link to
them as the repository does and nothing is copied. A generated page, `results.md`, links every result page, so
that each one is reached from the navigation however many runs are added."""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("ARCHITECTURE.md", "benchmarks", "integrations/timm/README.md",
          "integrations/evaluate/shift_consistency/README.md")
SUFFIXES = {".md", ".png", ".json", ".svg"}
RESULTS = "benchmarks/results"
RESULT_PAGES = "results.md"


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
