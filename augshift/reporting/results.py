"""The one writer of a result a user reads: its markdown, its figures and its JSON, written as one unit.

Every command (`augshift ...`) and every benchmark script writes its tables and plots through
`write_results`; files that only make a sweep resumable (per-run `result.json`, checkpoints) are written
with `write_json_atomic` instead.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..errors import UsageError
from .files import PathLike, result_unit, write_json_atomic, write_text_atomic

Figure = Callable[[Path], Any]  # draws one figure to the path it is given


def write_results(out: PathLike, stem: str, data: Mapping[str, Any], markdown: str, *,
                  figures: Optional[Mapping[str, Figure]] = None) -> Path:
    """Write `<out>/<stem>.md`, the `figures` and `<out>/<stem>.json` as one unit, then print the markdown
    and the paths written.

    The files are made in a staging folder and moved into `out` together, the JSON last
    (`result_unit`): an error while drawing or writing leaves `out` as it was, a
    rerun replaces its previous unit whole, and a unit whose files another result in `out` lists is refused. The
    JSON is the manifest: `data` plus `files`, `{file name: SHA-256}` of every other file of the unit.

    Args:
        out: the output folder (created when missing).
        stem: the name of the markdown and JSON files (`<stem>.md`, `<stem>.json`); it may hold dots.
        data: the result as JSON values; its `files` entry is the writer's (a `data` with one is refused).
        markdown: the tables in words; written with one final newline.
        figures: `{file name: function drawing the figure to the path it is given}` (e.g. `"curves.png"`);
            plain file names, none of them `<stem>.md` or `<stem>.json`.

    Returns:
        `<out>/<stem>`, as a `Path` (add `.md` or `.json`).

    Raises:
        UsageError: a figure name that is not a plain file name or is the markdown's or JSON's, or `data` with
            a `files` entry; or (from `result_unit`) `out` holds another result listing one of these files.

    Examples:
        >>> import json, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> def draw(path):  # any function writing the figure to `path` (e.g. a matplotlib savefig)
        ...     path.write_bytes(b"a figure")
        >>> stem = write_results(tmp.name, "demo", {"accuracy": 91.5}, "| model | top-1 % |",
        ...                      figures={"curves.png": draw})
        | model | top-1 % |
        wrote .../curves.png, .../demo.md, .../demo.json
        >>> manifest = json.loads(stem.with_name("demo.json").read_text())
        >>> manifest["accuracy"], sorted(manifest["files"])
        (91.5, ['curves.png', 'demo.md'])
        >>> tmp.cleanup()
    """
    manifest, table = f"{stem}.json", f"{stem}.md"  # stems may hold dots (prior0.8): no with_suffix
    figures = dict(figures or {})
    _check(figures, data, manifest=manifest, table=table)
    _say_what_is_replaced(Path(out) / manifest, data)
    markdown = markdown.rstrip("\n")
    with result_unit(out, manifest=manifest) as staging:
        for name, draw in figures.items():
            draw(staging / name)
        write_text_atomic(staging / table, markdown + "\n")
        files = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(staging.iterdir())}
        write_json_atomic(staging / manifest, {**data, "files": files})
    print(markdown)
    print(f"wrote {', '.join(str(Path(out) / name) for name in [*files, manifest])}", flush=True)
    return Path(out) / stem


def _say_what_is_replaced(manifest: Path, data: Mapping[str, Any]) -> None:
    """A note on standard error when `manifest` holds a result of another command, which this one replaces."""
    try:
        previous = json.loads(manifest.read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return
    if previous is not None and previous != data.get("command"):
        print(f"note: {manifest} held the result of another command ({previous}); replacing it", file=sys.stderr)


def _check(figures: Mapping[str, Figure], data: Mapping[str, Any], *, manifest: str, table: str) -> None:
    """Refuse figure names a unit cannot hold, and a `data` that already has the manifest's `files`."""
    for name in figures:
        if not name or Path(name).name != name or name in (".", ".."):
            raise UsageError(f"figure {name!r} is not a plain file name; name it like 'curves.png' (a result unit has "
                             "no sub-folders)")
        if name in (manifest, table):
            raise UsageError(f"figure {name!r} would replace the result's own {name}; give the figure another name")
    if "files" in data:
        raise UsageError("data has a 'files' entry, which the writer fills (the unit's files and their SHA-256); "
                         "leave it out or rename it")
