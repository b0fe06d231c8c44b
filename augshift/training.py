"""Plain-PyTorch training and evaluation helpers for tensors in memory (demo, benchmarks, position).

Images stay ``uint8`` (N, C, H, W) in memory and are normalised per batch. The baseline step trains on
one randomly shifted view (the standard pad-and-crop augmentation); the AugShift step trains on two
views through :class:`~augshift.augshift.AugShift`. Both draw shifts with the same ``RandomShift``
settings, so the comparison differs only in the second view and the consistency term.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .augshift import DEFAULT_DISTANCE, DEFAULT_MAX_SHIFT, DEFAULT_MODE, DEFAULT_WEIGHT, AugShift
from .metrics import ConsistencyReport, evaluate_shift_consistency
from .shift import RandomShift

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def normalize(images: Tensor, mean: tuple = CIFAR_MEAN, std: tuple = CIFAR_STD) -> Tensor:
    """``uint8`` (N, C, H, W) -> float32, scaled to [0, 1] and normalised per channel."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype}")
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - m) / s


def iterate_batches(
    images: Tensor, labels: Tensor, batch_size: int, *, generator: Optional[torch.Generator] = None,
    indices: Optional[Tensor] = None,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(normalised images, labels, dataset indices)``; shuffled when ``generator`` is given.

    ``indices`` restricts the pass to those samples (e.g. one process's shard), in that order.
    """
    if indices is None:
        indices = torch.arange(len(images))
    if generator is not None:
        indices = indices[torch.randperm(len(indices), generator=generator)]
    for start in range(0, len(indices), batch_size):
        batch = indices[start:start + batch_size]
        yield normalize(images[batch]), labels[batch], batch


@dataclass
class TrainConfig:
    """Recipe shared by the baseline and the AugShift run (keyword-only use recommended)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    augshift: bool = False
    max_shift: int = DEFAULT_MAX_SHIFT
    mode: str = DEFAULT_MODE
    weight: float = DEFAULT_WEIGHT
    distance: str = DEFAULT_DISTANCE
    normalize: bool = False
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("history")
        return out


class Trainer:
    """SGD + one-cycle schedule over ``epochs``; ``step(images, labels)`` does one optimisation step.

    ``wrap``: applied to the module that runs the model (``AugShift(model)``, or the baseline's
    ``Sequential(RandomShift, model)``), e.g. ``DistributedDataParallel`` for data-parallel training; all
    computation then happens inside the wrapped forward. ``generator``: draws the shifts (default: one
    seeded with ``config.seed``); re-seed it per epoch and process for resumable multi-process runs.
    """

    def __init__(
        self, model: nn.Module, config: TrainConfig, *, steps_per_epoch: int,
        wrap: Optional[Callable[[nn.Module], nn.Module]] = None, generator: Optional[torch.Generator] = None,
    ) -> None:
        self.model, self.config = model, config
        self.generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
        if config.augshift:
            self.augshift = AugShift(
                model, max_shift=config.max_shift, mode=config.mode, weight=config.weight,
                distance=config.distance, normalize=config.normalize, generator=self.generator,
            )
            net: nn.Module = self.augshift
        else:
            self.shifter = RandomShift(config.max_shift, mode=config.mode, generator=self.generator)
            net = nn.Sequential(self.shifter, model)
        self.net = wrap(net) if wrap is not None else net
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
        )
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.lr, total_steps=max(1, config.epochs * steps_per_epoch), pct_start=0.15
        )

    def step(self, images: Tensor, labels: Tensor) -> dict[str, float]:
        self.model.train()
        if self.config.augshift:
            result = self.net(images, labels)
            loss = result["loss"]
            parts = {"criterion": float(result["criterion"]), "consistency": float(result["consistency"])}
        else:
            loss = F.cross_entropy(self.net(images), labels)
            parts = {"criterion": float(loss.detach())}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(loss.detach()), **parts}

    def state_dict(self) -> dict:
        """Model, optimizer and schedule state (the model's keys are the plain model's)."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def train_classifier(
    model: nn.Module, images: Tensor, labels: Tensor, config: TrainConfig, *, progress: bool = True, desc: str = "train"
) -> list[dict]:
    """Train ``model`` on ``uint8`` images (N, C, H, W) and labels (N,); returns per-epoch mean losses."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    steps = -(-len(images) // config.batch_size)
    trainer = Trainer(model, config, steps_per_epoch=steps)
    shuffle = torch.Generator().manual_seed(config.seed + 1)
    history = []
    with tqdm(total=config.epochs * steps, desc=desc, disable=not progress, leave=False) as bar:
        for epoch in range(config.epochs):
            totals: dict[str, float] = {}
            for x, y, _ in iterate_batches(images, labels, config.batch_size, generator=shuffle):
                for key, value in trainer.step(x, y).items():
                    totals[key] = totals.get(key, 0.0) + value
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{totals['loss'] / max(bar.n - epoch * steps, 1):.3f}")
            history.append({"epoch": epoch + 1, **{k: v / steps for k, v in totals.items()}})
    return history


def evaluate_classifier(
    model: nn.Module, images: Tensor, labels: Tensor, *, batch_size: int = 500, progress: bool = True, **options
) -> ConsistencyReport:
    """Accuracy and shift consistency of ``model`` on ``uint8`` images; ``options`` go to ShiftConsistency."""
    batches = iterate_batches(images, labels, batch_size)
    return evaluate_shift_consistency(model, batches, device=torch.device("cpu"), progress=progress, **options)
