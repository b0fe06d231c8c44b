"""What the ``augshift`` commands share: the recorded command line, the device, result files, and the one
checkpoint format of models trained by the commands (plus loading plain / timm checkpoints)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

import torch

from ..engine.checkpoint import save_checkpoint
from ..reporting.files import write_json_atomic, write_text_atomic
from ..reporting.provenance import command_line


def recorded_command(args: argparse.Namespace) -> str:
    """The ``augshift ...`` command that produced a result (``args.argv``: the arguments ``main`` parsed)."""
    return command_line(args.argv, prog="augshift")


def choose_device(name: Optional[str]) -> torch.device:
    """``name``, or CUDA when available, else the CPU."""
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def write_results(out: str, stem: str, data: dict, markdown: str) -> Path:
    """``<out>/<stem>.json`` and ``<out>/<stem>.md`` (atomically); prints the markdown. Returns the stem path."""
    path = Path(out) / stem  # stems may hold dots (prior0.8): no with_suffix
    write_json_atomic(f"{path}.json", data)
    write_text_atomic(f"{path}.md", markdown + "\n")
    print(markdown)
    print(f"wrote {path}.json, .md, .png")
    return path


def save_model(path: str, model: torch.nn.Module, name: str, kwargs: dict, meta: dict) -> None:
    """Save a model trained by a command: timm ``name`` and ``kwargs`` to rebuild it, ``meta``, ``state_dict``."""
    save_checkpoint(path, {"name": name, "kwargs": kwargs, "meta": meta, "state_dict": model.state_dict()})
    print(f"saved {name} to {path}")


def load_model(path: str) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model saved by :func:`save_model` (``locate``/``attack --save-model``); returns ``(model, meta)``."""
    import timm

    saved = torch.load(path, map_location="cpu", weights_only=False)
    model = timm.create_model(saved["name"], **saved["kwargs"])
    model.load_state_dict(saved["state_dict"])
    return model, saved["meta"]


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Load a plain or timm-style checkpoint (``state_dict`` / ``model`` / ``state_dict_ema`` keys) into ``model``."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict):
        for key in ("state_dict_ema", "state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    state = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}
    model.load_state_dict(state)
