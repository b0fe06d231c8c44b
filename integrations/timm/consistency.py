"""Shift consistency of a model over a timm evaluation loader, exact under distributed evaluation.

timm's distributed eval loader (``OrderedDistributedSampler``) gives process ``r`` the samples
``r, r + W, r + 2W, ...`` and pads the last ones with repeats of the first samples so every process
has as many. Here every sample is keyed by its dataset index (the core metric draws its shifts from
that index), the padding repeats are dropped, and the integer counts are summed over processes, so
the result equals a single-process evaluation of the same model.
"""
from __future__ import annotations

from contextlib import suppress
from typing import Callable, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import IterableDataset
from tqdm.auto import tqdm

from augshift.metrics import ConsistencyReport, ShiftConsistency


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def loader_indices(loader) -> tuple[Tensor, Tensor]:
    """Dataset indices (M,) of the samples this process's ``loader`` yields, in order, and a bool mask
    (M,) that is True for the first occurrence of each index over all processes (rank order).

    Under torch.distributed the processes' index lists are gathered (a collective: every process must call it),
    so the padding repeats of timm's ``OrderedDistributedSampler`` are False on the process that holds them.

    Args:
        loader: a ``DataLoader`` over a map-style dataset whose ``sampler`` has a length (iterable datasets
            raise ValueError: they do not say which sample is which).

    Returns:
        ``(indices (M,) long, keep (M,) bool)``.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> dataset = TensorDataset(torch.randn(3, 3, 8, 8), torch.zeros(3, dtype=torch.long))
        >>> indices, keep = loader_indices(DataLoader(dataset, sampler=[0, 1, 2, 0], batch_size=2))  # a padded one
        >>> indices.tolist(), keep.tolist()
        ([0, 1, 2, 0], [True, True, True, False])
    """
    sampler = getattr(loader, "sampler", None)
    iterable = isinstance(getattr(loader, "dataset", None), IterableDataset)
    if iterable or sampler is None or not hasattr(sampler, "__len__"):
        raise ValueError(
            "shift consistency needs a map-style validation dataset with a sampler (an image folder, parquet or "
            "hfds/ dataset); iterable datasets (tfds/, wds/, hfids/) do not say which sample is which"
        )
    own = [int(i) for i in sampler]
    lists = [own]
    rank = 0
    if _distributed():
        lists = [None] * dist.get_world_size()
        dist.all_gather_object(lists, own)
        rank = dist.get_rank()
    seen: set[int] = set()
    keep: list[bool] = []
    for r, indices in enumerate(lists):
        for index in indices:
            if r == rank:
                keep.append(index not in seen)
            seen.add(index)
    return torch.tensor(own, dtype=torch.long), torch.tensor(keep, dtype=torch.bool)


@torch.no_grad()
def loader_shift_consistency(
    model: nn.Module,
    loader,
    *,
    device: torch.device,
    to_device: bool = True,
    channels_last: bool = False,
    model_dtype: Optional[torch.dtype] = None,
    amp_autocast: Callable = suppress,
    progress: bool = False,
    **options,
) -> ConsistencyReport:
    """Shift consistency of ``model`` (in eval mode) over ``loader``'s ``(input, target)`` batches.

    Every sample's views are drawn from its dataset index (:func:`loader_indices`). Counts are summed over
    processes when torch.distributed is initialised; padding repeats of timm's eval sampler are not counted.

    Args:
        model: the classifier, already in eval mode (the caller sets it, as train.py's ``validate`` does).
        loader: yields ``(input (B, C, H, W), target (B,))`` batches of a map-style dataset, in its sampler's
            order.
        device: where the batches go when ``to_device``.
        to_device: move batches to ``device`` / ``model_dtype`` (False for timm's prefetching loader,
            whose batches are already there).
        channels_last: make the inputs channels-last.
        model_dtype: the inputs' dtype when ``to_device`` (None: unchanged).
        amp_autocast: a context manager factory the forwards run in (timm's ``amp_autocast``; default none).
        progress: show a tqdm bar on terminals.
        options: those of :class:`~augshift.metrics.ShiftConsistency` (``max_shift``, ``mode``, ``protocols``,
            ``chunk_size``, ...).

    Returns:
        A :class:`~augshift.metrics.ConsistencyReport` over every sample once.

    Raises:
        RuntimeError: when the loader yields more or fewer samples than its sampler lists.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(4, 2)).eval()
        >>> dataset = TensorDataset(torch.randn(6, 3, 16, 16), torch.zeros(6, dtype=torch.long))
        >>> loader = DataLoader(dataset, sampler=[0, 1, 2, 3, 4, 5, 0, 1], batch_size=4)  # 2 padding repeats
        >>> report = loader_shift_consistency(model, loader, device=torch.device("cpu"), max_shift=2,
        ...                                   protocols=("random",))
        >>> report.samples, 0.0 <= report.consistency("random") <= 100.0
        (6, True)
    """
    indices, keep = loader_indices(loader)
    metric = ShiftConsistency(**options)
    offset = 0
    for input, target in tqdm(loader, desc="shift consistency", disable=None if progress else True, leave=False):
        if to_device:
            input, target = input.to(device=device, dtype=model_dtype), target.to(device=device)
        if channels_last:
            input = input.contiguous(memory_format=torch.channels_last)
        n = input.shape[0]
        if offset + n > len(indices):
            raise RuntimeError(f"the loader yielded more samples than its sampler lists ({len(indices)})")
        with amp_autocast():
            flags = metric.flags(model, input, target, indices[offset:offset + n])
        counted = keep[offset:offset + n]
        metric.add({name: values[counted.to(values.device)] for name, values in flags.items()})
        offset += n
    if offset != len(indices):
        raise RuntimeError(f"the loader yielded {offset} samples but its sampler lists {len(indices)}")
    return metric.compute(sync=True)
