"""This process's place in a data-parallel run (``torchrun`` / ``accelerate launch``), and the collectives
the engine needs: a barrier and averaging BatchNorm statistics."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, running on ``device``."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: Optional[str] = None) -> Dist:
    """Join the process group started by ``torchrun`` / ``accelerate launch`` (env ``WORLD_SIZE`` > 1).

    Device: ``device`` if given (``cuda`` means ``cuda:<LOCAL_RANK>``), else ``cuda:<LOCAL_RANK>`` when CUDA
    is available, else CPU; the backend is NCCL on CUDA and gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{local}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank() if world > 1 else 0, world, device)


def world_size() -> int:
    """Processes in the initialised torch.distributed group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if world_size() > 1:
        dist.barrier()


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average ``module``'s floating buffers (BatchNorm running mean / var) over all processes.

    DDP copies rank 0's buffers to the others at the start of every forward, so after the last step each
    rank holds its own last update: call this before evaluating or saving, so that every rank evaluates,
    and every checkpoint holds, one model. Works under ``torchrun`` and ``accelerate launch`` alike.
    """
    world = world_size()
    if world == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(world)
