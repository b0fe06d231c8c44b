"""`TrainConfig`: the recipe the training engine runs (optimizer, schedule, augmentation, AugShift,
numerics), frozen and validated."""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, replace
from typing import Optional, Union

import torch

from ..config import AugShiftConfig
from ..errors import UsageError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "constant")
PRECISIONS = ("fp32", "bf16")


def fused_option(optimizer_class: type, *, cuda: bool) -> dict[str, bool]:
    """`{"fused": True}` for an optimizer on CUDA whose constructor takes `fused` (torch's SGD gained it after
    Adam, within the releases the package allows), else `{}` (the default implementation).

    Examples:
        >>> fused_option(torch.optim.Adam, cuda=True), fused_option(torch.optim.Adam, cuda=False)
        ({'fused': True}, {})
    """
    return {"fused": True} if cuda and "fused" in inspect.signature(optimizer_class).parameters else {}


def fast_path(device: Union[str, torch.device]) -> dict:
    """The `TrainConfig` settings of the fast path on `device`: bf16 autocast, channels-last and the captured
    step (`compile`) on CUDA; none elsewhere (eager fp32 stays the CPU default).

    Args:
        device: where the run trains (`"cpu"`, `"cuda:0"`, a `torch.device`).

    Returns:
        `{"precision", "channels_last", "compile"}` on CUDA, else an empty dict.

    Examples:
        >>> fast_path("cuda:0"), fast_path("cpu")
        ({'precision': 'bf16', 'channels_last': True, 'compile': True}, {})
    """
    return dict(precision="bf16", channels_last=True, compile=True) if torch.device(device).type == "cuda" else {}


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe (keyword use recommended), validated when made (a bad value raises `UsageError`).

    Args:
        epochs: epochs to train (>= 1).
        batch_size: the global batch (>= 1; split over data-parallel processes).
        optimizer: `sgd` (Nesterov, `momentum`, `weight_decay`) or `adam` (`betas`, `weight_decay`).
        lr: the (peak) learning rate (> 0).
        momentum: SGD's momentum.
        weight_decay: the optimizer's weight decay.
        betas: Adam's betas.
        schedule: `onecycle` (peak `lr`, 15% warm-up, per step) or `constant`.
        seed: the run's seed (`augshift.seeding` keys every random stream by it).
        shift: an `AugShiftConfig` whose `max_shift` / `mode` draw the random shifts
            (`None`, the default: no shift augmentation; `AugShiftConfig()` is CIFAR's pad-4-and-crop). Shifts
            move images only, so targets must be class indices (N,): masks (N, H, W) are refused with shifts. Its loss options (`weight`, `distance`, `normalize`) act only
            with `augshift`: a run without it refuses non-default ones rather than ignoring them.
        augshift: train with AugShift (two shifted views, the criterion on both plus `shift.weight` times the
            `shift.distance` of their pooled features) instead of one shifted view; needs `shift`.
        hflip: random horizontal flips of in-memory image batches (`TensorBatches`).
        bn_batches: after training, re-estimate BatchNorm statistics over that many training batches (0: keep
            the running averages).
        precision: `fp32`, or `bf16` autocast (the fast path on CUDA).
        channels_last: model and inputs in channels-last memory format.
        compile: the captured step -- the forward and backward compiled with `torch.compile` (CUDA graphs on
            CUDA: `mode="reduce-overhead"`), the shifts and flips drawn outside it; batches keep one shape, so the
            last partial batch of an epoch is dropped (`TensorBatches` `drop_last`).

    `to_dict()` / `from_dict()` convert to and from JSON-ready values; `replace(**changes)` is a changed copy.

    Examples:
        >>> config = TrainConfig(epochs=2, batch_size=8, shift=AugShiftConfig(max_shift=2), augshift=True)
        >>> config.optimizer, config.schedule, config.shift.max_shift
        ('sgd', 'onecycle', 2)
        >>> TrainConfig.from_dict(config.to_dict()) == config, config.replace(lr=0.1).lr
        (True, 0.1)
        >>> TrainConfig(shift=AugShiftConfig(weight=3.0))  # a loss option without augshift=True
        Traceback (most recent call last):
            ...
        augshift.errors.UsageError: shift's weight act only with augshift=True: ...
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
    shift: Optional[AugShiftConfig] = None
    augshift: bool = False
    hflip: bool = False
    bn_batches: int = 0
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UsageError(f"lr must be > 0, got {self.lr}")
        if self.bn_batches < 0:
            raise UsageError(f"bn_batches must be >= 0, got {self.bn_batches}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"unknown {name} {getattr(self, name)!r}; supported: {', '.join(allowed)}")
        if self.shift is not None and not isinstance(self.shift, AugShiftConfig):
            raise TypeError(f"shift must be an AugShiftConfig or None, got {type(self.shift).__name__}")
        if self.augshift and self.shift is None:
            raise UsageError("augshift=True needs the shifts of its two views: give shift=AugShiftConfig(...)")
        if not self.augshift and self.shift is not None and self.shift.loss_options_changed():
            raise UsageError(f"shift's {', '.join(self.shift.loss_options_changed())} act only with augshift=True: pass "
                             "augshift=True, or leave them at their defaults (AugShiftConfig(max_shift=..., mode=...))")
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict:
        """The recipe as a dict (JSON-ready; `shift` as its own dict).

        Examples:
            >>> TrainConfig(epochs=2).to_dict()["epochs"]
            2
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """The inverse of `to_dict`.

        Examples:
            >>> config = TrainConfig(epochs=2, shift=AugShiftConfig(max_shift=2), augshift=True)
            >>> TrainConfig.from_dict(config.to_dict()) == config
            True
        """
        shift = values.get("shift")
        return cls(**{**values, "shift": AugShiftConfig(**shift) if shift else None})

    def replace(self, **changes) -> "TrainConfig":
        """A copy with `changes` (checked as a new recipe).

        Examples:
            >>> TrainConfig(epochs=2).replace(lr=0.05).lr
            0.05
        """
        return replace(self, **changes)
