"""Reading a user's checkpoint, whatever wrote it: :func:`read_checkpoint` gives its weights and what it says about
the architecture; :func:`load_state` loads the weights into a model, with an error that names the fix.

Understood layouts:

* a file saved by ``augshift locate`` / ``augshift attack --save-model`` (``name``, ``kwargs``, ``meta``,
  ``state_dict``);
* timm ``train.py`` checkpoints (``model_best.pth.tar``, ``last.pth.tar``: ``state_dict`` / ``state_dict_ema``,
  ``arch`` = the model name) and its output folder (those files plus ``args.yaml`` naming ``model`` and
  ``num_classes``);
* the Accelerate example's output folder (``model.safetensors`` plus ``metrics.json`` whose ``args`` name the
  ``model``);
* a plain ``state_dict`` (``.pt``/``.pth``/``.bin`` or ``.safetensors``), also nested under ``state_dict`` /
  ``model`` / ``model_state``; ``module.`` / ``model.`` prefixes (DDP, wrappers) are dropped. A plain state_dict
  does not name its architecture: the caller passes it (``--model``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import UsageError

TIMM_FILES = ("model_best.pth.tar", "last.pth.tar")  # timm train.py, in order of preference
ACCELERATE_FILE = "model.safetensors"
NESTED_KEYS = ("state_dict_ema", "state_dict", "model_state", "model")  # timm prefers the EMA weights when saved


@dataclass
class Checkpoint:
    """The weights of a checkpoint and what it tells about the model.

    ``name``: the architecture (timm/torchvision name) when the checkpoint records it; ``num_classes`` when
    recorded; ``kwargs``/``meta``: the project's own format (else empty); ``source``: the file read.
    """

    state_dict: dict[str, Tensor]
    source: str
    name: Optional[str] = None
    num_classes: Optional[int] = None
    kwargs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def _load_file(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # pickle / zip errors of a file that is no torch checkpoint
        raise UsageError(f"cannot read {path} as a torch checkpoint ({type(error).__name__}: {error}); pass a file "
                         f"saved with torch.save, a .safetensors file, or a timm/Accelerate output folder") from None


def _folder(path: Path) -> tuple[Path, Optional[str], Optional[int]]:
    """The weights file of an output folder and the (model name, num_classes) its arguments record."""
    for name in TIMM_FILES:
        if (path / name).is_file():
            args = {}
            if (path / "args.yaml").is_file():
                import yaml

                args = yaml.safe_load((path / "args.yaml").read_text()) or {}
            return path / name, args.get("model"), args.get("num_classes")
    if (path / ACCELERATE_FILE).is_file():
        metrics = path / "metrics.json"
        args = json.loads(metrics.read_text()).get("args", {}) if metrics.is_file() else {}
        return path / ACCELERATE_FILE, args.get("model"), None
    raise UsageError(f"{path} is a folder without {', '.join(TIMM_FILES)} (timm train.py output) or {ACCELERATE_FILE} "
                     f"(the Accelerate example's output): pass the checkpoint file itself")


def read_checkpoint(path: str) -> Checkpoint:
    """The :class:`Checkpoint` at ``path`` (a file or an output folder; see the module docstring)."""
    where = Path(path)
    if not where.exists():
        raise UsageError(f"checkpoint {path} does not exist: pass a checkpoint file or a train.py output folder")
    name = num_classes = None
    if where.is_dir():
        where, name, num_classes = _folder(where)
    saved = _load_file(where)
    if isinstance(saved, dict) and {"name", "kwargs", "state_dict"} <= set(saved):  # augshift --save-model
        return Checkpoint(saved["state_dict"], str(where), saved["name"], saved["kwargs"].get("num_classes"),
                          dict(saved["kwargs"]), dict(saved.get("meta", {})))
    if isinstance(saved, nn.Module):
        raise UsageError(f"{where} holds a whole pickled model: save its state_dict instead "
                         f"(torch.save(model.state_dict(), path)) and pass --model NAME")
    if not isinstance(saved, dict):
        raise UsageError(f"{where} holds a {type(saved).__name__}, not a state_dict or a checkpoint dict")
    if isinstance(saved.get("arch"), str):  # timm train.py: arch = args.model
        name = name or saved["arch"]
    state = saved
    for key in NESTED_KEYS:
        if isinstance(saved.get(key), dict):
            state = saved[key]
            break
    tensors = {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise UsageError(f"{where} has no weights (keys: {', '.join(list(map(str, saved))[:8])}): pass a state_dict")
    return Checkpoint(tensors, str(where), name, num_classes)


def infer_num_classes(model: nn.Module, state_dict: dict[str, Tensor]) -> Optional[int]:
    """The number of classes of ``state_dict``'s head when it differs from ``model``'s: the first dimension of the
    weights whose shapes disagree only there (the classifier); None when every shape fits."""
    own = model.state_dict()
    sizes = {int(v.shape[0]) for k, v in state_dict.items() if k in own and v.dim() >= 1 and own[k].dim() == v.dim()
             and v.shape != own[k].shape and v.shape[1:] == own[k].shape[1:]}
    if len(sizes) > 1:
        raise UsageError(f"cannot tell the number of classes from the checkpoint (head sizes {sorted(sizes)}): "
                         f"pass --num-classes")
    return sizes.pop() if sizes else None


def load_state(model: nn.Module, checkpoint: Checkpoint, name: str) -> nn.Module:
    """Load ``checkpoint``'s weights into ``model`` (architecture ``name``), strictly; returns ``model``."""
    own, state = model.state_dict(), checkpoint.state_dict
    problems = {"missing": [k for k in own if k not in state], "unexpected": [k for k in state if k not in own],
                "shape mismatch": [k for k, v in state.items() if k in own and v.shape != own[k].shape]}
    if any(problems.values()):
        parts = [f"{label} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})"
                 for label, keys in problems.items() if keys]
        raise UsageError(f"{checkpoint.source} does not fit {name}: {'; '.join(parts)}; pass the --model it was "
                         f"trained as (and --num-classes if its head differs)")
    model.load_state_dict(state)
    return model
