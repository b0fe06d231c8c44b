"""The training recipe of the position experiments (the paper's Adam recipe, as :class:`PositionConfig`
presets) and the batches it trains on: canvases for the location / canvas-classification task, mosaics for the
segmentation test bed. Training itself is the engine's :func:`~augshift.engine.fit`."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor, nn

from ..engine import BatchSource, Dist, TrainConfig, Trainer, fit, recalibrate_batchnorm
from .canvas import LocationCanvas, evaluate_canvas
from .segmentation import MosaicSegmentation


@dataclass
class PositionConfig:
    """Adam recipe of the paper's location experiments; ``train_limit``/``test_limit`` subsample the data.

    ``exhaustive`` evaluates every test image in every cell; otherwise ``passes`` (default grid*grid)
    passes each put every test image in a random cell. ``bn_batches``: training batches over which the
    BatchNorm statistics are re-estimated with the final weights (0: keep the running averages). ``trunk``: the
    timm trunk of GAPNet / PermuteNet (``resnet18_stride16``: the official code's ResNet-18, no max-pool).
    """

    trunk: str = "resnet18"
    epochs: int = 20
    batch_size: int = 48
    lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    hflip: bool = True
    train_limit: Optional[int] = None
    test_limit: Optional[int] = None
    exhaustive: bool = False
    passes: Optional[int] = None
    bn_batches: int = 50

    def to_dict(self) -> dict:
        return asdict(self)

    def train_config(self) -> TrainConfig:
        """The engine's recipe: Adam at a constant ``lr``, no shift augmentation (flips happen in the batches)."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer="adam", lr=self.lr,
                           betas=self.betas, weight_decay=0.0, schedule="constant", max_shift=0,
                           bn_batches=self.bn_batches)


PRESETS = {
    # Islam et al., official code: ResNet-18 without max-pool (stride 16), from scratch, Adam lr 1e-3 betas (0.5, 0.999),
    # batch 48, 20 epochs, horizontal flips, the full 50k / 10k split (GPU)
    "paper": PositionConfig(trunk="resnet18_stride16"),
    # 2 CPU cores, a few minutes: timm's resnet18 (stride 32, 4x cheaper), one pass over 9600 training images
    # (200 steps), every cell of 1000 test images
    "quick": PositionConfig(epochs=1, train_limit=9600, test_limit=1000, exhaustive=True),
}


SEGMENTATION_PRESETS = {
    # the location recipe (Adam lr 1e-3 betas (0.5, 0.999), flips), 20 epochs of mosaics of the full train set
    "paper": PositionConfig(epochs=20, test_limit=None),
    # 2 CPU cores, a few minutes: 3 epochs of 2700 mosaics (24300 images), 400 test mosaics
    "quick": PositionConfig(epochs=3, batch_size=32, train_limit=24300, test_limit=3600),
}


def epoch_batches(
    data, *, config: PositionConfig, generator: Optional[torch.Generator] = None
) -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    """``(indices, flip)`` per batch of one epoch: ``data.resample()``, a new order and (if ``config.hflip``)
    random flips; ``data`` has ``resample()`` and ``len()`` (a canvas set or a mosaic set)."""
    data.resample()
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(order), config.batch_size):
        indices = order[start:start + config.batch_size]
        yield indices, torch.rand(len(indices), generator=generator) < 0.5 if config.hflip else None


def canvas_source(
    canvas: LocationCanvas, *, task: str, config: PositionConfig, generator: Optional[torch.Generator] = None
) -> BatchSource:
    """Training batches: each epoch new cells, a new order and (if ``config.hflip``) random image flips."""
    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for indices, flip in epoch_batches(canvas, config=config, generator=generator):
            x, cells, labels = canvas.batch(indices, flip=flip)
            yield x, canvas.targets(cells, labels, task)
    return BatchSource(-(-len(canvas) // config.batch_size), batches)


def mosaic_source(
    mosaics: MosaicSegmentation, *, config: PositionConfig, generator: Optional[torch.Generator] = None
) -> BatchSource:
    """Training batches: new mosaics and order every epoch, whole-mosaic flips if ``config.hflip``."""
    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for indices, flip in epoch_batches(mosaics, config=config, generator=generator):
            yield mosaics.batch(indices, flip=flip)
    return BatchSource(-(-len(mosaics) // config.batch_size), batches)


AfterEpoch = Callable[[int, list], dict]


def train_position_model(
    model: nn.Module, source: BatchSource, *, config: PositionConfig, device: Union[str, torch.device] = "cpu",
    progress: bool = True, desc: str = "train", after_epoch: Optional[AfterEpoch] = None,
) -> list[dict]:
    """Train ``model`` on ``source`` with the Adam recipe of ``config`` (the engine's :func:`~augshift.engine.fit`,
    BatchNorm statistics re-estimated after); returns the per-epoch rows (``after_epoch``: as in ``fit``)."""
    model.to(device)
    trainer = Trainer(model, config.train_config(), steps_per_epoch=source.steps)
    return fit(trainer, source, place=Dist(device=str(torch.device(device))), progress=progress, desc=desc,
               after_epoch=after_epoch)


def train_on_canvas(
    model: nn.Module, canvas: LocationCanvas, *, task: str = "location", config: PositionConfig = PRESETS["paper"],
    generator: Optional[torch.Generator] = None, device: Union[str, torch.device] = "cpu", progress: bool = True,
    after_epoch: Optional[AfterEpoch] = None,
) -> list[dict]:
    """Train ``model`` on the location (``task="location"``) or canvas classification task."""
    source = canvas_source(canvas, task=task, config=config, generator=generator)
    return train_position_model(model, source, config=config, device=device, progress=progress,
                                desc=f"train {task} {canvas.grid}x{canvas.grid}", after_epoch=after_epoch)


def canvas_scorer(
    train_images: Tensor, test: LocationCanvas, *, task: str, config: PositionConfig, seed: int,
    device: Union[str, torch.device] = "cpu",
) -> Callable[[nn.Module], float]:
    """A per-epoch score for :class:`~augshift.engine.BestEpoch`: BatchNorm statistics re-estimated over
    ``config.bn_batches`` batches of canvases of ``train_images`` (as after training), then the accuracy of one
    random pass over ``test``. Its canvases and cells come from generators of its own (seeded by ``seed`` and
    the call), and a PermuteNet's permutation stream is put back after it, so scoring leaves the training's random
    streams as they were; training in train mode uses batch statistics, so re-estimating the running ones does
    not change it."""
    calls = iter(range(1 << 30))

    def score(model: nn.Module) -> float:
        generator = torch.Generator().manual_seed(seed * 1000 + next(calls))
        permutation = getattr(getattr(model, "channel_permutation", None), "generator", None)
        state = permutation.get_state() if permutation is not None else None
        canvas = LocationCanvas(train_images, grid=test.grid, generator=generator)
        batches = canvas_source(canvas, task="location", config=config, generator=generator).batches(0)
        recalibrate_batchnorm(model, batches, count=config.bn_batches, device=device)
        accuracy = evaluate_canvas(model, test, task=task, passes=1, generator=generator, device=device).accuracy
        if permutation is not None:
            permutation.set_state(state)
        return 100 * accuracy

    return score


def train_segmentation(
    model: nn.Module, mosaics: MosaicSegmentation, *, config: PositionConfig = SEGMENTATION_PRESETS["paper"],
    generator: Optional[torch.Generator] = None, device: Union[str, torch.device] = "cpu", progress: bool = True,
) -> list[dict]:
    """Train a segmenter on ``mosaics`` with per-pixel cross-entropy."""
    source = mosaic_source(mosaics, config=config, generator=generator)
    return train_position_model(model, source, config=config, device=device, progress=progress,
                                desc="train segmentation")
