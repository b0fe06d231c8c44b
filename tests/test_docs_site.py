"""The documentation site builds without a warning (`mkdocs build --strict`), has an entry for every public object,
and every link between its pages resolves."""
from __future__ import annotations

import inspect
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from helpers import public_objects

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")


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
def site(docs_site: Path) -> dict[Path, Page]:
    pages = {}
    for path in docs_site.rglob("*.html"):
        page = Page()
        page.feed(path.read_text(errors="replace"))
        pages[path] = page
    return pages


def documented_ids(name: str, obj: object) -> set[str]:
    """The anchors mkdocstrings may give `name`: its public path or, where a module of the same name hides it
    (`augshift.shift`), where it is defined."""
    return {name, f"{obj.__module__}.{obj.__qualname__}"}


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


def documented_members(site: dict[Path, Page]) -> dict[str, object]:
    """The methods and properties the API pages give an entry (`augshift.ShiftConsistency.compute`), each as the
    function it documents."""
    classes = {name: obj for name, obj in public_objects().items() if inspect.isclass(obj)}
    classes.update({f"{obj.__module__}.{obj.__qualname__}": obj for obj in list(classes.values())})
    members = {}
    for anchor in set().union(*(page.ids for page in site.values())):
        owner, _, attribute = anchor.rpartition(".")
        if owner in classes and attribute in vars(classes[owner]):
            value = vars(classes[owner])[attribute]
            members[anchor] = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
    return members


def test_every_documented_method_has_an_example(site):
    """Each method and property with an entry on the site shows how it is called (a >>> example; the examples
    run in test_api_docs.test_the_examples_run)."""
    members = documented_members(site)
    assert "augshift.ShiftConsistency.compute" in members and len(members) > 30
    missing = sorted(name for name, function in members.items() if ">>>" not in (inspect.getdoc(function) or ""))
    assert not missing, f"{len(missing)} documented methods have no example: {missing}"
