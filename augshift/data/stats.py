"""Dataset statistics and normalisation of ``uint8`` images."""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import Tensor

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def normalize(images: Tensor, mean: Union[Sequence[float], Tensor] = CIFAR_MEAN,
              std: Union[Sequence[float], Tensor] = CIFAR_STD) -> Tensor:
    """``uint8`` (N, C, H, W) -> float32, scaled to [0, 1] and normalised per channel.

    ``mean``/``std``: per-channel sequences, or (C,) tensors already on the images' device (no copy per call).
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype}")
    m = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - m) / s
