"""The documentation site builds without a warning (``mkdocs build --strict``), has an entry for every public object,
and every link between its pages resolves."""
from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers import public_objects

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
ROOT = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """The ids and the links (href / src) of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        for key in ("href", "src"):
            if values.get(key):
                self.links.append(values[key])


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[Path, Page]:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    pages = {}
    for path in out.rglob("*.html"):
        page = Page()
        page.feed(path.read_text(errors="replace"))
        pages[path] = page
    return pages


def documented_ids(name: str, obj: object) -> set[str]:
    """The anchors mkdocstrings may give ``name``: its public path (the integrations documented from their folder
    ``integrations/``) or, where a module of the same name hides it (``augshift.shift``), where it is defined."""
    return {re.sub(r"^augshift\.integrations\.", "integrations.", name), f"{obj.__module__}.{obj.__qualname__}"}


def test_every_public_object_has_its_entry(site):
    ids = set().union(*(page.ids for page in site.values()))
    missing = [name for name, obj in public_objects().items() if not documented_ids(name, obj) & ids]
    assert not missing, missing


def test_every_internal_link_resolves(site):
    broken = []
    for path, page in site.items():
        if path.name == "404.html":  # links from the site's root, whatever page is missing
            continue
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.name}: {link}")
            elif parts.fragment and target.suffix == ".html" and target in site and parts.fragment not in site[target].ids:
                broken.append(f"{path.name}: {link} (no anchor)")
    assert not broken, broken[:20]
