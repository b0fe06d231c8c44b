"""Where this process stands in a data-parallel run: the one place that asks ``torch.distributed``.

Every part of augshift that behaves differently under several processes (the consistency metric's gathering, the
default shift stream, the engine's buffer averaging, the timm integration) asks here, so "several processes" means
one thing everywhere: an initialised process group of more than one process (``torchrun``, ``accelerate launch``,
a user's own ``init_process_group``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def world_size() -> int:
    """Processes in the initialised ``torch.distributed`` group (1 without one).

    Returns:
        The group's world size, or 1 when ``torch.distributed`` is unavailable or not initialised.

    Example:
        >>> world_size()
        1
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the initialised group (0 without one).

    Returns:
        The rank, from 0 (the main process).

    Example:
        >>> rank()
        0
    """
    return dist.get_rank() if world_size() > 1 else 0


def gather_objects(obj: Any) -> list:
    """``obj`` of every process, in rank order (a collective: every process must call it).

    Args:
        obj: any picklable object (CPU tensors, lists, dicts).

    Returns:
        ``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` in a single process.

    Example:
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

    Example:
        >>> bn = nn.BatchNorm2d(2)
        >>> broadcast_buffers(bn)  # one process: nothing to do
        >>> bn.running_mean.tolist()
        [0.0, 0.0]
    """
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, 0)
