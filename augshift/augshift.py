"""AugShift: two differently shifted views through one encoder, CE on both plus feature consistency.

::

    images (N,C,H,W) --RandomShift--> view A --+
                     --RandomShift--> view B --+--cat--> model (ONE forward)
                                                 |-- logits (2N, K) --> criterion on both views
                                                 +-- pooled (2N, D) --> ConsistencyLoss(A, B)
    loss = criterion + weight * consistency
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .config import DEFAULTS, AugShiftConfig, MaxShift
from .features import PooledFeatures
from .loss import ConsistencyLoss
from .shift import RandomShift, check_images


def check_targets(targets: Tensor, n: int) -> None:
    """Hard targets (N,) integer class indices or soft targets (N, K) floats, for ``n`` images."""
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a tensor, got {type(targets).__name__}")
    hard = targets.dim() == 1 and not targets.is_floating_point()
    soft = targets.dim() == 2 and targets.is_floating_point()
    if not (hard or soft) or targets.shape[0] != n:
        raise ValueError(
            f"targets must be class indices of shape ({n},) (integer) or soft targets of shape ({n}, K) (float) "
            f"for {n} images, got shape {tuple(targets.shape)} dtype {targets.dtype}"
        )


class AugShiftObjective(nn.Module):
    """The AugShift loss around any way of running the model, configured by an :class:`AugShiftConfig`.

    ``forward(run_model, features, images, targets)``: ``run_model`` is the callable that runs the
    model (the model itself, or its DDP / accelerate / compiled wrapper) and ``features`` the
    :class:`PooledFeatures` capture on that model. Returns a dict: ``loss`` (criterion averaged over
    both views + ``weight`` * consistency), ``criterion``, ``consistency`` (detached parts), ``logits``
    (2N, K: view A then view B), ``output`` (view A's logits, N x K) and ``params`` (the two
    :class:`~augshift.shift.ShiftParams`, for replay).
    """

    def __init__(
        self,
        config: AugShiftConfig = DEFAULTS,
        *,
        criterion: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if not isinstance(config, AugShiftConfig):
            raise TypeError(f"config must be an AugShiftConfig, got {type(config).__name__}")
        self.config = config
        self.shifter = RandomShift(config.max_shift, mode=config.mode, generator=generator)
        self.consistency = ConsistencyLoss(config.distance, normalize=config.normalize)
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.weight = config.weight

    def extra_repr(self) -> str:
        return f"weight={self.weight}"

    def forward(
        self, run_model: Callable[[Tensor], Tensor], features: PooledFeatures, images: Tensor, targets: Tensor
    ) -> dict:
        check_images(images, "images", floating=True)
        n = images.shape[0]
        check_targets(targets, n)
        self.shifter.check_size(images.shape[-2], images.shape[-1])
        params_a = self.shifter.sample(n, images.device)
        params_b = self.shifter.sample(n, images.device)
        views = torch.cat([self.shifter(images, params_a), self.shifter(images, params_b)])
        with features.capture():
            logits = run_model(views)
            pooled = features.pop()
        if logits.dim() != 2 or logits.shape[0] != 2 * n:
            raise ValueError(f"the model must return logits of shape (N, K), got {tuple(logits.shape)}")
        criterion = self.criterion(logits, torch.cat([targets, targets]))
        consistency = self.consistency(pooled[:n], pooled[n:])
        return {
            "loss": criterion + self.weight * consistency,
            "criterion": criterion.detach(),
            "consistency": consistency.detach(),
            "logits": logits,
            "output": logits[:n],
            "params": (params_a, params_b),
        }


class AugShift(nn.Module):
    """Wrap ``model`` for AugShift training: ``AugShift(model)(images, targets)['loss'].backward()``.

    ``images`` (N, C, H, W) floating, ``targets`` (N,) class indices or (N, K) soft targets (mixup).
    Options (keyword-only) are those of :class:`~augshift.config.AugShiftConfig` (``max_shift``, ``mode``,
    ``weight``, ``distance``, ``normalize``), or a whole ``config``; ``classifier`` names the classifier
    module when it cannot be found automatically; ``criterion`` (default cross-entropy) and ``generator``
    (draws the shifts, reproducibly) go to :class:`AugShiftObjective`. The model is not edited: save
    ``augshift.model.state_dict()`` and it loads into the plain model. An ``nn.Module``, so
    ``accelerator.prepare`` and DDP can wrap it; evaluate with ``augshift.model``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        max_shift: MaxShift = DEFAULTS.max_shift,
        mode: str = DEFAULTS.mode,
        weight: float = DEFAULTS.weight,
        distance: str = DEFAULTS.distance,
        normalize: bool = DEFAULTS.normalize,
        config: Optional[AugShiftConfig] = None,
        classifier: Optional[str] = None,
        criterion: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if config is None:
            config = AugShiftConfig(max_shift=max_shift, mode=mode, weight=weight, distance=distance, normalize=normalize)
        self.model = model
        self.features = PooledFeatures(model, classifier)
        self.objective = AugShiftObjective(config, criterion=criterion, generator=generator)

    def forward(self, images: Tensor, targets: Tensor) -> dict:
        return self.objective(self.model, self.features, images, targets)


def loss_parts(result: dict) -> dict[str, float]:
    """The logging-friendly floats of an AugShift result: ``loss``, ``criterion``, ``consistency``.

    Raises ``FloatingPointError`` when one is NaN or infinite (NaN / inf inputs or weights, a diverged run), so a
    loop that logs its loss stops there instead of training on; the engine's :func:`~augshift.engine.fit` checks
    once per epoch. (The forward itself does not check: that would wait for the GPU at every step.)"""
    parts = {key: float(result[key].detach()) for key in ("loss", "criterion", "consistency")}
    if not all(math.isfinite(value) for value in parts.values()):
        raise FloatingPointError(f"the AugShift loss is not finite ({parts}): the images or the model's weights hold "
                                 "NaN or inf (a diverged run? lower the learning rate; check the data)")
    return parts
