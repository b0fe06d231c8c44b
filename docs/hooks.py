"""mkdocs hook: the repository's own Markdown and results outside `docs/` (the benchmark results with their plots,
the integrations' READMEs, ARCHITECTURE.md, CHANGELOG.md) become part of the site at their repository paths, so
pages link to them as the repository does and nothing is copied; a page includes a section of README.md by a line
`<!-- include README.md#NAME -->` (the README marks it `<!-- section:NAME -->` ... `<!-- /section:NAME -->`),
so the landing page and the README's quick start are written once; the footer shows the package's version. A
generated page, `results.md`, links every result page, so that each one is reached from the navigation however many
runs are added."""
from __future__ import annotations

import functools
import importlib
import inspect
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
PUBLIC_PACKAGES = (  # the modules the API pages document, in the order a bare name is looked up
    "augshift", "augshift.protocols", "augshift.data", "augshift.models", "augshift.engine", "augshift.distributed",
    "augshift.seeding", "augshift.position", "augshift.reporting", "augshift.integrations.timm",
    "augshift.integrations.accelerate", "augshift.integrations.transformers", "augshift.integrations.lightning",
    "augshift.integrations.evaluate",
)
CODE_SPAN = re.compile(r"(?<![\[`])`([A-Za-z_][\w.]*)(\(\))?`(?![`\]])")
AMBIGUOUS = {"Trainer", "fit", "shift"}  # also transformers' / Lightning's Trainer and fit, a config key: by full path
FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.M | re.S)
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
    path on the site): a page of `docs/` is on the site at its path there, README.md at the landing page (which
    includes its sections), every other shared file at its repository path."""
    def target(match: re.Match) -> str:
        path = match.group(2)
        if re.match(r"^[a-z]+:", path) or path.startswith("/"):
            return match.group(0)
        in_repository = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        on_site = in_repository[len("docs/"):] if in_repository.startswith("docs/") else in_repository
        on_site = "index.md" if on_site == "README.md" else on_site  # the landing page holds the README's sections
        return f"{match.group(1)}{posixpath.relpath(on_site, posixpath.dirname(page) or '.')}{match.group(3) or ''})"
    return LINK.sub(target, markdown)


@functools.cache
def public_identifiers() -> dict[str, str]:
    """`{mention: identifier}` of every entry the API pages hold: each documented module, each public name (bare,
    with its module, and where it is defined), and each documented method or property of a public class
    (`Class.member`)."""
    found: dict[str, str] = {}
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        found[package] = package  # the module's page
        for name in module.__all__:
            identifier = f"{package}.{name}"
            if name not in AMBIGUOUS:
                found.setdefault(name, identifier)
            found[identifier] = identifier
            owner = getattr(module, name)
            if getattr(owner, "__module__", None) and getattr(owner, "__qualname__", None):
                found.setdefault(f"{owner.__module__}.{owner.__qualname__}", identifier)  # where it is defined
            for member, value in vars(owner).items() if inspect.isclass(owner) else ():
                if not member.startswith("_") and getattr(value, "__doc__", None) and (
                        callable(value) or isinstance(value, (property, staticmethod, classmethod))):
                    if name not in AMBIGUOUS:
                        found.setdefault(f"{name}.{member}", f"{identifier}.{member}")
                    found[f"{identifier}.{member}"] = f"{identifier}.{member}"
    return found


def linked_mentions(markdown: str) -> str:
    """`markdown` with each code span that names a documented object (`ShiftConsistency`,
    `ShiftConsistency.compute()`, `augshift.protocols.register_protocol`) made a link to its entry; code blocks are
    left as they are."""
    names = public_identifiers()

    def link(match: re.Match) -> str:
        identifier = names.get(match.group(1))
        return f"[{match.group(0)}][{identifier}]" if identifier else match.group(0)

    parts, last = [], 0
    for block in FENCE.finditer(markdown):
        parts += [CODE_SPAN.sub(link, markdown[last:block.start()]), block.group(0)]
        last = block.end()
    return "".join(parts + [CODE_SPAN.sub(link, markdown[last:])])


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
    markdown = INCLUDE.sub(lambda m: relinked(readme_section(m.group(1)), "README.md", source), markdown)
    return markdown if source.startswith("api/") else linked_mentions(markdown)  # the API text links its own
