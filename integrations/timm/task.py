"""timm training tasks: AugShift as a `timm.task.ClassificationTask`.

timm's `train.py` calls `result = task(input, target)` and back-propagates `result['loss']`.
`AugShiftTask` computes that loss with the core `AugShiftObjective`:
both shifted views go through `self.trainable_module` (the model, or its DDP / compiled wrapper) in
one forward, and the pooled features are caught by a hook on the unwrapped model, so DDP sees every
parameter used and checkpoints keep the plain model's `state_dict` keys.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from timm.task import ClassificationTask

from augshift.augshift import AugShiftObjective
from augshift.config import DEFAULTS, AugShiftConfig
from augshift.distributed import world_size
from augshift.features import PooledFeatures

_logger = logging.getLogger(__name__)

LOSS_PARTS = ("criterion", "consistency")


class PortableClassificationTask(ClassificationTask):
    """timm's `ClassificationTask` whose DDP set-up also works in CPU (gloo) processes.

    `train.py` passes `device_ids=[device]`, which DDP accepts only for GPU modules; on CPU the
    ids are dropped. Everything else is timm's: `task(input (N, C, H, W), target)` returns `{"loss": ...,
    "output": logits (N, K)}`.

    Args:
        model: the model to train (`task.trainable_module` until `prepare_distributed` wraps it).
        criterion: the loss `criterion(logits, target)`; None: timm's default classification loss, built from
            `criterion_kwargs` (`timm.loss.create_classification_loss`).
        criterion_kwargs: options of that default loss; give either them or `criterion`.
        device: the device the task (and its criterion) is on; default CPU.
        dtype: the task's dtype; default torch's default dtype.
        verbose: log what the task was built with.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9))
        >>> task = PortableClassificationTask(model, nn.CrossEntropyLoss(), verbose=False)
        >>> result = task(torch.randn(2, 3, 8, 8), torch.tensor([0, 5]))
        >>> sorted(result), result["output"].shape, result["loss"].dim()
        (['loss', 'output'], torch.Size([2, 9]), 0)
    """

    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs) -> "PortableClassificationTask":
        """Wrap the model in DDP as timm does (`ddp_kwargs` go to it), without `device_ids` on CPU."""
        if self.device.type == "cpu":
            device_ids = None  # DDP takes device_ids only for single-device GPU modules
        return super().prepare_distributed(device_ids=device_ids, **ddp_kwargs)


class AugShiftTask(PortableClassificationTask):
    """AugShift training step for timm: two shifted views, the task's criterion on both, consistency loss.

    `forward(input (N, C, H, W), target (N,) or (N, K))` returns `loss` (criterion averaged over
    both views + `weight` * consistency of the pooled features), `output` (logits of view A,
    N x K), and the detached loss parts `criterion` and `consistency`. The task's own criterion is
    used, so label smoothing, BCE and mixup / cutmix soft targets keep working.

    `loss_parts` gives the sample-weighted means of the loss parts since the last reset (`augshift-timm`
    adds them to the epoch's metrics).

    Args:
        model: the model to train; its pooled features are read by a hook
            (`PooledFeatures`).
        criterion: the loss `criterion(logits, target)` (`train.py` passes its `train_loss_fn`); None:
            timm's default classification loss (`ClassificationTask` builds it).
        config: the AugShift options, an `AugShiftConfig` (keyword-only, as are the
            following).
        classifier: names the module whose input is the pooled feature when it cannot be found (timm's
            `get_classifier()`, `fc`, `classifier`, `head`).
        generator: draws the shifts (reproducible).
        log_interval: logs the running loss parts every that many steps when `verbose` (0: never).
        task_kwargs: other keyword arguments (`device`, `dtype`, `verbose`, `criterion_kwargs`) go to
            `ClassificationTask`.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9))
        >>> task = AugShiftTask(model, nn.CrossEntropyLoss(), classifier="3",
        ...                     generator=torch.Generator().manual_seed(0), verbose=False)
        >>> result = task(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
        >>> sorted(result), result["output"].shape, result["loss"].requires_grad
        (['consistency', 'criterion', 'loss', 'output'], torch.Size([4, 9]), True)
        >>> sorted(task.loss_parts(sync=False, reset=True))
        ['consistency', 'criterion']
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: Optional[Union[nn.Module, Callable]] = None,
        *,
        config: AugShiftConfig = DEFAULTS,
        classifier: Optional[str] = None,
        generator: Optional[torch.Generator] = None,
        log_interval: int = 0,
        **task_kwargs,
    ) -> None:
        super().__init__(model, criterion, **task_kwargs)  # timm's default criterion when none is given
        self.features = PooledFeatures(model, classifier)
        self.objective = AugShiftObjective(config, criterion=self.criterion, generator=generator)
        self.log_interval = log_interval
        self._sums: Optional[Tensor] = None  # (criterion * n, consistency * n, n) since the last reset
        self._steps = 0
        if self.verbose:
            _logger.info("AugShiftTask: " + ", ".join(f"{k}={v}" for k, v in config.to_dict().items()))

    def forward(self, input: Tensor, target: Tensor) -> dict[str, Tensor]:
        """One training step's loss for `input` (N, C, H, W) and `target` (N,) or (N, K): `loss`, `output`
        (logits of view A, (N, K)) and the detached `criterion` and `consistency`.

        Examples:
            >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9))
            >>> task = AugShiftTask(model, nn.CrossEntropyLoss(), classifier="3", verbose=False)
            >>> soft = torch.softmax(torch.randn(2, 9), dim=1)  # mixup / cutmix targets work as class indices do
            >>> result = task(torch.randn(2, 3, 8, 8), soft)
            >>> result["output"].shape, result["criterion"].requires_grad
            (torch.Size([2, 9]), False)
        """
        result = self.objective(self.trainable_module, self.features, input, target)
        self._record(result, input.shape[0])
        return {
            "loss": result["loss"],
            "output": result["output"],
            **{name: result[name] for name in LOSS_PARTS},
        }

    def _record(self, result: dict, n: int) -> None:
        row = torch.stack([result["criterion"].double() * n, result["consistency"].double() * n])
        row = torch.cat([row, row.new_tensor([n])])
        self._sums = row if self._sums is None else self._sums + row
        self._steps += 1
        if self.verbose and self.log_interval and self._steps % self.log_interval == 0:
            parts = self.loss_parts(sync=False)
            _logger.info(
                f"AugShift step {self._steps}: criterion {parts['criterion']:#.4g}  "
                f"consistency {parts['consistency']:#.4g}  (running means)"
            )

    def loss_parts(self, *, sync: bool = True, reset: bool = False) -> dict[str, float]:
        """Sample-weighted means of the loss parts since the last reset (NaN before any step).

        With `sync` the sums are added over all torch.distributed processes first (a collective:
        every process must call it). `reset` starts new sums after reading these.

        Examples:
            >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9))
            >>> task = AugShiftTask(model, nn.CrossEntropyLoss(), classifier="3", verbose=False)
            >>> steps = [task(torch.randn(n, 3, 8, 8), torch.zeros(n, dtype=torch.long)) for n in (1, 3)]
            >>> by_hand = (float(steps[0]["criterion"]) + 3 * float(steps[1]["criterion"])) / 4  # weighted by images
            >>> abs(task.loss_parts(sync=False, reset=True)["criterion"] - by_hand) < 1e-6
            True
            >>> task.loss_parts(sync=False)  # reset: no step since
            {'criterion': nan, 'consistency': nan}
        """
        sums = self._sums if self._sums is not None else torch.zeros(3, dtype=torch.float64, device=self.device)
        if sync and world_size() > 1:
            sums = sums.clone()
            dist.all_reduce(sums)
        if reset:
            self._sums, self._steps = None, 0
        count = float(sums[2])
        return {name: float(sums[i]) / count if count else float("nan") for i, name in enumerate(LOSS_PARTS)}
