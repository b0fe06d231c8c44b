"""AugShift in a Hugging Face Accelerate loop: the few helpers a multi-process loop needs.

``AugShift`` itself needs no adapter: it is an ``nn.Module``, so ``accelerator.prepare(AugShift(model))``,
``accelerator.backward``, ``accelerator.accumulate`` and mixed precision work unchanged. What a
data-parallel loop must add (see ``train.py`` next to this file, and the README):

* :func:`augshift.engine.seed_generator` -- every process draws its own shifts, reproducibly, also after a resume;
* :func:`augshift.engine.average_buffers` -- BatchNorm statistics made equal on every process before evaluating /
  saving;
* :func:`weights_digest` -- a fingerprint of the weights, to check that the processes agree;
* :func:`save_checkpoint` / :func:`last_checkpoint` -- ``accelerator.save_state`` per epoch, atomically.
"""
from __future__ import annotations

import glob
import hashlib
import os
from typing import Any, Optional

import torch
from torch import nn

from augshift.reporting.files import write_json_atomic


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of ``module.state_dict()`` (names, dtypes, shapes and bytes): equal iff the weights are."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(accelerator, directory: str, *, files: Optional[dict[str, Any]] = None) -> None:
    """``accelerator.save_state(directory)`` atomically (written beside it, then renamed); call on every process.

    ``files``: ``{file name: JSON-able object}`` written into the checkpoint before the rename (e.g. the metrics so
    far), so they are saved, and resumed, together with the state."""
    accelerator.save_state(directory + ".tmp")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, obj in (files or {}).items():
            write_json_atomic(os.path.join(directory + ".tmp", name), obj)
        os.replace(directory + ".tmp", directory)
    accelerator.wait_for_everyone()


def last_checkpoint(directory: str, prefix: str = "epoch_") -> tuple[Optional[str], int]:
    """The newest ``<directory>/<prefix><n>`` checkpoint and its ``n``; ``(None, 0)`` when there is none."""
    found = {int(path.rsplit(prefix, 1)[1]): path for path in glob.glob(os.path.join(directory, f"{prefix}*[0-9]"))}
    return (found[max(found)], max(found)) if found else (None, 0)


__all__ = ["last_checkpoint", "save_checkpoint", "weights_digest"]
