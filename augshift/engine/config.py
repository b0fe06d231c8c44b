""":class:`TrainConfig`: the recipe the training engine runs (optimizer, schedule, augmentation, AugShift,
numerics), frozen and validated."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional

from ..config import AugShiftConfig
from ..shift import SHIFT_MODES
from ..errors import UsageError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "constant")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe (keyword use recommended).

    ``optimizer``: ``sgd`` (Nesterov, ``momentum``, ``weight_decay``) or ``adam`` (``betas``, ``weight_decay``);
    ``schedule``: ``onecycle`` (peak ``lr``, 15% warm-up, per step) or ``constant``; ``batch_size``: the global
    batch (split over data-parallel processes). ``max_shift``/``mode``: the shift augmentation of a run without
    AugShift (one randomly shifted view; 0 = none); ``augshift``: an :class:`~augshift.config.AugShiftConfig`
    to train with AugShift (its own ``max_shift``/``mode`` draw the two views), ``None`` for a plain run.
    ``hflip``: random horizontal flips of in-memory image batches (:class:`~augshift.engine.TensorBatches`).
    ``bn_batches``: after training, re-estimate BatchNorm statistics over that many training batches (0: keep
    the running averages). ``precision``: ``fp32``, or ``bf16`` autocast (the fast path on CUDA);
    ``channels_last``: model and inputs in channels-last memory format.
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "onecycle"
    seed: int = 0
    max_shift: int = 4
    mode: str = "zeros"
    hflip: bool = False
    augshift: Optional[AugShiftConfig] = None
    bn_batches: int = 0
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if self.max_shift < 0 or self.bn_batches < 0:
            raise UsageError(f"max_shift and bn_batches must be >= 0, got {self.max_shift} and {self.bn_batches}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                              ("mode", SHIFT_MODES)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"unknown {name} {getattr(self, name)!r}; supported: {', '.join(allowed)}")
        if self.augshift is not None and not isinstance(self.augshift, AugShiftConfig):
            raise TypeError(f"augshift must be an AugShiftConfig or None, got {type(self.augshift).__name__}")
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        augshift = values.get("augshift")
        return cls(**{**values, "augshift": AugShiftConfig(**augshift) if augshift else None})

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)
