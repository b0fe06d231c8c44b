"""What the ``augshift`` commands share: the recorded command line, the device, result files, and the one
checkpoint format of models trained by the commands (plus loading plain / timm checkpoints)."""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..engine.checkpoint import save_checkpoint
from ..errors import UsageError
from ..models.checkpoints import infer_num_classes, load_state, read_checkpoint
from ..models.factory import create_model
from ..models.segmentation import create_segmentation_model
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
    """Save a model trained by a command: timm ``name`` and ``kwargs`` to rebuild it, ``meta``, ``state_dict``."""
    save_checkpoint(path, {"name": name, "kwargs": kwargs, "meta": meta, "state_dict": model.state_dict()})
    print(f"saved {name} to {path}")


def load_model(
    path: Optional[str], *, model: Optional[str] = None, num_classes: Optional[int] = None, pretrained: bool = False,
    segmentation: bool = False,
) -> tuple[torch.nn.Module, dict]:
    """The model of checkpoint ``path`` or, without one, ``model`` with its hub weights (``pretrained``); returns
    ``(model, meta)``.

    ``path``: any layout :func:`augshift.models.checkpoints.read_checkpoint` reads (a ``--save-model`` file, a timm
    ``train.py`` checkpoint or output folder, the Accelerate example's output folder, a plain state_dict).
    ``model`` names the architecture (needed for a plain state_dict; timm, ``torchvision/<name>``, or with
    ``segmentation`` a segmenter of :func:`~augshift.models.create_segmentation_model`); ``num_classes`` defaults
    to what the checkpoint records or its head's size. ``meta``: what a ``--save-model`` file records about the
    training task (``task``, ``grid``...), else ``{}``.
    """
    if path is None:
        if model is None or not pretrained:
            raise UsageError("no model to load: pass --checkpoint PATH (with --model NAME for a plain state_dict), "
                             "or --model NAME --pretrained for the hub weights")
        return _build(model, num_classes, pretrained=True, segmentation=segmentation), {}
    if pretrained:
        raise UsageError("--pretrained and --checkpoint both give the weights: pass one of them")
    checkpoint = read_checkpoint(path)
    if checkpoint.kwargs:  # a model saved by locate / attack --save-model
        name, meta = checkpoint.name, checkpoint.meta
        if meta.get("task") == "segmentation":
            net = create_segmentation_model(name, checkpoint.kwargs.get("num_classes"))
        else:
            import timm

            net = timm.create_model(name, **checkpoint.kwargs)
        return load_state(net, checkpoint, name), meta
    name = model or checkpoint.name
    if name is None:
        raise UsageError(f"{path} is a plain state_dict that does not name its architecture: pass --model NAME "
                         f"(e.g. --model resnet18, --model torchvision/resnet50, --model deeplabv3_resnet50)")
    aux = any(key.startswith("aux_classifier.") for key in checkpoint.state_dict)
    net = _build(name, num_classes or checkpoint.num_classes, segmentation=segmentation, aux_loss=aux)
    found = None if num_classes or checkpoint.num_classes else infer_num_classes(net, checkpoint.state_dict)
    if found is not None:
        net = _build(name, found, segmentation=segmentation, aux_loss=aux)
    return load_state(net, checkpoint, name), {}


def _build(
    name: str, num_classes: Optional[int], *, pretrained: bool = False, segmentation: bool = False,
    aux_loss: bool = False,
) -> torch.nn.Module:
    """Classifier ``name`` (:func:`~augshift.models.create_model`, 1000 classes unless given) or segmenter."""
    if segmentation:
        return create_segmentation_model(name, num_classes, pretrained=pretrained, aux_loss=aux_loss)
    try:
        return create_model(name, num_classes or 1000, pretrained=pretrained)
    except RuntimeError as error:  # timm: "Unknown model (...)"
        raise UsageError(f"cannot build --model {name!r} ({error}): give a timm model name or torchvision/<name>") from None


def create_named_model(name: str, **kwargs: Any) -> torch.nn.Module:
    """``timm.create_model(name, **kwargs)``; a name timm does not know is a :class:`UsageError`."""
    import timm

    if not timm.is_model(name):
        raise UsageError(f"timm has no model {name!r}; see timm.list_models() (e.g. resnet18, resnetblur18)")
    return timm.create_model(name, **kwargs)


def load_weights(model: torch.nn.Module, path: str) -> None:
    """Load checkpoint ``path`` (any layout of :func:`~augshift.models.checkpoints.read_checkpoint`) into ``model``."""
    load_state(model, read_checkpoint(path), type(model).__name__)
