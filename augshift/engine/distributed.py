"""This process's place in a data-parallel run (``torchrun`` / ``accelerate launch``), and the collectives
the engine needs: a barrier and averaging BatchNorm statistics."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from ..distributed import world_size


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, running on ``device``.

    Args:
        rank: this process's rank, from 0 (the main process).
        world: the number of processes (1: a single process).
        device: the device this process runs on (``cpu``, ``cuda:0``...).

    Attributes:
        main: ``rank == 0``, the process that writes files and prints.

    Example:
        >>> Dist().main, Dist().world
        (True, 1)
        >>> Dist(rank=1, world=2, device="cuda:1").main
        False
    """

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: Optional[str] = None) -> Dist:
    """Join the process group started by ``torchrun`` / ``accelerate launch`` (env ``WORLD_SIZE`` > 1).

    Args:
        device: this process's device, if given (``cuda`` means ``cuda:<LOCAL_RANK>``); else ``cuda:<LOCAL_RANK>``
            when CUDA is available, else CPU. A CUDA device becomes the current one. The backend is NCCL on CUDA
            and gloo on CPU.

    Returns:
        This process's :class:`Dist` (rank 0 of 1 when not launched data-parallel).

    Example:
        >>> init_distributed("cpu")  # a plain ``python`` process: no WORLD_SIZE, no process group
        Dist(rank=0, world=1, device='cpu')
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


def barrier() -> None:
    """Wait for every process (no-op in a single process).

    Example:
        >>> barrier()  # a single process: returns at once
        >>> world_size()
        1
    """
    if world_size() > 1:
        dist.barrier()


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average ``module``'s floating buffers (BatchNorm running mean / var) over all processes.

    DDP copies rank 0's buffers to the others at the start of every forward, so after the last step each
    rank holds its own last update: call this before evaluating or saving, so that every rank evaluates,
    and every checkpoint holds, one model. Works under ``torchrun`` and ``accelerate launch`` alike.

    Args:
        module: the model (unwrapped); its floating-point buffers are replaced in place by their mean over the
            processes (integer buffers such as ``num_batches_tracked`` are left alone). A no-op in a single process.

    Example:
        >>> bn = nn.BatchNorm2d(2)
        >>> _ = bn(torch.randn(4, 2, 3, 3))
        >>> before = bn.running_mean.clone()
        >>> average_buffers(bn)  # one process: nothing to average
        >>> torch.equal(bn.running_mean, before)
        True
    """
    world = world_size()
    if world == 1:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(world)
