"""The site links what it mentions: every mention of a public object (a name of any `__all__`, or a documented
package) in the API pages' text is a link, and every built page can be reached from the landing page by links."""
from __future__ import annotations

import functools

import inspect
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from helpers import PACKAGES, documented_parameters, public_names, public_objects

SKIPPED = {"h1", "h2", "h3", "h4", "h5", "h6", "pre", "nav", "header", "footer", "script", "style", "details"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@functools.lru_cache(maxsize=1)
def mention_names() -> dict[str, str]:
    """What a mention of a public object may say -> the object: its full path (`augshift.shift`,
    `augshift.protocols`) or where it is defined (`augshift.metrics.ShiftConsistency`), and its bare name
    (`ShiftConsistency`) where no other public object has it and no public object has a parameter or member of that
    name (`shift` is also `TrainConfig`'s option, `augshift` the package and `TrainConfig`'s option: the text alone
    cannot tell which it means)."""
    objects = public_names()
    names = {name: name for name in (*objects, *PACKAGES)}
    names.update({f"{obj.__module__}.{obj.__qualname__}": name for name, obj in objects.items()
                  if hasattr(obj, "__qualname__") and hasattr(obj, "__module__")})
    bare: dict[str, list[str]] = {}
    for name in objects:
        bare.setdefault(name.rsplit(".", 1)[1], []).append(name)
    names.update({short: found[0] for short, found in bare.items() if len(found) == 1})
    return {text: name for text, name in names.items() if "." in text or text not in local_names()}


def local_names() -> set[str]:
    """The parameters and members of every public class and function."""
    names = set()
    for obj in public_objects().values():
        names |= set(documented_parameters(obj)) | ({n for n in vars(obj) if not n.startswith("_")}
                                                     if inspect.isclass(obj) else set())
    return names


class Mentions(HTMLParser):
    """The inline code spans of a page's text (headings, signatures, code blocks, source listings and the
    navigation left out), each as what it names (its text, or the path mkdocstrings gives it as a title) and
    whether a link holds it; and every link of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.code: list[list] = []  # [text, linked, title] of the code span being read
        self.spans: list[tuple[str, bool]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "code" and not SKIPPED & set(self.stack):
            self.code.append(["", "a" in self.stack, None])
        elif tag == "a" and self.code:
            self.code[-1][1] = True  # <code><a>name</a></code>
        elif values.get("title") and self.code:
            self.code[-1][2] = values["title"]  # what mkdocstrings knows the name is: <span title="path">name</span>

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            return
        while self.stack and self.stack.pop() != tag:
            pass
        if tag == "code" and self.code:
            text, linked, title = self.code.pop()
            self.spans.append((title or text.strip().removesuffix("()"), linked))

    def handle_data(self, data: str) -> None:
        if self.code:
            self.code[-1][0] += data


def parse(path: Path) -> Mentions:
    page = Mentions()
    page.feed(path.read_text(errors="replace"))
    return page


def unlinked_mentions(pages: list[Path], *, besides: frozenset = frozenset()) -> list[str]:
    """The mentions of a public object in `pages` that no link holds (`besides`: names left out)."""
    names = mention_names()
    return [f"{path.parent.name}: {text}" for path in pages for text, linked in parse(path).spans
            if not linked and text in names and text not in besides]


def guide_pages(site: Path) -> list[Path]:
    """The pages a reader reads before the API reference: landing page, guides, Results, ARCHITECTURE, ..."""
    return sorted(path for path in site.rglob("*.html") if "api" not in path.relative_to(site).parts
                  and "results" not in path.relative_to(site).parts and path.name != "404.html")


def test_every_mention_of_a_public_object_in_the_api_pages_is_a_link(docs_site):
    mentions = sum(text in mention_names() for path in (docs_site / "api").rglob("*.html")
                   for text, _ in parse(path).spans)
    assert mentions > 100  # the pages do mention the public objects: the check below has something to check
    unlinked = unlinked_mentions(sorted((docs_site / "api").rglob("*.html")))
    assert not unlinked, f"{len(unlinked)} mentions are not links: {unlinked[:30]}"


def test_every_mention_of_a_public_object_in_the_guides_is_a_link(docs_site):
    """The landing page, the guides, Results and ARCHITECTURE link the objects they name, as the API text does;
    a bare `Trainer` or `fit` stays plain there (it is as often transformers' or Lightning's)."""
    pages = guide_pages(docs_site)
    mentions = sum(text in mention_names() for path in pages for text, _ in parse(path).spans)
    assert len(pages) > 10 and mentions > 50
    unlinked = unlinked_mentions(pages, besides=frozenset({"Trainer", "fit"}))
    assert not unlinked, f"{len(unlinked)} mentions are not links: {unlinked[:30]}"


def reachable(site: Path) -> set[Path]:
    """The pages reached from the landing page by following links (the navigation's included)."""
    start = (site / "index.html").resolve()
    seen, todo = {start}, [start]
    while todo:
        path = todo.pop()
        for link in parse(path).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            target = (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if target.suffix == ".html" and target.is_file() and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_every_built_page_is_reached_from_the_landing_page(docs_site):
    pages = {path.resolve() for path in docs_site.rglob("*.html")} - {(docs_site / "404.html").resolve()}
    unreached = sorted(str(path.relative_to(docs_site.resolve())) for path in pages - reachable(docs_site))
    assert not unreached, f"{len(unreached)} pages no link leads to: {unreached[:20]}"
