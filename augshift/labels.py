"""Class-index labels: the range a K-class model can score and train on.

`check_labels` is how `augshift.ShiftConsistency` and `augshift.AugShiftObjective` refuse labels: a label outside
`[0, K)` (most often `-1`, the mark of a split whose labels are hidden) is a one-line `UsageError` instead of
cross-entropy's index error (a traceback on the CPU, a device-side assert on a GPU).
"""
from __future__ import annotations

from torch import Tensor

from .errors import UsageError

__all__ = ["check_labels"]


def check_labels(targets: Tensor, classes: int) -> None:
    """Refuse class indices outside `[0, classes)`: they can be neither scored nor trained on.

    Args:
        targets: class indices (N,).
        classes: the model's number of classes K.

    Raises:
        UsageError: naming the labels outside the range (at most five), and what `-1` usually means.

    Examples:
        >>> import torch
        >>> check_labels(torch.tensor([0, 2]), 3)
        >>> check_labels(torch.tensor([0, -1]), 3)
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: labels must be class indices in [0, 3) ...
    """
    if targets.numel() and (bool((targets < 0).any()) or bool((targets >= classes).any())):
        bad = sorted({int(t) for t in targets.flatten().tolist() if not 0 <= t < classes})
        hidden = (" (-1 marks a split whose labels are hidden, as hub test splits often are: use a labelled split)"
                  if -1 in bad else "")
        raise UsageError(f"labels must be class indices in [0, {classes}) for this {classes}-class model, got "
                         f"{bad[:5]}{hidden}")
