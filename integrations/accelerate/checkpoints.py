"""What the Accelerate example (`train.py`) adds to a plain Accelerate loop: resumable atomic checkpoints, the
final model saved loadable by its zoo, and a fingerprint of the weights to check that the processes agree."""
from __future__ import annotations

import glob
import hashlib
import os
from typing import Any, Optional

import torch
from torch import nn

from augshift.data import Normalization
from augshift.models.zoos.transformers import image_processor_of
from augshift.reporting.files import write_json_atomic


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of `module.state_dict()` (names, dtypes, shapes and bytes): equal iff the weights are.

    Args:
        module: the model (buffers such as BatchNorm statistics count too); compare the unwrapped model's digest
            across processes.

    Returns:
        The hex digest, 64 characters.

    Examples:
        >>> model = nn.Linear(2, 3)
        >>> copy = nn.Linear(2, 3)
        >>> copy.load_state_dict(model.state_dict())
        <All keys matched successfully>
        >>> weights_digest(model) == weights_digest(copy), len(weights_digest(model))
        (True, 64)
        >>> with torch.no_grad():
        ...     copy.bias[0] += 1
        >>> weights_digest(model) == weights_digest(copy)
        False
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(accelerator, directory: str, *, files: Optional[dict[str, Any]] = None) -> None:
    """`accelerator.save_state(directory)` atomically (written beside it, then renamed); call on every process.

    Args:
        accelerator: the `accelerate.Accelerator` whose prepared objects are saved.
        directory: the checkpoint folder (its state is first written to `<directory>.tmp`).
        files: `{file name: JSON-able object}` written into the checkpoint before the rename (e.g. the metrics so
            far), so they are saved, and resumed, together with the state.

    Examples:
        >>> import tempfile
        >>> from accelerate import Accelerator
        >>> accelerator = Accelerator(cpu=True)
        >>> model = accelerator.prepare(nn.Linear(2, 3))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_checkpoint(accelerator, os.path.join(tmp.name, "epoch_1"), files={"metrics.json": {"epoch": 1}})
        >>> sorted(os.listdir(tmp.name)), "metrics.json" in os.listdir(os.path.join(tmp.name, "epoch_1"))
        (['epoch_1'], True)
        >>> tmp.cleanup()
    """
    accelerator.save_state(directory + ".tmp")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, obj in (files or {}).items():
            write_json_atomic(os.path.join(directory + ".tmp", name), obj)
        os.replace(directory + ".tmp", directory)
    accelerator.wait_for_everyone()


def last_checkpoint(directory: str, prefix: str = "epoch_") -> tuple[Optional[str], int]:
    """The newest `<directory>/<prefix><n>` checkpoint and its `n`; `(None, 0)` when there is none.

    Args:
        directory: the folder holding the checkpoints (`save_checkpoint`'s `directory` is inside it).
        prefix: the checkpoints' name before the number.

    Returns:
        `(path, n)` of the checkpoint with the largest `n` (by number, not by name), or `(None, 0)`.

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> last_checkpoint(tmp.name)
        (None, 0)
        >>> for n in (2, 10):
        ...     os.makedirs(os.path.join(tmp.name, f"epoch_{n}"))
        >>> path, epoch = last_checkpoint(tmp.name)
        >>> os.path.basename(path), epoch
        ('epoch_10', 10)
        >>> tmp.cleanup()
    """
    candidates = glob.glob(os.path.join(directory, f"{prefix}*[0-9]"))
    found = {int(path.rsplit(prefix, 1)[1]): path for path in candidates if path.rsplit(prefix, 1)[1].isdigit()}
    return (found[max(found)], max(found)) if found else (None, 0)


def save_final_model(accelerator, model: nn.Module, directory: str, normalization: Normalization) -> None:
    """Save the trained `model` (unwrapped) into `directory`: `model.safetensors` with the plain model's keys,
    or, for a `transformers` model, `save_pretrained` (config and weights: `AutoModelForImageClassification`
    loads the folder) and, when its image processor can be read from the model's source, that processor with the
    `normalization` it was trained with (`AutoImageProcessor` loads it). Call on every process.

    Args:
        accelerator: the `accelerate.Accelerator` the model was prepared with.
        model: the trained model, prepared (wrapped) or not.
        directory: the output folder.
        normalization: the `Normalization` the model was trained with (written into a
            `transformers` model's image processor).

    Examples:
        >>> import tempfile
        >>> from accelerate import Accelerator
        >>> accelerator = Accelerator(cpu=True)
        >>> model = accelerator.prepare(nn.Linear(2, 3))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_final_model(accelerator, model, tmp.name, Normalization((0.5,) * 3, (0.25,) * 3, "the data"))
        >>> os.listdir(tmp.name)
        ['model.safetensors']
        >>> tmp.cleanup()
    """
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if not hasattr(model, "save_pretrained"):
        accelerator.save_model(model, directory)
        return
    model.save_pretrained(directory, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    source = getattr(model.config, "_name_or_path", "")
    processor = image_processor_of(source) if accelerator.is_main_process and source else None
    if processor is not None:  # (a model from a config alone has none)
        processor.image_mean, processor.image_std = list(normalization.mean), list(normalization.std)
        processor.save_pretrained(directory)


