"""The one seeding scheme: every random stream is keyed by ``(seed, *keys)`` through numpy's
``SeedSequence``, so streams never collide and an epoch of a process replays exactly after a resume."""
from __future__ import annotations

import numpy as np
import torch


def stream_seed(seed: int, *keys: int) -> int:
    """A 64-bit seed for the stream ``keys`` (e.g. epoch and rank) of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)[0])


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one epoch of one process (``rank=-1``: the stream all processes share, e.g. data order)."""
    return stream_seed(seed, epoch, rank + 1)


def seed_generator(generator: torch.Generator, *, seed: int, epoch: int, rank: int) -> torch.Generator:
    """Re-seed ``generator`` for one epoch of one process (:func:`epoch_seed`); returns it."""
    return generator.manual_seed(epoch_seed(seed, epoch, rank))
