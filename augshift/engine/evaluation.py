"""Accuracy and shift consistency of in-memory images (eval mode without gradients: `augshift.outputs.evaluating`)."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from ..data.batches import iterate_batches
from ..data.stats import Normalization
from ..metrics import evaluate_shift_consistency
from ..report import ConsistencyReport


def evaluate_classifier(
    model: nn.Module, images: Tensor, labels: Tensor, *, normalization: Normalization, batch_size: int = 500,
    device: Any = "cpu", indices: Optional[Tensor] = None, progress: bool = True, **options: Any,
) -> ConsistencyReport:
    """Accuracy and shift consistency of `model` on `uint8` images (N, C, H, W) and labels (N,), normalised with
    `normalization`.

    Args:
        model: the classifier (logits (N, K)); evaluated in eval mode, its previous mode restored after.
        images: `uint8` images (N, C, H, W), on any device (each batch is moved to `device`).
        labels: class indices (N,).
        normalization: the per-channel statistics the model's inputs are normalised with.
        batch_size: images per forward.
        device: where to evaluate.
        indices: evaluate only those samples (M,) (e.g. one process's shard; the counts of disjoint shards add up
            to the whole); `None`: all of them.
        progress: show a progress bar.
        **options: those of `ShiftConsistency` (`max_shift`, `mode`, `protocols`,
            `seed`, `curve_offsets`...).

    Returns:
        The `ConsistencyReport` of the evaluated samples (summed over processes).

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
        >>> labels = torch.randint(0, 3, (16,))
        >>> normalization = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "example")
        >>> report = evaluate_classifier(create_small_cnn(3, width=4), images, labels, normalization=normalization,
        ...                              batch_size=8, progress=False, max_shift=2, protocols=("random", "circular"))
        >>> report.samples, sorted(report.agree)
        (16, ['circular', 'random'])
        >>> evaluate_classifier(create_small_cnn(3, width=4), images, labels, normalization=normalization,
        ...                     indices=torch.arange(0, 16, 2), progress=False).samples
        8
    """
    batches = iterate_batches(images, labels, batch_size, indices=indices, normalization=normalization)
    return evaluate_shift_consistency(model, batches, device=torch.device(device), progress=progress, **options)
