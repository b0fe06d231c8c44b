"""Shift consistency of a model over a timm evaluation loader, exact under distributed evaluation.

timm's distributed eval loader (`OrderedDistributedSampler`) gives process `r` the samples
`r, r + W, r + 2W, ...` and pads the last ones with repeats of the first samples so every process
has as many. Here every sample is keyed by its dataset index, read from the loader's sampler: the core metric draws
its views from that index and counts each index once over all processes, so the padding repeats are not counted and
the result equals a single-process evaluation of the same model.
"""
from __future__ import annotations

import sys
from contextlib import suppress
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.utils.data import IterableDataset

from augshift.metrics import ShiftConsistency
from augshift.report import ConsistencyReport
from augshift.progress import progress_bar


def loader_indices(loader) -> Tensor:
    """Dataset indices (M,) of the samples this process's `loader` yields, in order.

    Args:
        loader: a `DataLoader` over a map-style dataset whose `sampler` has a length (iterable datasets
            raise ValueError: they do not say which sample is which).

    Returns:
        The indices, long.

    Examples:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> dataset = TensorDataset(torch.randn(3, 3, 8, 8), torch.zeros(3, dtype=torch.long))
        >>> loader_indices(DataLoader(dataset, sampler=[0, 1, 2, 0], batch_size=2)).tolist()  # a padded one
        [0, 1, 2, 0]
    """
    sampler = getattr(loader, "sampler", None)
    iterable = isinstance(getattr(loader, "dataset", None), IterableDataset)
    if iterable or sampler is None or not hasattr(sampler, "__len__"):
        raise ValueError(
            "shift consistency needs a map-style validation dataset with a sampler (an image folder, parquet or "
            "hfds/ dataset); iterable datasets (tfds/, wds/, hfids/) do not say which sample is which"
        )
    return torch.tensor([int(i) for i in sampler], dtype=torch.long)


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
    """Shift consistency of `model` (in eval mode) over `loader`'s `(input, target)` batches.

    Every sample's views are drawn from its dataset index (`loader_indices`); under torch.distributed every
    process must call this (the counts are gathered), and padding repeats of timm's eval sampler are not counted.

    Args:
        model: the classifier, already in eval mode (the caller sets it, as train.py's `validate` does).
        loader: yields `(input (B, C, H, W), target (B,))` batches of a map-style dataset, in its sampler's
            order.
        device: where the batches go when `to_device`.
        to_device: move batches to `device` / `model_dtype` (False for timm's prefetching loader,
            whose batches are already there).
        channels_last: make the inputs channels-last.
        model_dtype: the inputs' dtype when `to_device` (None: unchanged).
        amp_autocast: a context manager factory the forwards run in (timm's `amp_autocast`; default none).
        progress: show a progress bar (`progress_bar`) when stderr is a
            terminal (not in the log files of batch jobs).
        options: those of `ShiftConsistency` (`max_shift`, `mode`, `protocols`,
            `chunk_size`, ...).

    Returns:
        A `ConsistencyReport` over every sample once.

    Raises:
        RuntimeError: when the loader yields more or fewer samples than its sampler lists.

    Examples:
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
    indices = loader_indices(loader)
    metric = ShiftConsistency(**options)
    offset = 0
    for input, target in progress_bar(loader, desc="shift consistency", enabled=progress and sys.stderr.isatty()):
        if to_device:
            input, target = input.to(device=device, dtype=model_dtype), target.to(device=device)
        if channels_last:
            input = input.contiguous(memory_format=torch.channels_last)
        n = input.shape[0]
        if offset + n > len(indices):
            raise RuntimeError(f"the loader yielded more samples than its sampler lists ({len(indices)})")
        with amp_autocast():
            metric.update(model, input, target, indices[offset:offset + n])
        offset += n
    if offset != len(indices):
        raise RuntimeError(f"the loader yielded {offset} samples but its sampler lists {len(indices)}")
    return metric.compute()
