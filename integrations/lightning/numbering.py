"""Which dataset samples each evaluation batch holds: the integration numbers the samples itself.

Lightning's evaluation batches carry no dataset index (an `ImageFolder` gives `(image, label)`), and under
several processes Lightning's `DistributedSampler` pads the last shard with repeats. The order of an unshuffled
sampler is fixed, so the positions of the samples of batch `i` are the `i`-th list of the loader's batch
sampler: `batch_indices` reads them once per evaluation, and `augshift.metrics.ShiftConsistency` keys every view by
them and counts each once, repeats included.
"""
from __future__ import annotations

from typing import Any, Optional

from torch.utils.data import DistributedSampler, SequentialSampler

from augshift.distributed import world_size
from augshift.errors import UsageError


def _ordered(loader: Any) -> bool:
    """Whether `loader` draws its samples in a fixed order: an unshuffled sequential or distributed sampler."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        return not sampler.shuffle
    return isinstance(sampler, SequentialSampler) and getattr(loader, "batch_sampler", None) is not None


def batch_indices(loader: Any, *, stage: str) -> Optional[list[list[int]]]:
    """The dataset positions of the samples of each batch `loader` yields, in order.

    Args:
        loader: one evaluation `DataLoader` as the trainer prepared it (its sampler sharded by Lightning).
        stage: `validate` or `test`, for the message.

    Returns:
        `[[positions of batch 0], [positions of batch 1], ...]` (padding repeats included); `None` on one process
        when the order is not fixed (an iterable dataset, a shuffled sampler): then samples are numbered as they
        come. Several processes without a fixed order are refused, as they cannot be counted once each.

    Examples:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.zeros(5, 1)), batch_size=2)
        >>> batch_indices(loader, stage="validate")
        [[0, 1], [2, 3], [4]]
    """
    if _ordered(loader):
        return [list(batch) for batch in loader.batch_sampler]
    if world_size() > 1:
        raise UsageError(f"shift consistency over {world_size()} processes numbers the {stage} samples by the "
                         "loader's fixed order to count each once: give the dataloader a map-style dataset (with a "
                         "length and indexing) and no shuffling, or evaluate on one process (--trainer.devices 1)")
    return None
