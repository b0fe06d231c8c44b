"""Evaluation helpers: eval mode without gradients, and accuracy + shift consistency of in-memory images."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from ..data.batches import iterate_batches
from ..data.stats import CIFAR_MEAN, CIFAR_STD
from ..metrics import ConsistencyReport, evaluate_shift_consistency


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside the block; the training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def evaluate_classifier(
    model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 500, device: Any = "cpu",
    indices: Optional[Tensor] = None, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD,
    progress: bool = True, **options: Any,
) -> ConsistencyReport:
    """Accuracy and shift consistency of ``model`` on ``uint8`` images (N, C, H, W) and labels (N,).

    ``indices``: evaluate only those samples (e.g. one process's shard; the counts of disjoint shards add up to
    the whole). ``options`` go to :class:`~augshift.metrics.ShiftConsistency`.
    """
    batches = iterate_batches(images, labels, batch_size, indices=indices, mean=mean, std=std)
    return evaluate_shift_consistency(model, batches, device=torch.device(device), progress=progress, **options)
