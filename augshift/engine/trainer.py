"""The one training loop of the project: :class:`Trainer` (one optimisation step) and :func:`fit` (epochs,
resumable checkpoints, data-parallel, progress bar, BatchNorm re-estimation).

The demo, the position experiments and the benchmark sweeps all train through :func:`fit`; what differs is
the :class:`~augshift.engine.TrainConfig` and the batches (:class:`BatchSource`: in-memory images with
:class:`TensorBatches`, canvases or mosaics in :mod:`augshift.position`).

The loop never waits for the GPU inside an epoch: each step's loss parts are added up on the device and read
once per epoch, and the progress bar counts steps without reading the loss.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augshift import AugShift
from ..data.batches import iterate_batches
from ..data.stats import CIFAR_MEAN, CIFAR_STD
from ..shift import RandomShift
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import Dist, average_buffers, barrier
from .seeding import epoch_seed, seed_generator, stream_seed

Batches = Iterable[tuple[Tensor, Tensor]]
FLIP_STREAM = 7  # key of the horizontal-flip stream (beside epoch and rank)


@dataclass(frozen=True)
class BatchSource:
    """Training batches: ``batches(epoch)`` yields ``steps`` pairs (inputs, targets) for that epoch."""

    steps: int
    batches: Callable[[int], Batches]


class TensorBatches:
    """In-memory ``uint8`` images (N, C, H, W) and labels (N,) as a :class:`BatchSource` for one process.

    Every epoch one permutation shared by all processes (seeded by ``seed`` and the epoch) is cut to a multiple
    of the world size and dealt round-robin, so each process takes ``batch_size / world`` samples per step and
    all take the same number of steps. Batches are normalised on the images' device; ``hflip`` mirrors a
    random half of them (a per-epoch, per-process stream).
    """

    def __init__(
        self, images: Tensor, labels: Tensor, *, batch_size: int, seed: int, place: Dist = Dist(),
        hflip: bool = False, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD,
    ) -> None:
        if batch_size % place.world:
            raise ValueError(f"batch size {batch_size} must be divisible by the number of processes {place.world}")
        self.images, self.labels, self.seed, self.place, self.hflip = images, labels, seed, place, hflip
        self.mean, self.std = mean, std
        self.local_batch = batch_size // place.world
        shard = (len(images) - len(images) % place.world) // place.world
        if shard == 0:
            raise ValueError(f"{len(images)} training images cannot be shared by {place.world} processes")
        self.steps = -(-shard // self.local_batch)

    def shard(self, epoch: int) -> Tensor:
        """This process's sample indices for ``epoch``."""
        n, place = len(self.images), self.place
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(self.seed, epoch, -1)))
        return order[: n - n % place.world][place.rank::place.world].to(self.images.device)

    def __call__(self, epoch: int) -> Batches:
        device = self.images.device
        flips = torch.Generator(device=device).manual_seed(stream_seed(self.seed, epoch, self.place.rank + 1, FLIP_STREAM))
        for x, y, _ in iterate_batches(self.images, self.labels, self.local_batch, indices=self.shard(epoch),
                                       mean=self.mean, std=self.std):
            if self.hflip:  # drawn on the device: no copy, no wait
                flip = torch.rand(len(x), generator=flips, device=device) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            yield x, y

    def source(self) -> BatchSource:
        return BatchSource(self.steps, self)


def logits_of(output) -> Tensor:
    """The logits of a model's output: the tensor itself, or torchvision segmentation's ``output["out"]``."""
    return output["out"] if isinstance(output, Mapping) else output


class Trainer:
    """One optimisation step of ``model`` under ``config``: ``step(inputs, targets)``.

    The module that runs is ``AugShift(model)`` (``config.augshift``), ``Sequential(RandomShift, model)``
    (``config.max_shift`` > 0) or the model; ``wrap`` wraps it (e.g. ``DistributedDataParallel``), so all
    computation happens inside the wrapped forward. ``generator`` draws the shifts (default: seeded with
    ``config.seed``; :func:`fit` re-seeds it per epoch and process). Targets: class indices (N,), or per-pixel
    classes (N, H, W) for a segmenter returning (N, K, H, W).
    """

    def __init__(
        self, model: nn.Module, config: TrainConfig, *, steps_per_epoch: int,
        wrap: Optional[Callable[[nn.Module], nn.Module]] = None, generator: Optional[torch.Generator] = None,
    ) -> None:
        self.model, self.config = model, config
        self.generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        if config.augshift is not None:
            net: nn.Module = AugShift(model, config=config.augshift, generator=self.generator)
            self.parts: tuple[str, ...] = ("loss", "criterion", "consistency")
        else:
            shifter = RandomShift(config.max_shift, mode=config.mode, generator=self.generator)
            net = nn.Sequential(shifter, model) if config.max_shift else model
            self.parts = ("loss",)
        self.net = wrap(net) if wrap is not None else net
        cuda = next(model.parameters()).is_cuda
        fused = {"fused": True} if cuda else {}
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

    def autocast(self, device: torch.device):
        """bf16 autocast when the config asks for it, else nothing."""
        if self.config.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return nullcontext()

    def step(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """One step; returns the detached loss parts (``self.parts``) as a float tensor on the device."""
        self.model.train()
        if self.config.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self.autocast(inputs.device):
            if self.config.augshift is not None:
                result = self.net(inputs, targets)
                loss = result["loss"]
                parts = torch.stack([loss.detach(), result["criterion"], result["consistency"]])
            else:
                loss = F.cross_entropy(logits_of(self.net(inputs)), targets)
                parts = loss.detach().unsqueeze(0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return parts.float()

    def state_dict(self) -> dict:
        """Model, optimizer and schedule state (the model's keys are the plain model's)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def recalibrate_batchnorm(model: nn.Module, batches: Batches, *, count: int, device: Any = "cpu") -> None:
    """Replace the BatchNorm running statistics of ``model`` by their average over the first ``count`` of
    ``batches`` (inputs, targets), computed with the final weights (``torch.optim.swa_utils.update_bn``).

    After a short run with a fast-moving optimiser the running averages lag behind the weights: a 7x7 GAPNet
    after 200 Adam steps located 100 % of the canvases with batch statistics and 11 % with its running ones.
    """
    if count > 0:
        torch.optim.swa_utils.update_bn((inputs for inputs, _ in islice(batches, count)), model, device=device)


def fit(
    trainer: Trainer, source: BatchSource, *, place: Dist = Dist(), checkpoint: Optional[Path] = None,
    identity: Optional[dict] = None, progress: bool = True, desc: str = "train",
    after_epoch: Optional[Callable[[int, list[dict]], dict]] = None,
) -> list[dict]:
    """Train ``trainer`` for ``config.epochs`` epochs of ``source``; returns one row per epoch (mean loss parts,
    steps and seconds).

    ``after_epoch(epoch, history)``: called (on every process) after each epoch with the epoch (from 1) and the
    rows of the epochs before it; the dict it returns joins the epoch's row (e.g. a test accuracy), before the
    checkpoint is written. Its time is not in the row's ``seconds``.

    ``checkpoint``: a file written (atomically, by the main process) after every epoch; a run finding one
    continues after its epoch, replaying exactly (shifts re-seeded per epoch and process). ``identity``: what the
    checkpoint must have been written for (e.g. the run's spec); another raises instead of mixing two runs.
    """
    from tqdm.auto import tqdm

    config, device = trainer.config, torch.device(place.device)
    start, history = 0, []
    state = load_checkpoint(checkpoint, device=device) if checkpoint is not None else None
    if state is not None:
        if identity is not None and state.get("identity") != identity:
            raise ValueError(f"{checkpoint} was written by another run ({state.get('identity')}); use another folder")
        trainer.load_state_dict(state["trainer"])
        start, history = state["epoch"], state["history"]
        if place.main and progress:
            print(f"{desc}: resuming after epoch {start}", flush=True)
    with tqdm(total=config.epochs * source.steps, initial=start * source.steps, desc=desc,
              disable=not (progress and place.main), leave=False) as bar:
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
    recalibrate_batchnorm(trainer.model, source.batches(config.epochs), count=config.bn_batches, device=device)
    return history
