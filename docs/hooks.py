"""mkdocs hook: the repository's own Markdown and results outside `docs/` (the benchmark results with their plots,
the integrations' READMEs, ARCHITECTURE.md) become part of the site at their repository paths, so pages link to
them as the repository does and nothing is copied."""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("ARCHITECTURE.md", "benchmarks", "integrations/timm/README.md",
          "integrations/evaluate/shift_consistency/README.md")
SUFFIXES = {".md", ".png", ".json", ".svg"}


def on_files(files: Files, config) -> Files:
    for entry in SHARED:
        path = ROOT / entry
        for found in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            if found.suffix in SUFFIXES:
                files.append(File(str(found.relative_to(ROOT)), str(ROOT), config["site_dir"],
                                  config["use_directory_urls"]))
    return files
