"""timm training tasks: AugShift as a :class:`timm.task.ClassificationTask`.

timm's ``train.py`` calls ``result = task(input, target)`` and back-propagates ``result['loss']``.
:class:`AugShiftTask` computes that loss with the core :class:`~augshift.augshift.AugShiftObjective`:
both shifted views go through ``self.trainable_module`` (the model, or its DDP / compiled wrapper) in
one forward, and the pooled features are caught by a hook on the unwrapped model, so DDP sees every
parameter used and checkpoints keep the plain model's ``state_dict`` keys.
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
from augshift.features import PooledFeatures

_logger = logging.getLogger(__name__)

LOSS_PARTS = ("criterion", "consistency")


class PortableClassificationTask(ClassificationTask):
    """timm's ``ClassificationTask`` whose DDP set-up also works in CPU (gloo) processes.

    ``train.py`` passes ``device_ids=[device]``, which DDP accepts only for GPU modules; on CPU the
    ids are dropped. Everything else is timm's.
    """

    def prepare_distributed(self, device_ids: Optional[list] = None, **ddp_kwargs) -> "PortableClassificationTask":
        if self.device.type == "cpu":
            device_ids = None  # DDP takes device_ids only for single-device GPU modules
        return super().prepare_distributed(device_ids=device_ids, **ddp_kwargs)


class AugShiftTask(PortableClassificationTask):
    """AugShift training step for timm: two shifted views, the task's criterion on both, consistency loss.

    ``forward(input (N, C, H, W), target (N,) or (N, K))`` returns ``loss`` (criterion averaged over
    both views + ``weight`` * consistency of the pooled features), ``output`` (logits of view A,
    N x K), and the detached loss parts ``criterion`` and ``consistency``. The task's own criterion is
    used, so label smoothing, BCE and mixup / cutmix soft targets keep working.

    AugShift options (keyword-only): ``config``, an :class:`~augshift.config.AugShiftConfig`; ``classifier`` names the module whose input is
    the pooled feature when it cannot be found; ``generator`` draws the shifts (reproducible);
    ``log_interval`` logs the running loss parts every that many steps (0: never). Other keyword
    arguments (``device``, ``dtype``, ``verbose``, ...) go to ``ClassificationTask``.
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
        super().__init__(model, criterion, **task_kwargs)
        if self.criterion is None:
            raise ValueError("AugShiftTask needs a criterion (train.py passes its train_loss_fn)")
        self.features = PooledFeatures(model, classifier)
        self.objective = AugShiftObjective(config, criterion=self.criterion, generator=generator)
        self.log_interval = log_interval
        self._sums: Optional[Tensor] = None  # (criterion * n, consistency * n, n) since the last reset
        self._steps = 0
        if self.verbose:
            _logger.info("AugShiftTask: " + ", ".join(f"{k}={v}" for k, v in config.to_dict().items()))

    def forward(self, input: Tensor, target: Tensor) -> dict[str, Tensor]:
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

        With ``sync`` the sums are added over all torch.distributed processes first (a collective:
        every process must call it).
        """
        sums = self._sums if self._sums is not None else torch.zeros(3, dtype=torch.float64, device=self.device)
        if sync and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            sums = sums.clone()
            dist.all_reduce(sums)
        if reset:
            self._sums, self._steps = None, 0
        count = float(sums[2])
        return {name: float(sums[i]) / count if count else float("nan") for i, name in enumerate(LOSS_PARTS)}
