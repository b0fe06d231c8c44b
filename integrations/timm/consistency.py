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
    (M,) that is True for the first occurrence of each index over all processes (rank order)."""
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


def _first_output(model: Callable) -> Callable[[Tensor], Tensor]:
    def predict(x: Tensor) -> Tensor:
        output = model(x)
        return output[0] if isinstance(output, (tuple, list)) else output

    return predict


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

    ``to_device``: move batches to ``device`` / ``model_dtype`` (False for timm's prefetching loader,
    whose batches are already there). ``options`` are those of
    :class:`~augshift.metrics.ShiftConsistency`; ``progress`` shows a tqdm bar on terminals. Counts are
    summed over processes when torch.distributed is initialised; padding repeats of timm's eval sampler
    are not counted.
    """
    indices, keep = loader_indices(loader)
    metric = ShiftConsistency(**options)
    predict = _first_output(model)
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
            flags = metric.flags(predict, input, target, indices[offset:offset + n])
        metric.add(flags[keep[offset:offset + n].to(flags.device)])
        offset += n
    if offset != len(indices):
        raise RuntimeError(f"the loader yielded {offset} samples but its sampler lists {len(indices)}")
    return metric.compute(sync=True)
