"""Result files: atomic single files, and the files of one result written as one unit.

`write_bytes_atomic` writes to a temporary file beside the target, then renames it over the target, so a
crash leaves the old file or the new one. `result_unit` gives a staging folder (hidden, inside the output folder): a
command writes all files of one result there, and they are moved into the output folder together, the manifest
last, with interrupts held back, so an interrupted command never leaves files of two runs side by side. Files are
created with the usual permissions (`0o666` less the umask), so others can read the results.
`check_output_folder` and `check_output_file` let a command refuse an unusable output path before it
does any work.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from ..errors import UsageError

PathLike = Union[str, "os.PathLike[str]"]
HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _temporary_name(path: Path) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that a crash leaves either the old file or the new one.

    The bytes go to a temporary file beside `path` (flushed to disk), which is then renamed over it; missing
    parent folders are created.

    Args:
        path: the file to write (replaced when it exists).
        data: its new content.

    Returns:
        `path`, as a `Path`.

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> write_bytes_atomic(Path(tmp.name) / "out" / "data.bin", b"result").read_bytes()  # out/ is created
        b'result'
        >>> tmp.cleanup()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically (see `write_bytes_atomic`).

    Args:
        path: the file to write (replaced when it exists; missing parent folders are created).
        text: its new content.

    Returns:
        `path`, as a `Path`.

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> write_text_atomic(Path(tmp.name) / "table.md", "| model |").read_text()
        '| model |'
        >>> tmp.cleanup()
    """
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON (keys in their order, a final newline) to `path` atomically (see
    `write_bytes_atomic`).

    Args:
        path: the file to write (replaced when it exists; missing parent folders are created).
        obj: a JSON-able object (dicts, lists, str, numbers, bools, None).

    Returns:
        `path`, as a `Path`.

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = write_json_atomic(Path(tmp.name) / "metrics.json", {"accuracy": 91.5, "epochs": [1, 2]})
        >>> json.loads(path.read_text())
        {'accuracy': 91.5, 'epochs': [1, 2]}
        >>> tmp.cleanup()
    """
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_figure_atomic(figure: Any, path: PathLike, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the file suffix)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **savefig_kwargs)
    return write_bytes_atomic(path, buffer.getvalue())


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT / SIGTERM inside the block (main thread only): their handlers record them, and they are raised
    again, with the previous handlers back, once the block has ended. Portable (no `pthread_sigmask`, which
    Windows lacks) and whatever thread the signal reaches (Python runs its handlers in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    handlers = {number: signal.signal(number, lambda signum, frame: received.append(signum))
                for number in HELD_SIGNALS}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        for number in received:
            signal.raise_signal(number)


@contextmanager
def result_unit(out: PathLike, *, manifest: Optional[str] = None) -> Iterator[Path]:
    """A staging folder (hidden, inside `out`): the files written into it inside the block are moved into `out`
    together when the block ends without error (`manifest`, a file name, last), with SIGINT / SIGTERM held back
    during the moves; after an error none of them reaches `out`. Sub-folders are not supported.

    Several results may share a folder, each listed by its own manifest (a JSON file whose `files` names the
    others), but never a file: a result whose files another manifest lists is refused (`UsageError`), and a
    new run of the same result (the same manifest) replaces the previous one whole, removing the files it listed
    that the new run does not write."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    staging = _temporary_name(out / "result")
    staging.mkdir()
    try:
        yield staging
        names = sorted(path.name for path in staging.iterdir())
        units = _listed_files(out)  # read once: the folder's other results and this result's previous run
        _refuse_taken(out, names, manifest, units)
        stale = set(units.get(manifest, ())) - set(names)  # the previous run of this result
        if manifest in names:
            names.remove(manifest)
            names.append(manifest)
        with _signals_held():
            for name in names:
                os.replace(staging / name, out / name)
            for name in stale:
                (out / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_result_files(out: PathLike, names: Sequence[str], *, manifest: str) -> None:
    """Refuse, before any work, a result whose files (`names`, its `manifest` among them) another result in
    `out` lists (what `result_unit` would refuse after the work).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as out:
        ...     _ = (Path(out) / "other.json").write_text('{"files": {"shared.png": "..."}}')
        ...     check_result_files(out, ["mine.json", "mine.md"], manifest="mine.json")  # nothing shared: fine
        ...     check_result_files(out, ["mine.json", "shared.png"], manifest="mine.json")
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: ... holds another result whose files this one would replace (shared.png, listed by other.json): name another --out folder
    """
    if Path(out).is_dir():
        _refuse_taken(Path(out), names, manifest, _listed_files(Path(out)))


def _refuse_taken(out: Path, names: Sequence[str], manifest: Optional[str], units: dict[str, list[str]]) -> None:
    owners = {name: other for other, files in units.items() if other != manifest for name in files}
    taken = sorted(name for name in names if name in owners or (name != manifest and name in units))
    if taken:
        raise UsageError(f"{out} holds another result whose files this one would replace ({', '.join(taken)}, "
                         f"listed by {owners.get(taken[0], taken[0])}): name another --out folder")


def _listed_files(out: Path) -> dict[str, list[str]]:
    """`{manifest name: the files it lists}` of the result units in `out` (JSON files with a `files` table)."""
    units = {}
    for path in out.glob("*.json"):
        try:
            files = json.loads(path.read_text()).get("files")
        except (ValueError, AttributeError, OSError):
            continue
        if isinstance(files, dict):
            units[path.name] = list(files)
    return units


def check_output_folder(path: PathLike, *, option: str = "--out") -> None:
    """Raise `UsageError` unless `path` is, or can be created as, a writable folder (creates nothing)."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, which is a file"
        raise UsageError(f"{option} {path} {where}, not a folder; name a folder (new or existing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write to {existing} (permission denied); name a folder you can write to")


def check_output_file(path: PathLike, *, option: str) -> None:
    """Raise `UsageError` unless a file can be written at `path` (creates nothing)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; name a file in it (e.g. {path / 'model.pt'})")
    check_output_folder(path.parent, option=f"{option} {path}: its folder")
