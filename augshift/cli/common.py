"""What the `augshift` commands share: the recorded command line, the device, result files, the one checkpoint
format of models trained by the commands, and the normalisation a command uses."""
from __future__ import annotations

import argparse
from typing import Callable, Optional

import torch

from ..data.stats import Normalization, normalization_policy
from ..engine.checkpoint import save_checkpoint
from ..errors import UsageError
from ..reporting.provenance import command_line
from ..reporting.results import write_results  # noqa: F401  (the commands' writer: the one of augshift.reporting)


def recorded_command(args: argparse.Namespace) -> str:
    """The `augshift ...` command that produced a result (`args.argv`: the arguments `main` parsed)."""
    return command_line(args.argv, prog="augshift")


def choose_device(name: Optional[str]) -> torch.device:
    """`name`, or CUDA when available, else the CPU; a device this machine lacks is a `UsageError`."""
    try:
        device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as error:
        raise UsageError(f"--device {name!r} is not a device ({error}); use cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def save_model(path: str, model: torch.nn.Module, name: str, kwargs: dict, meta: dict) -> None:
    """Save a model trained by a command: its name and `kwargs` to rebuild it (`augshift.models.create_model`),
    `meta` (the task, and the `normalization` it was trained with) and its `state_dict`."""
    save_checkpoint(path, {"name": name, "kwargs": kwargs, "meta": meta, "state_dict": model.state_dict()})
    print(f"saved {name} to {path}")


def choose_normalization(args: argparse.Namespace, recorded: Optional[Normalization],
                         data: Callable[[], Normalization]) -> Normalization:
    """What a command normalises with: `--mean` / `--std`; else what the model's weights record (`recorded`); else
    the statistics of the data (`data()`, e.g. of the training images for a model trained from scratch). Printed,
    and to be recorded in the result."""
    if (args.mean is None) != (args.std is None):
        raise UsageError("--mean and --std go together: pass both (a value per channel each) or neither")
    given = Normalization(tuple(args.mean), tuple(args.std), "--mean / --std") if args.mean is not None else None
    normalization = normalization_policy(given=given, recorded=recorded, data=data)
    print(f"normalisation: mean {[round(v, 4) for v in normalization.mean]}, std "
          f"{[round(v, 4) for v in normalization.std]} ({normalization.source})")
    return normalization
