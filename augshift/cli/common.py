"""What the ``augshift`` commands share: the recorded command line, the device, result files, the one checkpoint
format of models trained by the commands, and the normalisation a command uses."""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..data.stats import Normalization, normalization_policy
from ..engine.checkpoint import save_checkpoint
from ..errors import UsageError
from ..reporting.files import result_unit, write_json_atomic, write_text_atomic
from ..reporting.provenance import command_line


def recorded_command(args: argparse.Namespace) -> str:
    """The ``augshift ...`` command that produced a result (``args.argv``: the arguments ``main`` parsed)."""
    return command_line(args.argv, prog="augshift")


def choose_device(name: Optional[str]) -> torch.device:
    """``name``, or CUDA when available, else the CPU; a device this machine lacks is a :class:`UsageError`."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as error:
        raise UsageError(f"--device {name!r} is not a device ({error}); use cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def write_results(out: str, stem: str, data: dict, markdown: str, *,
                  figures: Optional[dict[str, Callable[[Path], Any]]] = None) -> Path:
    """``<out>/<stem>.md``, the ``figures`` (``{file name: function drawing to a path}``) and ``<out>/<stem>.json``
    written as one unit (:func:`~augshift.reporting.files.result_unit`); the JSON, moved last, is the manifest:
    ``data`` plus ``files``, the SHA-256 of every other file of the unit. Prints the markdown; returns the stem path."""
    manifest = f"{stem}.json"  # stems may hold dots (prior0.8): no with_suffix
    with result_unit(out, manifest=manifest) as staging:
        for name, draw in (figures or {}).items():
            draw(staging / name)
        write_text_atomic(staging / f"{stem}.md", markdown + "\n")
        files = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(staging.iterdir())}
        write_json_atomic(staging / manifest, {**data, "files": files})
    print(markdown)
    print(f"wrote {', '.join(str(Path(out) / name) for name in [*files, manifest])}")
    return Path(out) / stem


def save_model(path: str, model: torch.nn.Module, name: str, kwargs: dict, meta: dict) -> None:
    """Save a model trained by a command: its name and ``kwargs`` to rebuild it (:func:`augshift.models.create_model`),
    ``meta`` (the task, and the ``normalization`` it was trained with) and its ``state_dict``."""
    save_checkpoint(path, {"name": name, "kwargs": kwargs, "meta": meta, "state_dict": model.state_dict()})
    print(f"saved {name} to {path}")


def choose_normalization(args: argparse.Namespace, recorded: Optional[Normalization],
                         data: Callable[[], Normalization]) -> Normalization:
    """What a command normalises with: ``--mean`` / ``--std``; else what the model's weights record (``recorded``); else
    the statistics of the data (``data()``, e.g. of the training images for a model trained from scratch). Printed,
    and to be recorded in the result."""
    if (args.mean is None) != (args.std is None):
        raise UsageError("--mean and --std go together: pass both (a value per channel each) or neither")
    given = Normalization(tuple(args.mean), tuple(args.std), "--mean / --std") if args.mean is not None else None
    normalization = normalization_policy(given=given, recorded=recorded, data=data)
    print(f"normalisation: mean {[round(v, 4) for v in normalization.mean]}, std "
          f"{[round(v, 4) for v in normalization.std]} ({normalization.source})")
    return normalization
