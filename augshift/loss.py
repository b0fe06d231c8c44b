"""Consistency loss between the pooled features of two views of the same images."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .config import DEFAULTS, DISTANCES
from .errors import UsageError


class ConsistencyLoss(nn.Module):
    """Mean distance between paired features ``a``, ``b`` of shape (N, D) -> scalar.

    ``distance``: ``mse`` (mean squared error), ``l1`` (mean absolute error) or ``cosine``
    (1 - cosine similarity). ``normalize=True`` L2-normalises each feature vector first, so that the
    loss cannot be lowered by shrinking the features (``cosine`` is scale-free by construction).
    """

    def __init__(self, distance: str = DEFAULTS.distance, *, normalize: bool = False) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise UsageError(f"unknown distance {distance!r}; supported: {', '.join(DISTANCES)}")
        self.distance, self.normalize = distance, normalize

    def extra_repr(self) -> str:
        return f"distance={self.distance!r}, normalize={self.normalize}"

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape or a.dim() != 2:
            raise ValueError(f"features must both have shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
        if not (a.is_floating_point() and b.is_floating_point()):
            raise TypeError(f"features must be floating tensors, got {a.dtype} and {b.dtype}")
        a, b = a.float(), b.float()
        if self.distance == "cosine":
            return (1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()
        if self.normalize:
            a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        if self.distance == "mse":
            return F.mse_loss(a, b)
        return F.l1_loss(a, b)
