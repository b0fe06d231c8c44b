"""The one training loop of the project: `Trainer` (one optimisation step) and `fit` (epochs,
resumable checkpoints, data-parallel, progress bar, BatchNorm re-estimation).

The demo, the position experiments and the benchmark sweeps all train through `fit`; what differs is
the `TrainConfig` and the batches (`BatchSource`: in-memory images with
`TensorBatches`, canvases or mosaics in `augshift.position`).

The loop never waits for the GPU inside an epoch: each step's loss parts are added up on the device and read
once per epoch, and the progress bar counts steps without reading the loss.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augshift import AugShiftObjective
from ..errors import UsageError
from ..features import PooledFeatures
from ..outputs import logits_of
from ..progress import progress_bar
from ..shifts import RandomShift, ShiftParams
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, fused_option
from .sources import Batches, BatchSource
from ..distributed import Dist, average_buffers, barrier
from ..seeding import seed_generator

class Trainer:
    """One optimisation step of `model` under `config`: `step(inputs, targets)`.

    A step runs the (wrapped) model once, on AugShift's two shifted views (`config.augshift`,
    `AugShiftObjective`), on one shifted view (`config.shift`) or on the inputs. The
    shifts are drawn apart from the computation (`draw`, `losses`), which `config.compile` captures
    with `torch.compile`. Targets: class indices (N,), or per-pixel classes (N, H, W) for a segmenter returning
    (N, K, H, W).

    Args:
        model: the model to train (unwrapped, already on its device); with AugShift its classifier is found by
            `classifier_of` (e.g. an attribute `fc`).
        config: the `TrainConfig` (optimizer, schedule, shifts, precision, compile).
        steps_per_epoch: optimisation steps per epoch (the one-cycle schedule lasts `config.epochs` times it).
        wrap: wraps the model for the forward (e.g. `DistributedDataParallel`); `None`: the model itself.
        generator: draws the shifts (default: a generator on the model's device seeded with `config.seed`;
            `fit` re-seeds it per epoch and process).

    `step(inputs, targets)` takes inputs (N, C, H, W) and returns the detached loss parts (`parts`: `loss`,
    and with AugShift `criterion` and `consistency`), a float tensor on the device; `state_dict()` /
    `load_state_dict()` hold the model, optimizer and schedule.

    Examples:
        >>> from augshift.config import AugShiftConfig
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> inputs, targets = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
        >>> trainer = Trainer(create_small_cnn(3, width=4), TrainConfig(epochs=1, batch_size=4), steps_per_epoch=1)
        >>> trainer.parts, trainer.step(inputs, targets).shape
        (('loss',), torch.Size([1]))
        >>> config = TrainConfig(epochs=1, batch_size=4, shift=AugShiftConfig(max_shift=2), augshift=True)
        >>> trainer = Trainer(create_small_cnn(3, width=4), config, steps_per_epoch=1)
        >>> trainer.parts, trainer.step(inputs, targets).shape
        (('loss', 'criterion', 'consistency'), torch.Size([3]))
    """

    def __init__(
        self, model: nn.Module, config: TrainConfig, *, steps_per_epoch: int,
        wrap: Optional[Callable[[nn.Module], nn.Module]] = None, generator: Optional[torch.Generator] = None,
    ) -> None:
        self.model, self.config = model, config
        device = next(model.parameters()).device  # the shifts are drawn where the model trains: no copy, no wait
        self.generator = generator if generator is not None else torch.Generator(device).manual_seed(config.seed)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.net = wrap(model) if wrap is not None else model
        shift = config.shift
        self.objective: Optional[AugShiftObjective] = None
        self.shifter: Optional[RandomShift] = None
        if config.augshift:
            self.objective = AugShiftObjective(shift, generator=self.generator)
            self.features = PooledFeatures(model)
            self.parts: tuple[str, ...] = ("loss", "criterion", "consistency")
        else:
            if shift is not None and shift.max_shift not in (0, (0, 0)):
                self.shifter = RandomShift(shift.max_shift, mode=shift.mode, generator=self.generator)
            self.parts = ("loss",)
        cuda = next(model.parameters()).is_cuda
        optimizer_class = torch.optim.SGD if config.optimizer == "sgd" else torch.optim.Adam
        fused = fused_option(optimizer_class, cuda=cuda)
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                nesterov=True, **fused)
        else:
            self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.betas,
                                              weight_decay=config.weight_decay, **fused)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.lr, total_steps=max(1, config.epochs * steps_per_epoch), pct_start=0.15
        ) if config.schedule == "onecycle" else None
        # the captured step: forward and backward compiled (with CUDA graphs on CUDA); the shifts are drawn apart
        self.compute = torch.compile(self.losses, mode="reduce-overhead" if cuda else None, dynamic=False) \
            if config.compile else self.losses

    def autocast(self, device: torch.device):
        """bf16 autocast when the config asks for it, else nothing.

        Examples:
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> config = TrainConfig(epochs=1, batch_size=2, precision="bf16")
            >>> trainer = Trainer(create_small_cnn(3, width=4), config, steps_per_epoch=1)
            >>> with trainer.autocast(torch.device("cpu")):
            ...     trainer.model(torch.randn(2, 3, 8, 8)).dtype
            torch.bfloat16
        """
        if self.config.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    def draw(self, count: int, device: torch.device) -> tuple[ShiftParams, ...]:
        """The random shifts of one step of `count` samples, drawn from `self.generator` (on its device, without
        waiting for it): AugShift's two views, the one shifted view, or none. Drawn apart from `losses`, so the
        compiled step has no random state of its own and replays exactly.

        Examples:
            >>> from augshift.config import AugShiftConfig
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> config = TrainConfig(epochs=1, batch_size=2, shift=AugShiftConfig(max_shift=2), augshift=True)
            >>> trainer = Trainer(create_small_cnn(3, width=4), config, steps_per_epoch=1)
            >>> view_a, view_b = trainer.draw(2, torch.device("cpu"))  # AugShift: two views
            >>> view_a.dx.shape
            torch.Size([2])
            >>> Trainer(create_small_cnn(3, width=4), TrainConfig(epochs=1, batch_size=2), steps_per_epoch=1).draw(
            ...     2, torch.device("cpu"))  # no shifts asked for
            ()
        """
        if self.objective is not None:
            return self.objective.sample(count, device)
        return (self.shifter.sample(count, device),) if self.shifter is not None else ()

    def losses(self, inputs: Tensor, targets: Tensor, shifts: tuple[ShiftParams, ...]) -> tuple[Tensor, Tensor]:
        """The loss of one batch with the given `shifts` (`draw`) and its detached parts (`self.parts`,
        float32): the computation `TrainConfig.compile` captures.

        Examples:
            >>> from augshift.config import AugShiftConfig
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> config = TrainConfig(epochs=1, batch_size=2, shift=AugShiftConfig(max_shift=2), augshift=True)
            >>> trainer = Trainer(create_small_cnn(3, width=4), config, steps_per_epoch=1)
            >>> inputs, targets = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
            >>> shifts = trainer.draw(2, inputs.device)
            >>> loss, parts = trainer.losses(inputs, targets, shifts)
            >>> torch.equal(trainer.losses(inputs, targets, shifts)[1], parts), trainer.parts  # replayed exactly
            (True, ('loss', 'criterion', 'consistency'))
        """
        with self.autocast(inputs.device):
            if self.objective is not None:
                result = self.objective(self.net, self.features, inputs, targets, params=shifts)
                loss = result["loss"]
                parts = torch.stack([loss.detach(), result["criterion"], result["consistency"]])
            else:
                views = self.shifter(inputs, shifts[0]) if shifts else inputs
                loss = F.cross_entropy(logits_of(self.net(views)), targets)
                parts = loss.detach().unsqueeze(0)
        return loss, parts.float()

    def step(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """One step; returns the detached loss parts (`self.parts`) as a float tensor on the device.

        Examples:
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> model = create_small_cnn(3, width=4)
            >>> trainer = Trainer(model, TrainConfig(epochs=1, batch_size=2), steps_per_epoch=1)
            >>> before = [p.clone() for p in model.parameters()]
            >>> parts = trainer.step(torch.randn(2, 3, 8, 8), torch.tensor([0, 2]))
            >>> parts.shape, any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # a step taken
            (torch.Size([1]), True)
        """
        self.model.train()
        if self.config.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        if targets.dim() > 1 and (self.objective is not None or self.shifter is not None):
            raise UsageError(f"targets of shape {tuple(targets.shape)} are masks, and shifts move the images only: "
                             "train with TrainConfig(shift=None) (the masks would no longer match the images)")
        loss, parts = self.compute(inputs, targets, self.draw(len(inputs), inputs.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return parts.clone() if self.config.compile else parts

    def state_dict(self) -> dict:
        """Model, optimizer and schedule state (the model's keys are the plain model's).

        Examples:
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> model = create_small_cnn(3, width=4)
            >>> state = Trainer(model, TrainConfig(epochs=1, batch_size=2), steps_per_epoch=1).state_dict()
            >>> sorted(state), list(state["model"]) == list(model.state_dict())
            (['model', 'optimizer', 'scheduler'], True)
        """
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved (to resume a run).

        Examples:
            >>> from augshift.models.small_cnn import create_small_cnn
            >>> trained = Trainer(create_small_cnn(3, width=4), TrainConfig(epochs=1, batch_size=2), steps_per_epoch=1)
            >>> _ = trained.step(torch.randn(2, 3, 8, 8), torch.tensor([0, 2]))
            >>> fresh = Trainer(create_small_cnn(3, width=4), TrainConfig(epochs=1, batch_size=2), steps_per_epoch=1)
            >>> fresh.load_state_dict(trained.state_dict())
            >>> all(torch.equal(a, b) for a, b in zip(fresh.model.parameters(), trained.model.parameters()))
            True
        """
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def recalibrate_batchnorm(model: nn.Module, batches: Batches, *, count: int, device: Any = "cpu") -> None:
    """Replace the BatchNorm running statistics of `model` by their average over the first `count` of
    `batches` (inputs, targets), computed with the final weights (`torch.optim.swa_utils.update_bn`).

    After a short run with a fast-moving optimiser the running averages lag behind the weights: a 7x7 GAPNet
    after 200 Adam steps located 100 % of the canvases with batch statistics and 11 % with its running ones.

    Args:
        model: the model whose BatchNorm layers are re-estimated (in place; its train / eval mode is kept).
        batches: an iterable of (inputs (N, C, H, W), targets); only the inputs are used.
        count: how many of the first batches to average over (0: keep the running statistics, do nothing).
        device: where the inputs are moved for the forwards.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> batches = [(torch.randn(8, 3, 8, 8), torch.zeros(8)) for _ in range(3)]
        >>> recalibrate_batchnorm(model, batches, count=2)
        >>> int(model[1].num_batches_tracked), model.training
        (2, True)
    """
    if count > 0:
        torch.optim.swa_utils.update_bn((inputs for inputs, _ in islice(batches, count)), model, device=device)


def fit(
    trainer: Trainer, source: BatchSource, *, place: Dist = Dist(), checkpoint: Optional[Path] = None,
    identity: Optional[dict] = None, progress: bool = True, desc: str = "train",
    after_epoch: Optional[Callable[[int, list[dict]], dict]] = None,
) -> list[dict]:
    """Train `trainer` for `config.epochs` epochs of `source`; returns one row per epoch (mean loss parts,
    steps and seconds).

    After the last epoch the BatchNorm statistics are re-estimated over `config.bn_batches` batches
    (`recalibrate_batchnorm`); after every epoch, and after that re-estimation, the floating buffers are averaged over
    the processes, so every process ends with the same model.

    Args:
        trainer: the `Trainer` (its `config` gives the epochs, seed and `bn_batches`).
        source: the training batches (`BatchSource`, e.g. `TensorBatches.source`).
        place: this process's `Dist` (its device, and whether it is the main process).
        checkpoint: a file written (atomically, by the main process) after every epoch; a run finding one
            continues after its epoch, replaying exactly (shifts re-seeded per epoch and process). `None`: none.
        identity: what the checkpoint must have been written for (e.g. the run's spec); another raises
            `ValueError` instead of mixing two runs.
        progress: show a progress bar (main process only).
        desc: the progress bar's label (and of the messages).
        after_epoch: `after_epoch(epoch, history)`: called (on every process) after each epoch with the epoch
            (from 1) and the rows of the epochs before it; the dict it returns joins the epoch's row (e.g. a test
            accuracy, `BestEpoch`), before the checkpoint is written. Its time is not in the
            row's `seconds`.

    Returns:
        The history: one dict per epoch, `{"epoch", <each of trainer.parts>, "steps", "seconds", ...}` (the
        epochs before a resume included). A non-finite loss raises `FloatingPointError`.

    Examples:
        >>> import tempfile
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
        >>> labels = torch.randint(0, 3, (16,))
        >>> from augshift.data import Normalization
        >>> from augshift.engine import TensorBatches
        >>> batches = TensorBatches(images, labels, batch_size=8, seed=0,
        ...                         normalization=Normalization.of_images(images, source="the example images"))
        >>> trainer = Trainer(create_small_cnn(3, width=4), TrainConfig(epochs=1, batch_size=8),
        ...                   steps_per_epoch=batches.steps)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     history = fit(trainer, batches.source(), checkpoint=Path(folder) / "checkpoint.pt", progress=False,
        ...                   after_epoch=lambda epoch, rows: {"seen": epoch})
        ...     again = fit(trainer, batches.source(), checkpoint=Path(folder) / "checkpoint.pt", progress=False)
        >>> [(row["epoch"], row["steps"], row["seen"]) for row in history], sorted(history[0])
        ([(1, 2, 1)], ['epoch', 'loss', 'seconds', 'seen', 'steps'])
        >>> again == history  # the finished run was resumed from its checkpoint: nothing left to train
        True
    """
    config, device = trainer.config, torch.device(place.device)
    start, history = 0, []
    state = load_checkpoint(checkpoint, device=device) if checkpoint is not None else None
    if state is not None:
        if identity is not None and state.get("identity") != identity:
            raise UsageError(f"{checkpoint} was written by another run ({state.get('identity')}); use another folder")
        trainer.load_state_dict(state["trainer"])
        start, history = state["epoch"], state["history"]
        if place.main and progress:
            print(f"{desc}: resuming after epoch {start}", flush=True)
    with progress_bar(total=config.epochs * source.steps, initial=start * source.steps, desc=desc,
                      enabled=progress and place.main) as bar:
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            seed_generator(trainer.generator, seed=config.seed, epoch=epoch, rank=place.rank)
            sums = torch.zeros(len(trainer.parts), device=device)
            for inputs, targets in source.batches(epoch):
                sums += trainer.step(inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))
                bar.update(1)
            average_buffers(trainer.model)
            means = (sums / source.steps).tolist()  # the epoch's one host synchronisation
            if not all(math.isfinite(value) for value in means):
                raise FloatingPointError(f"{desc}: the loss became non-finite in epoch {epoch + 1} "
                                         f"({dict(zip(trainer.parts, means))}); lower the learning rate or check the data")
            row = {"epoch": epoch + 1, **dict(zip(trainer.parts, means)), "steps": source.steps,
                   "seconds": round(time.perf_counter() - began, 3)}
            history.append({**row, **(after_epoch(epoch + 1, history) if after_epoch is not None else {})})
            bar.set_postfix(epoch=epoch + 1, loss=f"{means[0]:.3f}")
            if checkpoint is not None and place.main:
                save_checkpoint(checkpoint, {"identity": identity, "trainer": trainer.state_dict(),
                                             "epoch": epoch + 1, "history": history})
            barrier()
    if config.bn_batches > 0:  # each process estimates on its own batches: the processes' estimates are averaged
        recalibrate_batchnorm(trainer.model, source.batches(config.epochs), count=config.bn_batches, device=device)
        average_buffers(trainer.model)
    return history
