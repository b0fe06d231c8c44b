"""AugShift in a Hugging Face Accelerate loop: the few helpers a multi-process loop needs.

``AugShift`` itself needs no adapter: it is an ``nn.Module``, so ``accelerator.prepare(AugShift(model))``,
``accelerator.backward``, ``accelerator.accumulate`` and mixed precision work unchanged. What a
data-parallel loop must add (see ``train.py`` next to this file, and the README):

* :func:`seed_shifts` -- every process draws its own shifts, reproducibly, also after a resume;
* :func:`sync_buffers` -- BatchNorm statistics made equal on every process before evaluating / saving;
* :func:`weights_digest` -- a fingerprint of the weights, to check that the processes agree;
* :func:`save_checkpoint` / :func:`last_checkpoint` -- ``accelerator.save_state`` per epoch, atomically.
"""
from __future__ import annotations

import glob
import hashlib
import os
from typing import Optional

import numpy as np
import torch
from torch import nn


def seed_shifts(generator: torch.Generator, *, seed: int, epoch: int, process_index: int) -> torch.Generator:
    """Re-seed ``generator`` (the one given to ``AugShift(generator=...)``) for one epoch of one process.

    The seed mixes ``(seed, epoch, process_index)``, so every process draws different shifts, and an
    epoch replays exactly when training resumes from a checkpoint. Returns ``generator``.
    """
    state = np.random.SeedSequence([seed, epoch, process_index]).generate_state(1, dtype=np.uint64)
    return generator.manual_seed(int(state[0]))


@torch.no_grad()
def sync_buffers(accelerator, module: nn.Module) -> None:
    """Average ``module``'s floating-point buffers (BatchNorm running mean / var) over all processes.

    DDP copies rank 0's buffers to the other ranks at the start of every forward, so after the last
    training step each rank still holds its own last update. Call this before evaluating or saving, so
    every rank evaluates, and every checkpoint holds, the same model.
    """
    if accelerator.num_processes == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            buffer.copy_(accelerator.reduce(buffer, reduction="mean"))


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of ``module.state_dict()`` (names, dtypes, shapes and bytes): equal iff the weights are."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(accelerator, directory: str) -> None:
    """``accelerator.save_state(directory)`` atomically (written beside it, then renamed); call on every process."""
    accelerator.save_state(directory + ".tmp")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        os.replace(directory + ".tmp", directory)
    accelerator.wait_for_everyone()


def last_checkpoint(directory: str, prefix: str = "epoch_") -> tuple[Optional[str], int]:
    """The newest ``<directory>/<prefix><n>`` checkpoint and its ``n``; ``(None, 0)`` when there is none."""
    found = {int(path.rsplit(prefix, 1)[1]): path for path in glob.glob(os.path.join(directory, f"{prefix}*[0-9]"))}
    return (found[max(found)], max(found)) if found else (None, 0)


__all__ = ["last_checkpoint", "save_checkpoint", "seed_shifts", "sync_buffers", "weights_digest"]
