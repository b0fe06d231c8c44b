"""Batches of in-memory ``uint8`` images, normalised per batch."""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from ..errors import UsageError
from .stats import CIFAR_MEAN, CIFAR_STD, normalize


def iterate_batches(
    images: Tensor, labels: Tensor, batch_size: int, *, generator: Optional[torch.Generator] = None,
    indices: Optional[Tensor] = None, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(normalised images (B, C, H, W), labels (B,), dataset indices (B,))``; shuffled when
    ``generator`` is given. ``indices`` restricts the pass to those samples (e.g. one process's shard), in
    that order."""
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device)  # copied to the device once
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device)
    if indices is None:
        indices = torch.arange(len(images), device=images.device)
    if generator is not None:
        indices = indices[torch.randperm(len(indices), generator=generator).to(indices.device)]
    for start in range(0, len(indices), batch_size):
        batch = indices[start:start + batch_size]
        yield normalize(images[batch], mean_t, std_t), labels[batch], batch
