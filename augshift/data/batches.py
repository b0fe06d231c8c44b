"""Batches of in-memory `uint8` images, normalised per batch."""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from torch import Tensor

from ..errors import UsageError
from .stats import Normalization, normalize


def iterate_batches(
    images: Tensor, labels: Tensor, batch_size: int, *, normalization: Normalization,
    generator: Optional[torch.Generator] = None, indices: Optional[Tensor] = None,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Batches of in-memory images, normalised on the images' device.

    Args:
        images: `uint8` (N, C, H, W).
        labels: (N,) class indices.
        batch_size: images per batch (the last may be smaller).
        normalization: the statistics to normalise with.
        generator: shuffle with it (default: in order).
        indices: only these samples (e.g. one process's shard), in that order.

    Returns:
        An iterator of `(float32 images (B, C, H, W), labels (B,), dataset indices (B,))`.

    Examples:
        >>> images, labels = torch.zeros(5, 3, 4, 4, dtype=torch.uint8), torch.arange(5)
        >>> [len(b[0]) for b in iterate_batches(images, labels, 2, normalization=Normalization.of_images(
        ...     torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8), source="random"))]
        [2, 2, 1]
    """
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")
    stats = normalization.tensors(images.device)  # copied to the device once
    if indices is None:
        indices = torch.arange(len(images), device=images.device)
    if generator is not None:
        indices = indices[torch.randperm(len(indices), generator=generator).to(indices.device)]
    for start in range(0, len(indices), batch_size):
        batch = indices[start:start + batch_size]
        yield normalize(images[batch], stats), labels[batch], batch
