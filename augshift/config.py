"""The AugShift options, their defaults and their validation, in one place.

:class:`AugShiftConfig` is what the objective, the timm task, the training engine, the command line and the
benchmarks all take; :func:`add_augshift_arguments` adds its options to any ``argparse`` parser (with a
prefix, e.g. ``--augshift-max-shift`` for timm's ``train.py``) and :meth:`AugShiftConfig.from_args` reads
them back.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from typing import Union

from .shift import SHIFT_MODES
from .errors import UsageError

MaxShift = Union[int, tuple[int, int]]
DISTANCES = ("mse", "l1", "cosine")  # see augshift.loss.ConsistencyLoss


@dataclass(frozen=True)
class AugShiftConfig:
    """AugShift's options; invalid values raise ``ValueError``/``TypeError`` naming the fix.

    ``max_shift``: largest shift per axis in pixels (int or ``(max_dx, max_dy)``; 4 = the CIFAR pad-4 range);
    ``mode``: what fills the uncovered border (``zeros`` = pad-and-crop); ``weight``: weight of the consistency
    loss; ``distance``: ``mse`` (the paper's loss), ``l1`` or ``cosine`` (the default: measured best on
    CIFAR-10 at CPU scale, README "Defaults"); ``normalize``: L2-normalise the pooled features before an
    ``mse``/``l1`` distance.
    """

    max_shift: MaxShift = 4
    mode: str = "zeros"
    weight: float = 1.0
    distance: str = "cosine"
    normalize: bool = False

    def __post_init__(self) -> None:
        pair = self.max_shift if isinstance(self.max_shift, tuple) else (self.max_shift, self.max_shift)
        if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
            raise TypeError(f"max_shift must be a whole number of pixels (int) or a pair of ints, got {self.max_shift!r}")
        if min(pair) < 0:
            raise UsageError(f"max_shift must be >= 0 pixels, got {self.max_shift!r}")
        if self.mode not in SHIFT_MODES:
            raise UsageError(f"unknown shift mode {self.mode!r}; supported modes: {', '.join(SHIFT_MODES)}")
        if self.distance not in DISTANCES:
            raise UsageError(f"unknown distance {self.distance!r}; supported: {', '.join(DISTANCES)}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)):
            raise TypeError(f"weight must be a number, got {self.weight!r}")
        if not math.isfinite(self.weight) or self.weight < 0:
            raise UsageError(f"weight must be a finite number >= 0, got {self.weight!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, prefix: str = "") -> "AugShiftConfig":
        """The config of the options added by :func:`add_augshift_arguments` with the same ``prefix``."""
        dest = prefix.replace("-", "_")
        return cls(**{f.name: getattr(args, dest + f.name) for f in fields(cls)})


DEFAULTS = AugShiftConfig()


def add_augshift_arguments(parser: Union[argparse.ArgumentParser, argparse._ArgumentGroup], *,
                           prefix: str = "", defaults: AugShiftConfig = DEFAULTS) -> None:
    """Add ``--<prefix>max-shift``, ``--<prefix>mode``, ``--<prefix>weight``, ``--<prefix>distance`` and
    ``--<prefix>normalize`` to ``parser`` (an ``ArgumentParser`` or an argument group)."""
    add = parser.add_argument
    add(f"--{prefix}max-shift", type=int, default=defaults.max_shift, metavar="PX",
        help=f"largest shift per axis, in pixels (default: {defaults.max_shift})")
    add(f"--{prefix}mode", default=defaults.mode, choices=SHIFT_MODES,
        help=f"what fills the uncovered border of a shifted image (default: {defaults.mode})")
    add(f"--{prefix}weight", type=float, default=defaults.weight, metavar="W",
        help=f"weight of the consistency loss (default: {defaults.weight})")
    add(f"--{prefix}distance", default=defaults.distance, choices=DISTANCES,
        help=f"distance between the two views' pooled features (default: {defaults.distance})")
    add(f"--{prefix}normalize", action="store_true", default=defaults.normalize,
        help="L2-normalise the pooled features before an mse / l1 distance")
