"""AugShift: two differently shifted views through one encoder, CE on both plus feature consistency.

```text
images (N,C,H,W) --RandomShift--> view A --+
                     --RandomShift--> view B --+--cat--> model (ONE forward)
                                                 |-- logits (2N, K) --> criterion on both views
                                                 +-- pooled (2N, D) --> ConsistencyLoss(A, B)
loss = criterion + weight * consistency
```
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .config import DEFAULTS, AugShiftConfig, MaxShift
from .errors import UsageError
from .features import PooledFeatures
from .labels import check_labels
from .loss import ConsistencyLoss
from .outputs import logits_of
from .shifts import RandomShift, ShiftParams, check_images


def check_targets(targets: Tensor, n: int) -> None:
    """Hard targets (N,) integer class indices or soft targets (N, K) floats, for `n` images."""
    if not isinstance(targets, Tensor):
        raise TypeError(f"targets must be a tensor, got {type(targets).__name__}")
    hard = targets.dim() == 1 and not targets.is_floating_point()
    soft = targets.dim() == 2 and targets.is_floating_point()
    if not (hard or soft) or targets.shape[0] != n:
        raise ValueError(
            f"targets must be class indices of shape ({n},) (integer) or soft targets of shape ({n}, K) (float) "
            f"for {n} images, got shape {tuple(targets.shape)} dtype {targets.dtype}"
        )


def compiling() -> bool:
    """Whether this code is being traced by `torch.compile` (a data-dependent check there would break the graph)."""
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3; torch._dynamo's before
    return bool(is_compiling() if is_compiling else torch._dynamo.is_compiling())


class AugShiftObjective(nn.Module):
    """The AugShift loss around any way of running the model, configured by an `AugShiftConfig`.

    Args:
        config: the AugShift options (`max_shift`, `mode`, `weight`, `distance`, `normalize`; default: the
            library defaults).
        criterion: the classification loss of the logits (2N, K) and the targets of both views, (2N,) class indices
            or (2N, K) soft targets (default: `nn.CrossEntropyLoss()`).
        generator: a `torch.Generator` the shifts are drawn from (reproducible draws); default: this process's
            stream (`augshift.seeding.process_generator`: seeded by one draw of torch's global generator and the
            process's rank, so processes seeded alike still draw their own shifts).

    `forward(run_model, features, images, targets, params=None)`: `run_model` is the callable that runs the
    model (the model itself, or its DDP / accelerate / compiled wrapper) and `features` the
    `PooledFeatures` capture on that model; `images` (N, C, H, W) floating, `targets` (N,) class
    indices or (N, K) soft targets; `params`, the two views' `ShiftParams` to replay
    (default: `sample`, view A first). Class indices outside [0, K) (`-1`: a split whose labels are hidden) are
    refused with a one-line `UsageError` (`check_labels`): in every batch on the CPU, in the first one on an
    accelerator (a check there waits for the device), not inside `torch.compile` (it would break the graph).

    Returns:
        A dict: `loss` (criterion averaged over both views + `weight` * consistency; a scalar),
        `criterion`, `consistency` (detached parts), `logits` (2N, K: view A then view B), `output`
        (view A's logits, (N, K)) and `params` (the two `ShiftParams`, for replay).

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> model = create_small_cnn(10, width=4)
        >>> objective = AugShiftObjective(AugShiftConfig(max_shift=2, weight=0.5))
        >>> features = PooledFeatures(model)
        >>> images, targets = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
        >>> result = objective(model, features, images, targets)
        >>> result["loss"].shape, result["logits"].shape, result["output"].shape
        (torch.Size([]), torch.Size([4, 10]), torch.Size([2, 10]))
        >>> replay = objective(model, features, images, targets, params=result["params"])  # the same two views
        >>> torch.allclose(replay["loss"], result["loss"])
        True
    """

    def __init__(
        self,
        config: AugShiftConfig = DEFAULTS,
        *,
        criterion: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        self.config = config = AugShiftConfig.resolve(config)
        self.shifter = RandomShift(config.max_shift, mode=config.mode, generator=generator)
        self.consistency = ConsistencyLoss(config.distance, normalize=config.normalize)
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.weight = config.weight
        self._labels_checked = False

    def extra_repr(self) -> str:
        return f"weight={self.weight}"

    def sample(self, n: int, device: torch.device) -> tuple[ShiftParams, ShiftParams]:
        """The shifts of the two views of `n` images, drawn from `self.shifter` (view A first): what
        `forward` uses when it is given no `params`.

        Examples:
            >>> objective = AugShiftObjective(AugShiftConfig(max_shift=2), generator=torch.Generator().manual_seed(0))
            >>> view_a, view_b = objective.sample(3, torch.device("cpu"))
            >>> view_a.dx.shape, bool(view_b.dy.abs().max() <= 2)
            (torch.Size([3]), True)
        """
        return self.shifter.sample(n, device), self.shifter.sample(n, device)

    def forward(
        self, run_model: Callable[[Tensor], Tensor], features: PooledFeatures, images: Tensor, targets: Tensor,
        params: Optional[tuple[ShiftParams, ShiftParams]] = None,
    ) -> dict:
        """The AugShift loss of one batch: both views of `images` (N, C, H, W) through `run_model` in one forward.

        Args:
            run_model: what runs the model (the model, or its DDP / accelerate / compiled wrapper).
            features: the `PooledFeatures` on the (unwrapped) model.
            images: floating (N, C, H, W).
            targets: class indices (N,) or soft targets (N, K).
            params: the two views' `ShiftParams` to replay (default: `sample`).

        Returns:
            The dict of the class's Returns: `loss`, `criterion`, `consistency`, `logits`, `output`, `params`.

        Examples:
            >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
            >>> objective = AugShiftObjective(AugShiftConfig(max_shift=1))
            >>> result = objective(model, PooledFeatures(model, "3"), torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 1]))
            >>> result["logits"].shape, result["output"].shape  # both views (2N rows), view A's (N rows)
            (torch.Size([6, 2]), torch.Size([3, 2]))
        """
        check_images(images, "images", floating=True)
        n = images.shape[0]
        check_targets(targets, n)
        self.shifter.check_size(images.shape[-2], images.shape[-1])
        if params is None:
            params = self.sample(n, images.device)
        params_a, params_b = params
        views = torch.cat([self.shifter(images, params_a), self.shifter(images, params_b)])
        with features.capture():
            logits = logits_of(run_model(views))
            pooled = features.pop()
        if logits.dim() != 2 or logits.shape[0] != 2 * n:
            raise ValueError(f"the model must return logits of shape (N, K), got {tuple(logits.shape)}")
        if targets.dim() == 1 and (targets.device.type == "cpu" or not self._labels_checked) and not compiling():
            ignored = getattr(self.criterion, "ignore_index", None)  # cross-entropy's -100 stays a skipped sample
            check_labels(targets if ignored is None else targets[targets != ignored], logits.shape[1])
            self._labels_checked = True  # on an accelerator once only: a check waits for the device
        if self.weight and torch.is_grad_enabled() and not pooled.requires_grad:
            raise UsageError(
                "the consistency term reaches no trainable parameter: every layer before the classifier is frozen "
                "(requires_grad=False), so weight has no effect; unfreeze the backbone (a linear probe cannot learn "
                "shift consistency), or train with weight=0 for cross-entropy on the two views alone"
            )
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
    """Wrap `model` for AugShift training: `AugShift(model)(images, targets)['loss'].backward()`.

    The options (keyword-only) are those of `AugShiftConfig`, or a whole `config`; an
    option left `None` keeps its default. The model is not edited: its `state_dict` loads into the plain model.
    An `nn.Module`, so `accelerator.prepare` and DDP can wrap it. **Evaluate and save the `model` you passed
    in**: it is the same object before and after `accelerator.prepare` / DDP, on any number of processes (the
    prepared wrapper has no `.model`).

    Without a `generator` every process draws its own shifts (`augshift.seeding.process_generator`),
    reproducibly from torch's seed. A first training step whose consistency term reaches no trainable parameter
    (the backbone frozen) is refused: `weight` would have no effect.

    Args:
        model: the classifier to train, images (N, C, H, W) -> logits (N, K); its pooled features (N, D) are read
            at its classifier's input (`PooledFeatures`).
        max_shift: largest shift per axis in pixels, an int or `(max_dx, max_dy)`.
        mode: what fills the border a shift uncovers (`zeros` = pad-and-crop, `circular`, `reflect`,
            `replicate`).
        weight: weight of the consistency loss.
        distance: `mse`, `l1` or `cosine` (`ConsistencyLoss`).
        normalize: L2-normalise the pooled features before an `mse` / `l1` distance.
        config: all the options at once (then none of the five above may be given).
        classifier: the name (in `model.named_modules()`) of the classifier module, when it cannot be found
            automatically.
        criterion: the classification loss (default: cross-entropy), passed to `AugShiftObjective`.
        generator: a `torch.Generator` drawing the shifts (reproducibly), passed to `AugShiftObjective`.

    `forward(images, targets)`: `images` (N, C, H, W) floating, `targets` (N,) class indices or (N, K) soft
    targets (mixup).

    Returns:
        The dict of `AugShiftObjective`: `loss` (a scalar to backpropagate), `criterion`,
        `consistency`, `logits` (2N, K), `output` (N, K) and `params`.

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> augshift = AugShift(create_small_cnn(10, width=4), max_shift=2, weight=1.0)
        >>> result = augshift(torch.randn(2, 3, 32, 32), torch.tensor([0, 3]))
        >>> result["loss"].backward()
        >>> sorted(result)
        ['consistency', 'criterion', 'logits', 'loss', 'output', 'params']
        >>> model = augshift.model  # the model passed in: evaluate and save it
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        max_shift: Optional[MaxShift] = None,
        mode: Optional[str] = None,
        weight: Optional[float] = None,
        distance: Optional[str] = None,
        normalize: Optional[bool] = None,
        config: Optional[AugShiftConfig] = None,
        classifier: Optional[str] = None,
        criterion: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        config = AugShiftConfig.resolve(config, max_shift=max_shift, mode=mode, weight=weight, distance=distance,
                                        normalize=normalize)
        self.model = model
        self.features = PooledFeatures(model, classifier)
        self.objective = AugShiftObjective(config, criterion=criterion, generator=generator)

    def forward(self, images: Tensor, targets: Tensor) -> dict:
        """The AugShift loss of `images` (N, C, H, W) and `targets` ((N,) class indices or (N, K) soft targets):
        both shifted views through the model in one forward (`AugShiftObjective.forward`).

        Examples:
            >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
            >>> result = AugShift(model, max_shift=1, classifier="3")(torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 1]))
            >>> result["loss"].requires_grad, [float(part) >= 0 for part in (result["criterion"], result["consistency"])]
            (True, [True, True])
        """
        return self.objective(self.model, self.features, images, targets)


def loss_parts(result: dict) -> dict[str, float]:
    """The logging-friendly floats of an AugShift result: `loss`, `criterion`, `consistency`.

    Raises `FloatingPointError` when one is NaN or infinite (NaN / inf inputs or weights, a diverged run), so a
    loop that logs its loss stops there instead of training on; the engine's `fit` checks
    once per epoch. (The forward itself does not check: that would wait for the GPU at every step.)

    Args:
        result: the dict returned by `AugShift` / `AugShiftObjective` (scalar tensors under `loss`,
            `criterion` and `consistency`).

    Returns:
        `{"loss": float, "criterion": float, "consistency": float}`.

    Examples:
        >>> loss_parts({"loss": torch.tensor(1.5), "criterion": torch.tensor(1.0), "consistency": torch.tensor(0.25)})
        {'loss': 1.5, 'criterion': 1.0, 'consistency': 0.25}
        >>> loss_parts({"loss": torch.tensor(float("nan")), "criterion": torch.tensor(1.0),
        ...             "consistency": torch.tensor(0.0)})
        Traceback (most recent call last):
        ...
        FloatingPointError: the AugShift loss is not finite ...
    """
    parts = {key: float(result[key].detach()) for key in ("loss", "criterion", "consistency")}
    if not all(math.isfinite(value) for value in parts.values()):
        raise FloatingPointError(f"the AugShift loss is not finite ({parts}): the images or the model's weights hold "
                                 "NaN or inf (a diverged run? lower the learning rate; check the data)")
    return parts
