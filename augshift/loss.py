"""Consistency loss between the pooled features of two views of the same images."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .config import DEFAULTS, check_distance, check_normalize


class ConsistencyLoss(nn.Module):
    """Mean distance between paired features `a`, `b` of shape (N, D) -> scalar.

    Args:
        distance: `mse` (mean squared error), `l1` (mean absolute error) or `cosine`
            (1 - cosine similarity).
        normalize: `True` L2-normalises each feature vector first, so that the loss cannot be lowered by
            shrinking the features (`cosine` is scale-free by construction).

    `forward(a, b)`: two floating tensors of the same shape (N, D) (row `i` of `a` paired with row `i` of
    `b`).

    Returns:
        A scalar tensor (float32): the mean distance over the N pairs.

    Examples:
        >>> a = torch.randn(4, 8)
        >>> ConsistencyLoss("mse")(a, a).item()
        0.0
        >>> bool(ConsistencyLoss("cosine")(a, 2 * a) < 1e-6)  # cosine ignores the scale
        True
        >>> bool(ConsistencyLoss("l1", normalize=True)(a, 3 * a) < 1e-6)  # so does any distance after normalize
        True
    """

    def __init__(self, distance: str = DEFAULTS.distance, *, normalize: bool = DEFAULTS.normalize) -> None:
        super().__init__()
        self.distance, self.normalize = check_distance(distance), check_normalize(normalize)

    def extra_repr(self) -> str:
        return f"distance={self.distance!r}, normalize={self.normalize}"

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """The mean distance between the rows of `a` and `b` (N, D): a scalar.

        Examples:
            >>> a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
            >>> ConsistencyLoss("l1")(a, b).item()  # (0 + 0 + 0 + 2) / 4
            0.5
        """
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
