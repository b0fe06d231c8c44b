"""Where this process stands in a data-parallel run: the one place that asks `torch.distributed`.

Every part of augshift that behaves differently under several processes (the consistency metric's gathering, the
default shift stream, the engine's buffer averaging, the timm integration) asks here, so "several processes" means
one thing everywhere: an initialised process group of more than one process (`torchrun`, `accelerate launch`,
a user's own `init_process_group`). `init_distributed` joins the group a launcher started, `Dist` is
this process's place, and the collectives every data-parallel loop needs are here: `barrier`,
`gather_objects`, `average_buffers` and `broadcast_buffers`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["average_buffers", "broadcast_buffers", "init_distributed"]


def launched_world_size() -> int:
    """Processes the launcher started (`torchrun` / `accelerate launch` set `WORLD_SIZE`; 1 without one), known
    before the process group is initialised.

    Examples:
        >>> launched_world_size()  # a plain python process
        1
    """
    return int(os.environ.get("WORLD_SIZE", "1"))


def world_size() -> int:
    """Processes in the initialised `torch.distributed` group (1 without one).

    Returns:
        The group's world size, or 1 when `torch.distributed` is unavailable or not initialised.

    Examples:
        >>> world_size()
        1
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the initialised group (0 without one).

    Returns:
        The rank, from 0 (the main process).

    Examples:
        >>> rank()
        0
    """
    return dist.get_rank() if world_size() > 1 else 0


def gather_objects(obj: Any) -> list:
    """`obj` of every process, in rank order (a collective: every process must call it).

    Args:
        obj: any picklable object (CPU tensors, lists, dicts).

    Returns:
        `[obj of rank 0, obj of rank 1, ...]`; `[obj]` in a single process.

    Examples:
        >>> gather_objects({"a": 1})
        [{'a': 1}]
    """
    if world_size() == 1:
        return [obj]
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


@torch.no_grad()
def broadcast_buffers(module: nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm statistics): the model rank 0 saves is the one all evaluate.

    After data-parallel training each process holds the statistics of its own last batches (DDP copies rank 0's only
    at the start of a training forward), so processes evaluating their shards would score different models. A no-op
    in a single process (a collective otherwise: every process must call it).

    Args:
        module: the model (unwrapped); its buffers are replaced in place by rank 0's.

    Examples:
        >>> bn = nn.BatchNorm2d(2)
        >>> broadcast_buffers(bn)  # one process: nothing to do
        >>> bn.running_mean.tolist()
        [0.0, 0.0]
    """
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)


@dataclass(frozen=True)
class Dist:
    """This process's place: `rank` of `world` processes, running on `device`.

    Args:
        rank: this process's rank, from 0 (the main process).
        world: the number of processes (1: a single process).
        device: the device this process runs on (`cpu`, `cuda:0`...).

    Attributes:
        main: `rank == 0`, the process that writes files and prints.

    Examples:
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
    """Join the process group started by `torchrun` / `accelerate launch` (env `WORLD_SIZE` > 1).

    Args:
        device: this process's device, if given (`cuda` means `cuda:<LOCAL_RANK>`); else `cuda:<LOCAL_RANK>`
            when CUDA is available, else CPU. A CUDA device becomes the current one. The backend is NCCL on CUDA
            and gloo on CPU.

    Returns:
        This process's `Dist` (rank 0 of 1 when not launched data-parallel).

    Examples:
        >>> init_distributed("cpu")  # a plain `python` process: no WORLD_SIZE, no process group
        Dist(rank=0, world=1, device='cpu')
    """
    world, local = launched_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
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

    Examples:
        >>> barrier()  # a single process: returns at once
        >>> world_size()
        1
    """
    if world_size() > 1:
        dist.barrier()


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average `module`'s floating buffers (BatchNorm running mean / var) over all processes.

    DDP copies rank 0's buffers to the others at the start of every forward, so after the last step each
    rank holds its own last update: call this before evaluating or saving, so that every rank evaluates,
    and every checkpoint holds, one model. Works under `torchrun` and `accelerate launch` alike.

    Args:
        module: the model (unwrapped); its floating-point buffers are replaced in place by their mean over the
            processes (integer buffers such as `num_batches_tracked` are left alone). A no-op in a single process.

    Examples:
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
