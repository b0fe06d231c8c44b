"""AugShift in PyTorch Lightning: `AugShiftCallback`, one callback that trains with AugShift and logs shift
consistency, added to any `Trainer` -- or from the command line of a `LightningCLI` script, with no changed line:

```bash
python imagenet.py fit --model.data_path DIR \\
    --trainer.callbacks+=augshift.integrations.lightning.AugShiftCallback --trainer.callbacks.max_shift 4
```

Training: while `fit` runs, the LightningModule's `training_step` is replaced, on that one instance (its class
and every other module untouched; restored at `teardown`), by AugShift's: both shifted views of the batch through
the module's `forward` in one call (under DDP, inside the wrapped step, so gradients are synchronised as usual),
cross-entropy on both views plus `weight` times the distance of their pooled features (`AugShiftObjective`),
logged as `train_loss`, `train_criterion` and `train_consistency`. The shifts are drawn from a generator
re-seeded at every optimizer step from `(seed, step, global rank)` (the seed: `seed_everything`'s, i.e.
LightningCLI's `--seed_everything`), so every process draws its own and a run resumed from a checkpoint replays them.

Evaluation (`fit`'s validation, `trainer.validate`, `trainer.test`): every process first takes rank 0's
buffers (BatchNorm statistics), so all evaluate the model rank 0 saves; each evaluation batch is numbered by the
loader's own unshuffled sampler (`batch_indices`: Lightning's `DistributedSampler` pads the last shard, and an
`ImageFolder` has no index) and `ShiftConsistency` counts each sample once over all processes. Logged at the end
of the epoch, before `ModelCheckpoint` decides, as `val_shift_consistency` (the `random` protocol) and
`val_shift_consistency_<protocol>` (`test_` on `trainer.test`): rates in [0, 1], like torchmetrics' accuracy
and the other integrations' numbers, identical on any number of processes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor, nn
from torchmetrics import Metric

from augshift.augshift import AugShiftObjective
from augshift.config import AugShiftConfig, MaxShift
from augshift.distributed import broadcast_buffers
from augshift.errors import UsageError
from augshift.features import PooledFeatures
from augshift.metrics import ShiftConsistency
from augshift import classifier_of
from augshift.protocols import DEFAULT_PROTOCOLS, consistency_column
from augshift.reporting.files import write_json_atomic
from augshift.seeding import Stream, stream_seed

from .numbering import batch_indices

PREFIXES = {"validate": "val", "test": "test"}  # the stage's metric prefix, as Lightning's templates log


def _loaders(loaders: Any) -> list:
    """The evaluation dataloaders in `dataloader_idx` order (one loader, a list or a dict of them)."""
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return list(loaders.values())
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def classifier_name(pl_module: nn.Module) -> str:
    """The name, in `pl_module.named_modules()`, of the classifier whose input is the pooled feature.

    The module's own classifier (`classifier_of`: `get_classifier()`, `fc`, `classifier`, `head`...), else
    that of the one child network that has one (`self.model` of Lightning's templates; metrics are skipped).

    Args:
        pl_module: the LightningModule (or any module holding the classifier).

    Returns:
        The module name, e.g. `model.fc`.

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> holder = nn.Module()
        >>> holder.model = create_small_cnn(10, width=4)
        >>> classifier_name(holder)
        'model.fc'
    """
    names = {id(module): name for name, module in pl_module.named_modules()}
    candidates = [pl_module] + [child for _, child in pl_module.named_children() if not isinstance(child, Metric)]
    found = []
    for candidate in candidates:
        try:
            found.append(classifier_of(candidate))
        except UsageError:
            continue
        if candidate is pl_module:
            break
    if len(found) != 1 or names.get(id(found[0]), "") == "":
        raise UsageError(f"cannot tell which module of {type(pl_module).__name__} is the classifier (its input is the "
                         "pooled feature): name it, e.g. AugShiftCallback(classifier='model.fc') or "
                         "--trainer.callbacks.classifier model.fc")
    return names[id(found[0])]


class AugShiftCallback(Callback):
    """AugShift training and shift-consistency evaluation for a Lightning `Trainer`.

    Args:
        max_shift: largest training shift per axis in pixels, an int or `(max_dx, max_dy)` (`AugShiftConfig`).
        mode: what fills the border a shift uncovers (`zeros` = pad-and-crop, `circular`, `reflect`,
            `replicate`).
        weight: weight of the consistency term.
        distance: `mse`, `l1` or `cosine`.
        normalize: L2-normalise the pooled features before an `mse` / `l1` distance.
        train: train with AugShift (`False`: train as the module does and only evaluate shift consistency).
        label_smoothing: the cross-entropy's label smoothing.
        protocols: the consistency protocols evaluated (`augshift.protocols`; default `random`, `circular`).
        eval_max_shift: the range of the evaluation protocols' shifts (px); default: the range AugShift trains with
            (`AugShiftConfig.reach`), as the other integrations evaluate.
        crop_size: the model's input size when the evaluation images are larger (the `crop` protocol).
        classifier: the name of the module whose input is the pooled feature (`model.fc`), when it cannot be found
            (`classifier_name`).
        seed: the seed of the training shifts and of the evaluation views; default: the run's
            (`seed_everything` / `--seed_everything`), else 0.
        report: a JSON file rewritten (by rank 0) after every evaluation with the whole `ConsistencyReport`
            (counts, 95 % intervals, per-sample outcomes keyed by dataset index).
        image_key: the images' key when batches are dicts (tuples hold `(images, labels, ...)`).
        label_key: the labels' key when batches are dicts.

    Batches hold images (N, C, H, W), normalised floats, and class indices (N,); the LightningModule's `forward`
    maps images to logits (N, K) (or an output holding them: `logits_of`).

    Examples:
        >>> from lightning.pytorch import Trainer
        >>> callback = AugShiftCallback(max_shift=2, weight=0.5, protocols=["random"])
        >>> trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
        ...                   callbacks=[callback], enable_progress_bar=False, enable_model_summary=False)
        >>> callback.config.max_shift, callback.consistency["max_shift"]
        (2, 2)
        >>> AugShiftCallback(mode="wrap")
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: unknown shift mode 'wrap'; supported: zeros, circular, reflect, replicate
    """

    def __init__(
        self,
        *,
        max_shift: Optional[MaxShift] = None,
        mode: Optional[str] = None,
        weight: Optional[float] = None,
        distance: Optional[str] = None,
        normalize: Optional[bool] = None,
        train: bool = True,
        label_smoothing: float = 0.0,
        protocols: Sequence[str] = DEFAULT_PROTOCOLS,
        eval_max_shift: Optional[int] = None,
        crop_size: Optional[int] = None,
        classifier: Optional[str] = None,
        seed: Optional[int] = None,
        report: Optional[str] = None,
        image_key: str = "pixel_values",
        label_key: str = "labels",
    ) -> None:
        super().__init__()
        self.config = AugShiftConfig.resolve(max_shift=max_shift, mode=mode, weight=weight, distance=distance,
                                             normalize=normalize)
        changed = self.config.loss_options_changed()
        if not train and changed:
            raise UsageError(f"{', '.join(changed)} act only when AugShift trains: drop them, or train=True")
        self.train = train
        self.generator = torch.Generator()
        self.objective = AugShiftObjective(self.config, generator=self.generator,
                                           criterion=nn.CrossEntropyLoss(label_smoothing=label_smoothing))
        self.consistency = dict(protocols=tuple(protocols), crop_size=crop_size,
                                max_shift=self.config.reach if eval_max_shift is None else eval_max_shift)
        ShiftConsistency(**self.consistency)  # refuses bad options now, not after training
        self.classifier, self.seed, self.report_path = classifier, seed, report
        self.image_key, self.label_key = image_key, label_key
        self.report = None  # the last evaluation's ConsistencyReport
        self._pooled: Optional[PooledFeatures] = None
        self._seeded_step: Optional[int] = None
        self._metrics: list[ShiftConsistency] = []
        self._plans: list[Optional[list[list[int]]]] = []

    # ----------------------------------------------------------------------------------------- training

    def run_seed(self) -> int:
        """The seed of the shifts and views: `seed`, else the run's (`PL_GLOBAL_SEED`), else 0.

        Examples:
            >>> AugShiftCallback(seed=7).run_seed()
            7
        """
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def images_and_labels(self, batch: Any) -> tuple[Tensor, Tensor]:
        """`(images (N, C, H, W), labels (N,))` of a batch: a tuple / list `(images, labels, ...)` or a dict.

        Examples:
            >>> callback = AugShiftCallback(image_key="image", label_key="label")
            >>> images, labels = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
            >>> callback.images_and_labels({"image": images, "label": labels})[1].tolist()
            [0, 1]
            >>> callback.images_and_labels((images, labels, "extra"))[0] is images
            True
        """
        if isinstance(batch, Mapping) and self.image_key in batch and self.label_key in batch:
            return batch[self.image_key], batch[self.label_key]
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return batch[0], batch[1]
        what = f"a dict with keys {', '.join(map(str, batch))}" if isinstance(batch, Mapping) else type(batch).__name__
        raise UsageError(f"AugShiftCallback reads (images, labels) batches or dicts with {self.image_key!r} and "
                         f"{self.label_key!r}; got {what}: set image_key= and label_key=")

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """At `fit`: AugShift's `training_step` on this module instance (refusing a module without `forward`).
        Lightning calls it, and `teardown` after `fit`.

        Examples:
            >>> class Net(LightningModule):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)
            ...     def forward(self, images):
            ...         return self.fc(self.conv(images).mean(dim=(2, 3)))
            ...     def training_step(self, batch, batch_idx):  # its own, replaced by AugShift's during fit
            ...         return nn.functional.cross_entropy(self(batch[0]), batch[1])
            ...     def configure_optimizers(self):
            ...         return torch.optim.SGD(self.parameters(), lr=0.1)
            >>> module, callback = Net(), AugShiftCallback()
            >>> trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
            ...                   enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
            >>> callback.setup(trainer, module, "fit")
            >>> "training_step" in vars(module)  # on this instance only
            True
            >>> callback.teardown(trainer, module, "fit")
            >>> "training_step" in vars(module)
            False
        """
        if stage != "fit" or not self.train:
            return
        if type(pl_module).forward is LightningModule.forward:
            raise UsageError(f"AugShiftCallback runs {type(pl_module).__name__}'s forward on both shifted views: "
                             "define forward(images) -> logits on the LightningModule")
        if "training_step" in vars(pl_module):
            raise UsageError("the module's training_step is already replaced on the instance (a second "
                             "AugShiftCallback?): add one AugShiftCallback")
        self._pooled = PooledFeatures(pl_module, self.classifier or classifier_name(pl_module))
        self._seeded_step = None

        def training_step(batch: Any, batch_idx: int = 0, *args: Any, **kwargs: Any) -> Tensor:
            return self.training_step(trainer, pl_module, batch)

        pl_module.training_step = training_step

    def training_step(self, trainer: Trainer, pl_module: LightningModule, batch: Any) -> Tensor:
        """AugShift's loss of one training batch (what the module's `training_step` returns during `fit`); it logs
        `train_loss`, `train_criterion` and `train_consistency`.

        Examples:
            >>> class Net(LightningModule):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)
            ...     def forward(self, images):
            ...         return self.fc(self.conv(images).mean(dim=(2, 3)))
            ...     def training_step(self, batch, batch_idx):  # its own, replaced by AugShift's during fit
            ...         return nn.functional.cross_entropy(self(batch[0]), batch[1])
            ...     def configure_optimizers(self):
            ...         return torch.optim.SGD(self.parameters(), lr=0.1)
            >>> callback = AugShiftCallback(max_shift=1, protocols=["random"])
            >>> trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
            ...                   enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
            >>> data = torch.utils.data.TensorDataset(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]))
            >>> trainer.fit(Net(), torch.utils.data.DataLoader(data, batch_size=4))
            >>> sorted(name for name in trainer.callback_metrics if name.startswith("train_"))
            ['train_consistency', 'train_criterion', 'train_loss']
        """
        images, labels = self.images_and_labels(batch)
        step = trainer.global_step
        if step != self._seeded_step:  # re-seed at every optimizer step: a resumed run replays its shifts
            self.generator.manual_seed(stream_seed(self.run_seed(), Stream.SHIFT, step, trainer.global_rank))
            self._seeded_step = step
        result = self.objective(pl_module, self._pooled, images, labels)
        pl_module.log("train_loss", result["loss"].detach(), prog_bar=True)
        pl_module.log("train_criterion", result["criterion"])
        pl_module.log("train_consistency", result["consistency"])
        return result["loss"]

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """The module's own `training_step` back, the feature hooks off (see `setup`'s example).

        Examples:
            >>> class Net(LightningModule):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)
            ...     def forward(self, images):
            ...         return self.fc(self.conv(images).mean(dim=(2, 3)))
            ...     def training_step(self, batch, batch_idx):  # its own, replaced by AugShift's during fit
            ...         return nn.functional.cross_entropy(self(batch[0]), batch[1])
            ...     def configure_optimizers(self):
            ...         return torch.optim.SGD(self.parameters(), lr=0.1)
            >>> module, callback = Net(), AugShiftCallback()
            >>> trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
            ...                   enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
            >>> callback.setup(trainer, module, "fit")
            >>> len(module.fc._forward_pre_hooks)  # the hook that reads the pooled features
            1
            >>> callback.teardown(trainer, module, "fit")
            >>> len(module.fc._forward_pre_hooks), "training_step" in vars(module)
            (0, False)
        """
        if stage == "fit" and self._pooled is not None:
            vars(pl_module).pop("training_step", None)
            self._pooled.remove()
            self._pooled = None

    # ----------------------------------------------------------------------------------------- evaluation

    def _start(self, trainer: Trainer, pl_module: LightningModule, loaders: Any) -> None:
        broadcast_buffers(pl_module)  # every process evaluates (and ModelCheckpoint saves) rank 0's statistics
        stage = "test" if trainer.testing else "validate"
        if trainer.sanity_checking:
            self._metrics, self._plans = [], []
            return
        loaders = _loaders(loaders)
        self._plans = [batch_indices(loader, stage=stage) for loader in loaders]
        self._metrics = [ShiftConsistency(**self.consistency, seed=self.run_seed()) for _ in loaders]

    def _update(self, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if not self._metrics:
            return
        images, labels = self.images_and_labels(batch)
        plan = self._plans[dataloader_idx]
        indices = None
        if plan is not None:
            indices = torch.tensor(plan[batch_idx], device=images.device)
            if len(indices) != len(images):
                raise UsageError(f"evaluation batch {batch_idx} holds {len(images)} images but its sampler drew "
                                 f"{len(indices)}: keep one image per dataset item in the evaluation collate_fn")
        self._metrics[dataloader_idx].update(pl_module, images, labels, indices)

    def _finish(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._metrics:
            return
        prefix = "test" if trainer.testing else "val"
        results = {}
        for i, metric in enumerate(self._metrics):
            report = metric.compute()  # a collective: every process counts every sample once
            suffix = f"/dataloader_idx_{i}" if len(self._metrics) > 1 else ""
            for protocol in metric.protocols:
                name = f"{prefix}_{consistency_column(protocol)}{suffix}"
                results[name] = report.agree[protocol] / report.samples if report.samples else float("nan")
                pl_module.log(name, results[name], add_dataloader_idx=False)
            self.report = report
            if self.report_path and trainer.is_global_zero:
                write_json_atomic(self.report_path, {
                    "stage": prefix, "epoch": trainer.current_epoch, "step": trainer.global_step,
                    "processes": trainer.world_size, "metrics": results, **report.to_dict(),
                    "outcomes": {key: value.tolist() for key, value in report.outcomes.items()}})
        self._metrics, self._plans = [], []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer, pl_module, trainer.val_dataloaders)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(pl_module, batch, batch_idx, dataloader_idx)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer, pl_module, trainer.test_dataloaders)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(pl_module, batch, batch_idx, dataloader_idx)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module)
