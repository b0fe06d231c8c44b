"""Reading a user's checkpoint, whatever wrote it: `read_checkpoint` gives its weights and what it says about
the architecture; `load_state` loads the weights into a model, with an error that names the fix.

Understood layouts:

* a file saved by `augshift locate` / `augshift attack --save-model` (`name`, `kwargs`, `meta`,
  `state_dict`);
* timm `train.py` checkpoints (`model_best.pth.tar`, `last.pth.tar`: `state_dict` / `state_dict_ema`,
  `arch` = the model name) and its output folder (those files plus `args.yaml` naming `model` and
  `num_classes`);
* the Accelerate example's output folder (`model.safetensors` plus `metrics.json` whose `args` name the
  `model` and whose `normalization` the statistics it trained with);
* a folder a zoo reads itself (`read_folder`): a Hugging Face `save_pretrained` folder
  (`config.json` and the weights; read by `transformers`, named `hf:<folder>`); the normalisation is its
  `metrics.json`'s when the Accelerate example wrote it, else `load_model` asks the
  zoo (the folder's image processor);
* a plain `state_dict` (`.pt`/`.pth`/`.bin` or `.safetensors`), also nested under `state_dict` /
  `model` / `model_state`; a `module.` / `model.` prefix (DDP, wrappers) is dropped when every key carries
  it and the model's own keys do not (`fitted_state`). A plain state_dict does not name its architecture: the
  caller passes it (`--model`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

import torch
from torch import Tensor, nn

from ..data.stats import Normalization
from ..errors import UsageError
from .zoos.base import Checkpoint
from .zoos.registry import ZOOS

TIMM_FILES = ("model_best.pth.tar", "last.pth.tar")  # timm train.py, in order of preference
ACCELERATE_FILE = "model.safetensors"
NESTED_KEYS = ("state_dict_ema", "state_dict", "model_state", "model")  # timm prefers the EMA weights when saved
WRAPPER_PREFIXES = ("module.", "model.")  # DDP's, and a wrapper's that holds the model as .model


def _load_file(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # pickle / zip errors of a file that is no torch checkpoint
        raise UsageError(f"cannot read {path} as a torch checkpoint ({type(error).__name__}: {error}); pass a file "
                         f"saved with torch.save, a .safetensors file, or a timm/Accelerate output folder") from None


def _timm_normalization(args: dict, where: Path) -> tuple[Optional[Normalization], bool]:
    """What a timm `train.py` run normalised with: its `--mean` / `--std`, else (`True`) the model's config."""
    if args.get("mean") and args.get("std"):
        return Normalization(tuple(args["mean"]), tuple(args["std"]), f"--mean / --std of timm's train.py ({where})"), False
    return None, True


def _folder(path: Path) -> Checkpoint:
    """The checkpoint of an output folder: timm `train.py`'s, one a zoo reads (`save_pretrained`'s) or the
    Accelerate example's."""
    for name in TIMM_FILES:
        if (path / name).is_file():
            args = {}
            if (path / "args.yaml").is_file():
                import yaml

                args = yaml.safe_load((path / "args.yaml").read_text()) or {}
            checkpoint = _read_file(path / name)
            normalization, model_config = _timm_normalization(args, path)
            return Checkpoint(checkpoint.state_dict, checkpoint.source, checkpoint.name or args.get("model"),
                              args.get("num_classes"), normalization=normalization, uses_model_config=model_config)
    metrics = path / "metrics.json"  # the Accelerate example records the normalisation it trained with
    recorded = json.loads(metrics.read_text()) if metrics.is_file() else {}
    normalization = Normalization.from_dict(recorded["normalization"]) if recorded.get("normalization") else None
    for zoo in ZOOS:  # a folder of the zoo's own format (beside ACCELERATE_FILE: save_pretrained's config.json)
        checkpoint = zoo.read_folder(path, normalization=normalization)
        if checkpoint is not None:
            return checkpoint
    if (path / ACCELERATE_FILE).is_file():
        checkpoint = _read_file(path / ACCELERATE_FILE)
        return Checkpoint(checkpoint.state_dict, checkpoint.source, recorded.get("args", {}).get("model"),
                          normalization=normalization)
    kinds = [f"{', '.join(TIMM_FILES)} (timm train.py output)", f"{ACCELERATE_FILE} (the Accelerate example's output)",
             *(f"{zoo.folder_file} ({zoo.folder_kind})" for zoo in ZOOS if zoo.folder_file)]
    raise UsageError(f"{path} is a folder without {', '.join(kinds[:-1])} or {kinds[-1]}: pass the checkpoint file "
                     "itself")


def read_checkpoint(path: str) -> Checkpoint:
    """The `Checkpoint` at `path` (a file or an output folder; see the module docstring).

    Args:
        path: a checkpoint file (`torch.save` / `.safetensors`) or an output folder (timm `train.py`, the
            Accelerate example, a `save_pretrained` folder).

    Returns:
        Its `Checkpoint`: the weights, keyed as saved, and what the file says about the model.

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = f"{tmp.name}/model.pt"
        >>> torch.save({"state_dict": nn.Linear(4, 3).state_dict()}, path)  # a state_dict nested under a key
        >>> checkpoint = read_checkpoint(path)
        >>> sorted(checkpoint.state_dict), checkpoint.name
        (['bias', 'weight'], None)
        >>> torch.save({"name": "resnet18", "kwargs": {"num_classes": 3}, "state_dict": {}}, path)  # --save-model
        >>> read_checkpoint(path).name, read_checkpoint(path).num_classes
        ('resnet18', 3)
        >>> tmp.cleanup()
    """
    where = Path(path)
    if not where.exists():
        raise UsageError(f"checkpoint {path} does not exist: pass a checkpoint file or a train.py output folder")
    return _folder(where) if where.is_dir() else _read_file(where)


def _read_file(where: Path) -> Checkpoint:
    saved = _load_file(where)
    if isinstance(saved, dict) and {"name", "kwargs", "state_dict"} <= set(saved):  # augshift --save-model
        meta = dict(saved.get("meta", {}))
        normalization = meta.get("normalization")
        return Checkpoint(saved["state_dict"], str(where), saved["name"], saved["kwargs"].get("num_classes"),
                          dict(saved["kwargs"]), meta, Normalization.from_dict(normalization) if normalization else None)
    if isinstance(saved, nn.Module):
        raise UsageError(f"{where} holds a whole pickled model: save its state_dict instead "
                         f"(torch.save(model.state_dict(), path)) and pass --model NAME")
    if not isinstance(saved, dict):
        raise UsageError(f"{where} holds a {type(saved).__name__}, not a state_dict or a checkpoint dict")
    name = saved["arch"] if isinstance(saved.get("arch"), str) else None  # timm train.py: arch = args.model
    normalization, model_config = None, False
    if name is not None:  # timm's CheckpointSaver keeps the run's args in the file
        args = saved.get("args")
        normalization, model_config = _timm_normalization(vars(args) if hasattr(args, "__dict__") else dict(args or {}),
                                                          where)
    state = saved
    for key in NESTED_KEYS:
        if isinstance(saved.get(key), dict):
            state = saved[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise UsageError(f"{where} has no weights (keys: {', '.join(list(map(str, saved))[:8])}): pass a state_dict")
    return Checkpoint(tensors, str(where), name, normalization=normalization, uses_model_config=model_config)


def fitted_state(state_dict: dict[str, Tensor], own: Optional[Iterable[str]] = None) -> dict[str, Tensor]:
    """`state_dict` with each wrapper prefix (`WRAPPER_PREFIXES`) that every key carries dropped, when that makes
    more of its keys fit the model's keys `own` (always, with `own=None`).

    Examples:
        >>> sorted(fitted_state({"module.fc.weight": torch.zeros(1)}, ["fc.weight"]))
        ['fc.weight']
        >>> sorted(fitted_state({"model.weight": torch.zeros(1)}, ["model.weight"]))  # a submodule named model
        ['model.weight']
    """
    own = None if own is None else set(own)
    for prefix in WRAPPER_PREFIXES:
        if state_dict and all(key.startswith(prefix) for key in state_dict):
            stripped = {key.removeprefix(prefix): value for key, value in state_dict.items()}
            if own is None or len(stripped.keys() & own) > len(state_dict.keys() & own):
                state_dict = stripped
    return state_dict


def infer_num_classes(model: nn.Module, state_dict: dict[str, Tensor]) -> Optional[int]:
    """The number of classes of `state_dict`'s head when it differs from `model`'s: the first dimension of the
    weights whose shapes disagree only there (the classifier); None when every shape fits."""
    own = model.state_dict()
    state_dict = fitted_state(state_dict, own)
    sizes = {int(v.shape[0]) for k, v in state_dict.items() if k in own and v.dim() >= 1 and own[k].dim() == v.dim()
             and v.shape != own[k].shape and v.shape[1:] == own[k].shape[1:]}
    if len(sizes) > 1:
        raise UsageError(f"cannot tell the number of classes from the checkpoint (head sizes {sorted(sizes)}): "
                         f"pass --num-classes")
    return sizes.pop() if sizes else None


def load_state(model: nn.Module, checkpoint: Checkpoint, name: str) -> nn.Module:
    """Load `checkpoint`'s weights into `model` (architecture `name`), strictly; returns `model`."""
    own = model.state_dict()
    state = fitted_state(checkpoint.state_dict, own)
    problems = {"missing": [k for k in own if k not in state], "unexpected": [k for k in state if k not in own],
                "shape mismatch": [k for k, v in state.items() if k in own and v.shape != own[k].shape]}
    if any(problems.values()):
        parts = [f"{label} {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''} ({len(keys)})"
                 for label, keys in problems.items() if keys]
        raise UsageError(f"{checkpoint.source} does not fit {name}: {'; '.join(parts)}; pass the --model it was "
                         f"trained as (and --num-classes if its head differs)")
    model.load_state_dict(state)
    return model
