"""Where training batches come from: `BatchSource` (what `fit` reads: steps per epoch and each epoch's batches),
`steps_per_epoch`, and `TensorBatches`, in-memory `uint8` images as a `BatchSource` for one process (shuffled
per epoch, sharded over processes, normalised and optionally flipped on the fly).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor

from ..data.batches import iterate_batches
from ..data.stats import Normalization
from ..distributed import Dist
from ..errors import UsageError
from ..seeding import Stream, epoch_seed, stream_generator

__all__ = ["BatchSource", "TensorBatches", "steps_per_epoch"]

Batches = Iterable[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class BatchSource:
    """Training batches: `batches(epoch)` yields `steps` pairs (inputs, targets) for that epoch.

    Args:
        steps: the number of pairs `batches` yields per epoch (the optimisation steps of an epoch).
        batches: `batches(epoch)` (`epoch` from 0) -> an iterable of (inputs (N, C, H, W) float, targets (N,))
            for that epoch; it must give the same batches when called again for the same epoch (a resumed run
            replays it).

    Examples:
        >>> pair = (torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))
        >>> source = BatchSource(steps=2, batches=lambda epoch: [pair, pair])
        >>> [tuple(inputs.shape) for inputs, targets in source.batches(0)]
        [(4, 3, 8, 8), (4, 3, 8, 8)]
    """

    steps: int
    batches: Callable[[int], Batches]


def steps_per_epoch(count: int, batch_size: int, *, drop_last: bool) -> int:
    """Batches per epoch of `count` items.

    Args:
        count: the items of an epoch (one process's share).
        batch_size: items per batch.
        drop_last: leave out the last partial batch, so that every batch has one shape (the captured step); fewer
            items than a batch still make one batch, of one shape all the same.

    Returns:
        `ceil(count / batch_size)`, or with `drop_last` `max(1, floor(count / batch_size))`.

    Examples:
        >>> [steps_per_epoch(10, 4, drop_last=False), steps_per_epoch(10, 4, drop_last=True)]
        [3, 2]
        >>> steps_per_epoch(3, 4, drop_last=True)
        1
    """
    return max(1, count // batch_size) if drop_last else -(-count // batch_size)


class TensorBatches:
    """In-memory `uint8` images (N, C, H, W) and labels (N,) as a `BatchSource` for one process.

    Every epoch one permutation shared by all processes (seeded by `seed` and the epoch) is cut to a multiple
    of the world size and dealt round-robin, so each process takes `batch_size / world` samples per step and
    all take the same number of steps.

    Args:
        images: `uint8` images (N, C, H, W); batches are made (and normalised) on their device.
        labels: labels (N,) (class indices), on the same device.
        batch_size: the global batch, divisible by `place.world`; each process takes `batch_size / world`.
        seed: the run's seed (the epoch's permutation and the flips are keyed by it).
        normalization: the per-channel statistics the batches are normalised with.
        place: this process's `Dist` (rank and world size).
        hflip: mirror a random half of each batch horizontally (a per-epoch, per-process stream).
        drop_last: leave out the last partial batch, so every batch has one shape (what a compiled step needs).

    Calling it with an epoch (from 0) yields that epoch's normalised float batches (n, C, H, W) and labels (n,);
    `steps` is the number of batches per epoch, `shard` this process's sample indices of an epoch, and
    `source` the `BatchSource` `fit` takes. Fewer images than a batch make one
    partial batch (with `drop_last` too); fewer images than processes raise `UsageError`.

    Examples:
        >>> images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
        >>> labels = torch.randint(0, 3, (10,))
        >>> normalization = Normalization.of_images(images, source="the example images")
        >>> batches = TensorBatches(images, labels, batch_size=4, seed=0, normalization=normalization, hflip=True)
        >>> batches.steps, [tuple(x.shape) for x, y in batches(0)]
        (3, [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)])
        >>> TensorBatches(images, labels, batch_size=4, seed=0, normalization=normalization, drop_last=True).steps
        2
        >>> half = TensorBatches(images, labels, batch_size=4, seed=0, normalization=normalization,
        ...                      place=Dist(rank=1, world=2))  # process 1 of 2: 5 of the 10 images, 2 per step
        >>> half.steps, len(half.shard(0)), half.source().steps
        (3, 5, 3)
    """

    def __init__(
        self, images: Tensor, labels: Tensor, *, batch_size: int, seed: int, normalization: Normalization,
        place: Dist = Dist(), hflip: bool = False, drop_last: bool = False,
    ) -> None:
        if batch_size % place.world:
            raise UsageError(f"batch size {batch_size} must be divisible by the number of processes {place.world}: "
                             f"pass a multiple of {place.world}")
        self.images, self.labels, self.seed, self.place, self.hflip = images, labels, seed, place, hflip
        self.normalization = normalization
        self.local_batch = batch_size // place.world
        shard = (len(images) - len(images) % place.world) // place.world
        if shard == 0:
            raise UsageError(f"{len(images)} training images cannot be shared by {place.world} processes")
        self.steps = steps_per_epoch(shard, self.local_batch, drop_last=drop_last)

    def shard(self, epoch: int) -> Tensor:
        """This process's sample indices for `epoch`: one permutation per epoch shared by all processes, dealt
        round-robin.

        Examples:
            >>> images, labels = torch.zeros(8, 3, 4, 4, dtype=torch.uint8), torch.zeros(8, dtype=torch.long)
            >>> stats = Normalization((0.5,) * 3, (0.25,) * 3, "by hand")
            >>> first, second = (TensorBatches(images, labels, batch_size=4, seed=0, normalization=stats,
            ...                                place=Dist(rank=rank, world=2)).shard(0) for rank in (0, 1))
            >>> sorted(first.tolist() + second.tolist())  # the two processes share the epoch's images
            [0, 1, 2, 3, 4, 5, 6, 7]
        """
        n, place = len(self.images), self.place
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch, -1)))
        return order[: n - n % place.world][place.rank::place.world][: self.steps * self.local_batch].to(
            self.images.device)

    def __call__(self, epoch: int) -> Batches:
        device = self.images.device
        flips = stream_generator(self.seed, epoch, self.place.rank + 1, Stream.FLIP, device=device)
        for x, y, _ in iterate_batches(self.images, self.labels, self.local_batch, indices=self.shard(epoch),
                                       normalization=self.normalization):
            if self.hflip:  # drawn on the device: no copy, no wait
                flip = torch.rand(len(x), generator=flips, device=device) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            yield x, y

    def source(self) -> BatchSource:
        return BatchSource(self.steps, self)
