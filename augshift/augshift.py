"""AugShift: two differently shifted views through one encoder, CE on both plus feature consistency.

::

    images (N,C,H,W) --RandomShift--> view A --+
                     --RandomShift--> view B --+--cat--> model (ONE forward)
                                                 |-- logits (2N, K) --> criterion on both views
                                                 +-- pooled (2N, D) --> ConsistencyLoss(A, B)
    loss = criterion + weight * consistency
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from .features import PooledFeatures
from .loss import ConsistencyLoss
from .shift import RandomShift, check_images

# Defaults, chosen by the ablation in benchmarks/ (see README "Defaults"):
DEFAULT_MAX_SHIFT = 4  # the standard CIFAR pad-4 range, 1/8 of a 32 px image
DEFAULT_MODE = "zeros"  # pad-and-crop, the usual CIFAR augmentation
DEFAULT_WEIGHT = 1.0
DEFAULT_DISTANCE = "cosine"  # measured best on CIFAR-10 (README "Defaults"); scale-free, cannot be met by shrinking features


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
    """The AugShift loss around any way of running the model.

    ``forward(run_model, features, images, targets)``: ``run_model`` is the callable that runs the
    model (the model itself, or its DDP / accelerate / compiled wrapper) and ``features`` the
    :class:`PooledFeatures` capture on that model. Returns a dict: ``loss`` (criterion averaged over
    both views + ``weight`` * consistency), ``criterion``, ``consistency`` (detached parts), ``logits``
    (2N, K: view A then view B), ``output`` (view A's logits, N x K) and ``params`` (the two
    :class:`~augshift.shift.ShiftParams`, for replay).
    """

    def __init__(
        self,
        *,
        max_shift: Union[int, tuple[int, int]] = DEFAULT_MAX_SHIFT,
        mode: str = DEFAULT_MODE,
        weight: float = DEFAULT_WEIGHT,
        distance: str = DEFAULT_DISTANCE,
        normalize: bool = False,
        criterion: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.shifter = RandomShift(max_shift, mode=mode, generator=generator)
        self.consistency = ConsistencyLoss(distance, normalize=normalize)
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.weight = weight

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
    Keyword options are those of :class:`AugShiftObjective`, plus ``classifier`` (module name of the
    classifier, when it cannot be found automatically). The model is not edited: save
    ``augshift.model.state_dict()`` and it loads into the plain model. An ``nn.Module``, so
    ``accelerator.prepare`` and DDP can wrap it; evaluate with ``augshift.model``.
    """

    def __init__(self, model: nn.Module, *, classifier: Optional[str] = None, **objective_kwargs) -> None:
        super().__init__()
        self.model = model
        self.features = PooledFeatures(model, classifier)
        self.objective = AugShiftObjective(**objective_kwargs)

    def forward(self, images: Tensor, targets: Tensor) -> dict:
        return self.objective(self.model, self.features, images, targets)


def loss_parts(result: dict) -> dict[str, float]:
    """The logging-friendly floats of an AugShift result: ``loss``, ``criterion``, ``consistency``."""
    return {key: float(result[key].detach()) for key in ("loss", "criterion", "consistency")}
