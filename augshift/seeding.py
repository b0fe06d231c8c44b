"""The one seeding scheme: every random stream is keyed by `(seed, *keys)` through numpy's
`SeedSequence`, so streams never collide and an epoch of a process replays exactly after a resume.

Randomness drawn without an explicit generator (`RandomShift` and so AugShift, given none)
comes from `process_generator`: a stream of this process, keyed by a draw of torch's global generator and the
process's rank, so processes seeded alike (`accelerate.utils.set_seed` seeds every process with the same seed) still
draw different shifts, and the run's seed reproduces them.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Optional

import numpy as np
import torch

from .distributed import rank

__all__ = ["epoch_seed", "seed_generator"]


class Stream(IntEnum):
    """The key of every named random stream (beside the run's seed, and the epoch / step / rank where they apply):
    one table, so no two streams share a key.

    Examples:
        >>> int(Stream.SHIFT), stream_seed(0, Stream.SHIFT) == stream_seed(0, 1)
        (1, True)
    """

    SHIFT = 1  # AugShift's shifts (timm launcher: seed, stream, rank; transformers Trainer: seed, stream, step, rank)
    PERMUTE = 2  # PermuteNet's channel permutations in the timm launcher
    PERMUTENET = 3  # the permutation seed of a PermuteNet built by `augshift locate`
    ATTACK = 4  # the attack's random-channel draws
    CANVAS_SCORE = 5  # canvases drawn by each call of a position model's scorer (with the call's number)
    FLIP = 7  # the engine's horizontal flips (after epoch and rank + 1)


def stream_generator(seed: int, *keys: int, device: Optional[torch.device | str] = None) -> torch.Generator:
    """A `torch.Generator` on `device` (default CPU) seeded with `stream_seed` `(seed, *keys)`.

    Args:
        seed: the run's seed.
        *keys: the stream's keys (a `Stream` and, where they apply, epoch / step / rank).
        device: where the generator draws.

    Returns:
        The seeded generator.

    Examples:
        >>> stream_generator(0, Stream.ATTACK).initial_seed() == stream_seed(0, Stream.ATTACK)
        True
    """
    return torch.Generator(device=device or "cpu").manual_seed(stream_seed(seed, *keys))


def stream_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed for the stream `keys` (e.g. epoch and rank) of a run seeded with `seed`.

    Args:
        seed: the run's seed.
        *keys: the stream's keys (non-negative integers, e.g. epoch and rank + 1): different keys, or the same keys
            in another order, give independent streams.

    Returns:
        An integer in [0, 2**64), the same for the same `(seed, *keys)`.

    Examples:
        >>> stream_seed(0, 1, 2) == stream_seed(0, 1, 2) != stream_seed(0, 2, 1)
        True
        >>> 0 <= stream_seed(0, 1) < 2 ** 64
        True
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0])


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch of one process (`rank=-1`: the stream all processes share, e.g. data order).

    Args:
        seed: the run's seed.
        epoch: the epoch, from 0.
        rank: the process's rank, or -1 for the stream all processes share.

    Returns:
        `stream_seed` `(seed, epoch, rank + 1)`.

    Examples:
        >>> epoch_seed(0, epoch=3, rank=1) == stream_seed(0, 3, 2)
        True
        >>> epoch_seed(0, 3, rank=-1) != epoch_seed(0, 3, rank=0)  # the shared stream is not process 0's
        True
    """
    return stream_seed(seed, epoch, rank + 1)


def seed_generator(generator: torch.Generator, *, seed: int, epoch: int, rank: int) -> torch.Generator:
    """Re-seed `generator` for one epoch of one process (`epoch_seed`); returns it.

    Args:
        generator: the `torch.Generator` to re-seed (on any device), in place.
        seed: the run's seed.
        epoch: the epoch, from 0.
        rank: the process's rank (-1: the stream all processes share).

    Returns:
        `generator`, seeded with `epoch_seed` `(seed, epoch, rank)`.

    Examples:
        >>> generator = seed_generator(torch.Generator(), seed=0, epoch=2, rank=0)
        >>> generator.initial_seed() == epoch_seed(0, 2, 0)
        True
    """
    return generator.manual_seed(epoch_seed(seed, epoch, rank))


def process_generator(device: Optional[torch.device] = None) -> torch.Generator:
    """A fresh generator for this process's next draws, when the caller gave no generator.

    Its seed is `stream_seed` of one draw of torch's global (CPU) generator and this process's rank: seeded by
    `torch.manual_seed` / `accelerate.utils.set_seed` (the same seed on every process), processes still draw
    different numbers, the same ones again for the same seed, and a restored global RNG state (`accelerator.load_state`)
    replays them.

    Args:
        device: the device the generator draws on (default: CPU).

    Returns:
        A seeded `torch.Generator` on `device`.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> a = torch.randint(0, 100, (4,), generator=process_generator())
        >>> _ = torch.manual_seed(0)
        >>> torch.equal(a, torch.randint(0, 100, (4,), generator=process_generator()))  # the seed reproduces it
        True
    """
    return stream_generator(int(torch.randint(0, 2 ** 62, (1,))), rank(), device=device)
