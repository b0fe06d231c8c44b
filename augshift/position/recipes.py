"""The training recipe of the position experiments (the paper's Adam recipe, as `PositionConfig`
presets) and the batches it trains on: canvases for the location / canvas-classification task, mosaics for the
segmentation test bed. Training itself is the engine's `fit`."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional, Union

import torch
from torch import Tensor, nn

from ..seeding import Stream, stream_generator
from ..engine import TrainConfig, Trainer, fit
from ..distributed import Dist
from ..engine.config import fast_path
from ..engine.sources import BatchSource, steps_per_epoch
from ..engine.trainer import recalibrate_batchnorm
from .canvas import LocationCanvas, evaluate_canvas
from .segmentation import MosaicSegmentation


@dataclass
class PositionConfig:
    """Adam recipe of the paper's location experiments; `train_limit`/`test_limit` subsample the data.

    `PRESETS` and `SEGMENTATION_PRESETS` hold the paper's recipe and a quick CPU one;
    `train_config` turns it into the engine's `TrainConfig`.

    Args:
        trunk: the timm trunk of GAPNet / PermuteNet (`resnet18_stride16`: the official code's ResNet-18, no
            max-pool).
        fast_path: on CUDA, bf16 autocast, channels-last and the captured step (the engine's `compile`; each
            epoch's last partial batch is then left out, so every batch has one shape).
        epochs: training epochs.
        batch_size: images (canvases or mosaics) per step.
        lr: Adam's learning rate, constant.
        betas: Adam's betas.
        hflip: mirror a random half of each batch's images (canvases: the image inside its cell; mosaics: the
            whole mosaic and its mask).
        train_limit: use only this many training images (None: all).
        test_limit: use only this many test images (None: all).
        exhaustive: evaluate every test image in every cell.
        passes: otherwise, `passes` (default grid*grid) passes each put every test image in a random cell.
        bn_batches: training batches over which the BatchNorm statistics are re-estimated with the final weights
            (0: keep the running averages).

    Examples:
        >>> config = PositionConfig(epochs=1, batch_size=2, bn_batches=0)
        >>> train = config.train_config()
        >>> train.optimizer, train.lr, train.betas, train.schedule, train.precision
        ('adam', 0.001, (0.5, 0.999), 'constant', 'fp32')
        >>> PRESETS["paper"].trunk, PRESETS["quick"].epochs
        ('resnet18_stride16', 1)
    """

    trunk: str = "resnet18"
    fast_path: bool = False
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
        """The fields, JSON-ready.

        Examples:
            >>> PositionConfig(epochs=3).to_dict()["epochs"], PositionConfig().to_dict()["betas"]
            (3, (0.5, 0.999))
        """
        return asdict(self)

    def train_config(self, device: Union[str, torch.device] = "cpu") -> TrainConfig:
        """The engine's recipe on `device`: Adam at a constant `lr`, no shift augmentation (flips happen in the
        batches), the fast path where asked and on CUDA.

        Examples:
            >>> train = PositionConfig(epochs=2, lr=0.01).train_config("cpu")
            >>> train.epochs, train.optimizer, train.lr, train.shift
            (2, 'adam', 0.01, None)
        """
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, optimizer="adam", lr=self.lr,
                           betas=self.betas, weight_decay=0.0, schedule="constant", shift=None,
                           bn_batches=self.bn_batches, **(fast_path(device) if self.fast_path else {}))


PRESETS = {
    # Islam et al., official code: ResNet-18 without max-pool (stride 16), from scratch, Adam lr 1e-3 betas (0.5, 0.999),
    # batch 48, 20 epochs, horizontal flips, the full 50k / 10k split (GPU)
    "paper": PositionConfig(trunk="resnet18_stride16", fast_path=True),
    # 2 CPU cores, a few minutes: timm's resnet18 (stride 32, 4x cheaper), one pass over 9600 training images
    # (200 steps), every cell of 1000 test images
    "quick": PositionConfig(epochs=1, train_limit=9600, test_limit=1000, exhaustive=True),
}


SEGMENTATION_PRESETS = {
    # the location recipe (Adam lr 1e-3 betas (0.5, 0.999), flips), 20 epochs of mosaics of the full train set
    "paper": PositionConfig(epochs=20, test_limit=None, fast_path=True),
    # 2 CPU cores, a few minutes: 3 epochs of 2700 mosaics (24300 images), 400 test mosaics
    "quick": PositionConfig(epochs=3, batch_size=32, train_limit=24300, test_limit=3600),
}


def epoch_batches(
    data, *, config: PositionConfig, generator: Optional[torch.Generator] = None, drop_last: bool = False
) -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    """`(indices, flip)` per batch of one epoch: `data.resample()`, a new order and (if `config.hflip`)
    random flips; `data` has `resample()` and `len()` (a canvas set or a mosaic set).

    Args:
        data: a `LocationCanvas` or
            `MosaicSegmentation` (anything with `resample()` and `len()`);
            resampled once, when the iteration starts.
        config: its `batch_size` and `hflip` are used.
        generator: draws the order and the flips (reproducible); a CUDA generator draws them on the GPU.
        drop_last: leave out the last partial batch (every batch one shape: the captured step; fewer items than a
            batch make one batch).

    Yields:
        `(indices (B,), flip (B,) bool or None)` per batch; the last batch may be smaller unless `drop_last`.

    Examples:
        >>> canvas = LocationCanvas(torch.randn(5, 3, 8, 8), grid=2)
        >>> batches = list(epoch_batches(canvas, config=PositionConfig(batch_size=2)))
        >>> [len(indices) for indices, flip in batches], batches[0][1].dtype
        ([2, 2, 1], torch.bool)
        >>> sorted(torch.cat([indices for indices, flip in batches]).tolist())
        [0, 1, 2, 3, 4]
    """
    data.resample()
    device = generator.device if generator is not None else None  # a CUDA generator keeps it all on the GPU
    order = torch.randperm(len(data), generator=generator, device=device)
    end = min(len(order), steps_per_epoch(len(order), config.batch_size, drop_last=drop_last) * config.batch_size)
    for start in range(0, end, config.batch_size):
        indices = order[start:start + config.batch_size]
        yield indices, torch.rand(len(indices), generator=generator, device=device) < 0.5 if config.hflip else None


def canvas_source(
    canvas: LocationCanvas, *, task: str, config: PositionConfig, generator: Optional[torch.Generator] = None,
    drop_last: bool = False,
) -> BatchSource:
    """Training batches: each epoch new cells, a new order and (if `config.hflip`) random image flips.

    Args:
        canvas: the `LocationCanvas` of training images.
        task: `"location"` (targets: the cells) or `"class"` (targets: the labels).
        config: its `batch_size` and `hflip` are used.
        generator: draws the cells, the order and the flips (reproducible).
        drop_last: leave out each epoch's last partial batch (`epoch_batches`).

    Returns:
        A `BatchSource` of `steps_per_epoch` steps (`ceil(N /
        batch_size)`; `floor`, at least 1, with `drop_last`), each a pair (canvases (B, C, grid*h, grid*w),
        targets (B,)).

    Examples:
        >>> canvas = LocationCanvas(torch.randn(4, 3, 8, 8), grid=3)
        >>> source = canvas_source(canvas, task="location", config=PositionConfig(batch_size=2))
        >>> x, y = next(iter(source.batches(0)))
        >>> source.steps, x.shape, y.shape
        (2, torch.Size([2, 3, 24, 24]), torch.Size([2]))
    """
    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for indices, flip in epoch_batches(canvas, config=config, generator=generator, drop_last=drop_last):
            x, cells, labels = canvas.batch(indices, flip=flip)
            yield x, canvas.targets(cells, labels, task)
    return BatchSource(steps_per_epoch(len(canvas), config.batch_size, drop_last=drop_last), batches)


def mosaic_source(
    mosaics: MosaicSegmentation, *, config: PositionConfig, generator: Optional[torch.Generator] = None,
    drop_last: bool = False,
) -> BatchSource:
    """Training batches: new mosaics and order every epoch, whole-mosaic flips if `config.hflip`.

    Args:
        mosaics: the `MosaicSegmentation` of training images.
        config: its `batch_size` and `hflip` are used.
        generator: draws the order and the flips (reproducible); the mosaics come from `mosaics`' own
            generator.
        drop_last: leave out each epoch's last partial batch (`epoch_batches`).

    Returns:
        A `BatchSource` of `steps_per_epoch` steps, each a pair
        (mosaics (B, C, H, W), masks (B, H, W)).

    Examples:
        >>> mosaics = MosaicSegmentation(torch.randn(18, 3, 4, 4), torch.arange(18) % 9, grid=3)
        >>> source = mosaic_source(mosaics, config=PositionConfig(batch_size=1))
        >>> x, y = next(iter(source.batches(0)))
        >>> source.steps, x.shape, y.shape
        (2, torch.Size([1, 3, 12, 12]), torch.Size([1, 12, 12]))
    """
    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for indices, flip in epoch_batches(mosaics, config=config, generator=generator, drop_last=drop_last):
            yield mosaics.batch(indices, flip=flip)
    return BatchSource(steps_per_epoch(len(mosaics), config.batch_size, drop_last=drop_last), batches)


AfterEpoch = Callable[[int, list], dict]


def train_position_model(
    model: nn.Module, source: BatchSource, *, config: PositionConfig, device: Union[str, torch.device] = "cpu",
    progress: bool = True, desc: str = "train", after_epoch: Optional[AfterEpoch] = None,
) -> list[dict]:
    """Train `model` on `source` with the Adam recipe of `config` (the engine's `fit`,
    BatchNorm statistics re-estimated after); returns the per-epoch rows (`after_epoch`: as in `fit`).

    Args:
        model: the model (moved to `device`, trained in place).
        source: the training batches, e.g. `canvas_source` or `mosaic_source`.
        config: the recipe (`PositionConfig.train_config`).
        device: where the model trains.
        progress: show a progress bar (`progress_bar`).
        desc: the bar's label.
        after_epoch: `after_epoch(epoch, history) -> dict`, called after each epoch (epochs from 1); its dict
            joins the epoch's row (e.g. a test accuracy).

    Returns:
        One row per epoch: `epoch`, the mean `loss`, `steps`, `seconds`, and `after_epoch`'s entries.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9))
        >>> canvas = LocationCanvas(torch.randn(4, 3, 8, 8), grid=3)
        >>> config = PositionConfig(epochs=1, batch_size=2, bn_batches=0)
        >>> source = canvas_source(canvas, task="location", config=config)
        >>> rows = train_position_model(model, source, config=config, progress=False,
        ...                             after_epoch=lambda epoch, history: {"seen": epoch})
        >>> [(row["epoch"], row["steps"], row["seen"]) for row in rows], sorted(rows[0])
        ([(1, 2, 1)], ['epoch', 'loss', 'seconds', 'seen', 'steps'])
    """
    model.to(device)
    trainer = Trainer(model, config.train_config(device), steps_per_epoch=source.steps)
    return fit(trainer, source, place=Dist(device=str(torch.device(device))), progress=progress, desc=desc,
               after_epoch=after_epoch)


def train_on_canvas(
    model: nn.Module, canvas: LocationCanvas, *, task: str = "location", config: PositionConfig = PRESETS["paper"],
    generator: Optional[torch.Generator] = None, device: Union[str, torch.device] = "cpu", progress: bool = True,
    after_epoch: Optional[AfterEpoch] = None,
) -> list[dict]:
    """Train `model` on the location (`task="location"`) or canvas classification task.

    Args:
        model: a classifier of canvases with `grid * grid` outputs for the location task (GAPNet / PermuteNet)
            or one per class for `task="class"`; moved to `device` and trained in place.
        canvas: the `LocationCanvas` of training images.
        task: `"location"` (target: the cell) or `"class"` (target: the image's label).
        config: the recipe (default: the paper's, `PRESETS` `["paper"]`).
        generator: draws the cells, the order and the flips (reproducible).
        device: where the model trains.
        progress: show a progress bar (`progress_bar`).
        after_epoch: `after_epoch(epoch, history) -> dict`, as in `train_position_model`.

    Returns:
        One row per epoch (see `train_position_model`).

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 9))
        >>> canvas = LocationCanvas(torch.randn(4, 3, 8, 8), grid=3)
        >>> rows = train_on_canvas(model, canvas, config=PositionConfig(epochs=1, batch_size=2, bn_batches=0),
        ...                        generator=torch.Generator().manual_seed(0), progress=False)
        >>> len(rows), rows[0]["steps"]
        (1, 2)
    """
    captured = config.train_config(device).compile  # the captured step needs batches of one shape
    source = canvas_source(canvas, task=task, config=config, generator=generator, drop_last=captured)
    return train_position_model(model, source, config=config, device=device, progress=progress,
                                desc=f"train {task} {canvas.grid}x{canvas.grid}", after_epoch=after_epoch)


def canvas_scorer(
    train_images: Tensor, test: LocationCanvas, *, task: str, config: PositionConfig, seed: int,
    device: Union[str, torch.device] = "cpu",
) -> Callable[[nn.Module], float]:
    """A per-epoch score for `BestEpoch`: BatchNorm statistics re-estimated over
    `config.bn_batches` batches of canvases of `train_images` (as after training), then the accuracy of one
    random pass over `test`. Its canvases and cells come from generators of its own (seeded by `seed` and
    the call), and a PermuteNet's permutation stream is put back after it, so scoring leaves the training's random
    streams as they were; training in train mode uses batch statistics, so re-estimating the running ones does
    not change it.

    Args:
        train_images: float (N, C, h, w) training images, put on canvases to re-estimate the BatchNorm statistics.
        test: the `LocationCanvas` scored.
        task: `"location"` or `"class"`: what is scored on `test`.
        config: its `bn_batches`, `batch_size` and `hflip` are used.
        seed: seeds the scorer's generators (with the number of the call).
        device: where the model runs.

    Returns:
        `score(model) -> float`: the accuracy in % (0 to 100).

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 4))
        >>> test = LocationCanvas(torch.randn(4, 3, 8, 8), grid=2)
        >>> score = canvas_scorer(torch.randn(4, 3, 8, 8), test, task="location",
        ...                       config=PositionConfig(batch_size=2, bn_batches=1), seed=0)
        >>> 0.0 <= score(model) <= 100.0
        True
    """
    calls = iter(range(1 << 30))

    def score(model: nn.Module) -> float:
        generator = stream_generator(seed, Stream.CANVAS_SCORE, next(calls))
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
    """Train a segmenter on `mosaics` with per-pixel cross-entropy.

    Args:
        model: a segmenter (N, C, H, W) -> logits (N, K, H, W); moved to `device` and trained in place.
        mosaics: the `MosaicSegmentation` of training images.
        config: the recipe (default: `SEGMENTATION_PRESETS` `["paper"]`).
        generator: draws the order and the flips (reproducible).
        device: where the model trains.
        progress: show a progress bar (`progress_bar`).

    Returns:
        One row per epoch (see `train_position_model`).

    Examples:
        >>> mosaics = MosaicSegmentation(torch.randn(18, 3, 4, 4), torch.arange(18) % 9, grid=3)
        >>> rows = train_segmentation(nn.Conv2d(3, 9, 1), mosaics, config=PositionConfig(epochs=1, batch_size=1),
        ...                           progress=False)
        >>> [(row["epoch"], row["steps"]) for row in rows]
        [(1, 2)]
    """
    captured = config.train_config(device).compile  # the captured step needs batches of one shape
    source = mosaic_source(mosaics, config=config, generator=generator, drop_last=captured)
    return train_position_model(model, source, config=config, device=device, progress=progress,
                                desc="train segmentation")
