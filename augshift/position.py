"""Position information (Islam et al. 2021, Sec. 3 and 5): the location task, channel ranking, channel ablation.

* :class:`LocationCanvas` pastes each image (e.g. 32x32 CIFAR-10) into one cell of a ``grid x grid`` zero
  canvas; the target is the cell index ``row * grid + col`` (the class label is kept for the image
  classification column). :func:`train_on_canvas` and :func:`evaluate_canvas` train and score GAPNet /
  PermuteNet (see :mod:`augshift.zoo`) on it, overall and per cell.
* :func:`rank_position_channels` ranks the channels of any module by how much their pooled activation
  changes when only the position of the content changes (flip or shift); ``region=`` gives the signed,
  region-specific ranking (channels that fire for content on the left, right, top or bottom).
* :func:`ablate_channels` zeroes channels of a module by a forward hook (removed on exit), and
  :func:`attack_curve` compares top-N ranked channels with N random channels as N grows.

Everything takes tensors and models; data loading lives in the CLI layer.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from .io import save_figure_atomic
from .shift import check_images, shift

TASKS = ("location", "class")
TRANSFORMS = ("hflip", "vflip", "shift")
REGIONS = {"left": ("x", -1), "right": ("x", 1), "top": ("y", -1), "bottom": ("y", 1)}


# ----------------------------------------------------------------------------------------------- plots

def _finish(figure, path: Optional[str]):
    """Save ``figure`` to ``path`` (atomically) if given; returns the figure."""
    if path:
        save_figure_atomic(figure, path, dpi=120, bbox_inches="tight")
        _pyplot().close(figure)
    return figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------------------------- canvas

def tile(tiles: Tensor, grid: int) -> Tensor:
    """Lay out ``tiles`` (N, grid*grid, C, h, w) row-major on canvases (N, C, grid*h, grid*w)."""
    n, cells, c, h, w = tiles.shape
    if cells != grid * grid:
        raise ValueError(f"expected grid*grid = {grid * grid} tiles per canvas, got {cells}")
    return tiles.reshape(n, grid, grid, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, grid * h, grid * w)


def paste_in_cells(images: Tensor, cells: Tensor, grid: int) -> Tensor:
    """Paste each image (N, C, h, w) into cell ``cells[i]`` (row-major) of a zero canvas (N, C, grid*h, grid*w)."""
    check_images(images)
    cells = torch.as_tensor(cells, dtype=torch.long)
    if cells.shape != (len(images),) or cells.min() < 0 or cells.max() >= grid * grid:
        raise ValueError(f"cells must be (N,) = ({len(images)},) indices in [0, {grid * grid}), got {cells.tolist()[:8]}")
    tiles = images.new_zeros((len(images), grid * grid, *images.shape[1:]))
    tiles[torch.arange(len(images)), cells.to(images.device)] = images
    return tile(tiles, grid)


class LocationCanvas(Dataset):
    """The location task: image ``i`` pasted into cell ``cells[i]`` of a ``grid x grid`` zero canvas.

    ``images`` are float (N, C, h, w) (normalised: the empty cells are zeros), ``labels`` (N,) the
    classes (kept for the image-classification column). Item ``i`` is ``(canvas (C, grid*h, grid*w),
    cell, label)``; ``cells`` are drawn from ``generator`` and redrawn by :meth:`resample`.
    """

    def __init__(
        self, images: Tensor, labels: Optional[Tensor] = None, *, grid: int = 3,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        check_images(images, "images", floating=True)
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.images, self.grid, self.generator = images, grid, generator
        self.labels = torch.full((len(images),), -1, dtype=torch.long) if labels is None else torch.as_tensor(labels)
        if self.labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {tuple(self.labels.shape)}")
        self.cells = self.resample()

    @property
    def num_cells(self) -> int:
        return self.grid * self.grid

    def resample(self) -> Tensor:
        """Draw a new cell for every image from ``generator`` (e.g. once per epoch); returns the cells."""
        self.cells = torch.randint(self.num_cells, (len(self.images),), generator=self.generator)
        return self.cells

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        canvas, cell, label = self.batch(torch.tensor([index]))
        return canvas[0], int(cell[0]), int(label[0])

    def batch(
        self, indices: Tensor, cells: Optional[Tensor] = None, *, flip: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Canvases (B, C, H, W), cells (B,), labels (B,) for ``indices``; ``flip`` (B,) bool mirrors images first."""
        cells = self.cells[indices] if cells is None else cells
        images = self.images[indices]
        if flip is not None:
            images = torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
        return paste_in_cells(images, cells, self.grid), cells, self.labels[indices]

    def targets(self, cells: Tensor, labels: Tensor, task: str) -> Tensor:
        """The training target of ``task``: the cell index (location) or the class label (class)."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; supported: {', '.join(TASKS)}")
        return cells if task == "location" else labels


# ----------------------------------------------------------------------------------------------- training

@dataclass
class PositionConfig:
    """Adam recipe of the paper's location experiments; ``train_limit``/``test_limit`` subsample the data.

    ``exhaustive`` evaluates every test image in every cell; otherwise ``passes`` (default grid*grid)
    passes each put every test image in a random cell. ``bn_batches``: training batches over which the
    BatchNorm statistics are re-estimated with the final weights (0: keep the running averages).
    """

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


PRESETS = {
    # Islam et al.: ResNet-18, Adam lr 1e-3 betas (0.5, 0.999), batch 48, 20 epochs, horizontal flips (GPU)
    "paper": PositionConfig(),
    # 2 CPU cores, a few minutes: one pass over 9600 training images (200 steps), every cell of 1000 test images
    "quick": PositionConfig(epochs=1, train_limit=9600, test_limit=1000, exhaustive=True),
}


def fit(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, total: int, lr: float = 1e-3,
    betas: tuple = (0.5, 0.999), device: Union[str, torch.device] = "cpu", progress: bool = True, desc: str = "train",
) -> list[float]:
    """Adam + cross-entropy over ``batches`` of (inputs, targets); logits (N, K) or (N, K, H, W). Returns losses."""
    from tqdm.auto import tqdm

    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas))
    losses = []
    with tqdm(total=total, desc=desc, disable=not progress, leave=False) as bar:
        for inputs, targets in batches:
            logits = model(inputs.to(device))
            if isinstance(logits, dict):
                logits = logits["out"]
            loss = F.cross_entropy(logits, targets.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    return losses


def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], *, count: int, device: Union[str, torch.device] = "cpu"
) -> None:
    """Replace the BatchNorm running statistics of ``model`` by their average over the first ``count`` of
    ``batches`` (inputs, targets), computed with the final weights (``torch.optim.swa_utils.update_bn``).

    After a short run with a fast-moving optimiser the running averages lag behind the weights: a 7x7 GAPNet
    after 200 Adam steps located 100 % of the canvases with batch statistics and 11 % with its running ones.
    """
    if count > 0:
        torch.optim.swa_utils.update_bn((inputs for inputs, _ in islice(batches, count)), model, device=device)


def epoch_batches(
    data, *, config: PositionConfig, generator: Optional[torch.Generator] = None
) -> Iterator[tuple[Tensor, Optional[Tensor]]]:
    """``(indices, flip)`` per batch: each epoch ``data.resample()``, a new order and (if ``config.hflip``)
    random flips; ``data`` has ``resample()`` and ``len()`` (a canvas set or a mosaic set)."""
    for _ in range(config.epochs):
        data.resample()
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(order), config.batch_size):
            indices = order[start:start + config.batch_size]
            yield indices, torch.rand(len(indices), generator=generator) < 0.5 if config.hflip else None


def canvas_batches(
    canvas: LocationCanvas, *, task: str, config: PositionConfig, generator: Optional[torch.Generator] = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Training batches: each epoch new cells, a new order and (if ``config.hflip``) random image flips."""
    for indices, flip in epoch_batches(canvas, config=config, generator=generator):
        x, cells, labels = canvas.batch(indices, flip=flip)
        yield x, canvas.targets(cells, labels, task)


def train_on_canvas(
    model: nn.Module, canvas: LocationCanvas, *, task: str = "location", config: PositionConfig = PRESETS["paper"],
    generator: Optional[torch.Generator] = None, device: Union[str, torch.device] = "cpu", progress: bool = True,
) -> list[float]:
    """Train ``model`` on the location (``task="location"``) or canvas classification task; returns losses."""
    steps = config.epochs * -(-len(canvas) // config.batch_size)
    batches = canvas_batches(canvas, task=task, config=config, generator=generator)
    losses = fit(model, batches, total=steps, lr=config.lr, betas=config.betas, device=device, progress=progress,
                 desc=f"train {task} {canvas.grid}x{canvas.grid}")
    recalibrate_batchnorm(model, canvas_batches(canvas, task=task, config=config, generator=generator),
                          count=config.bn_batches, device=device)
    return losses


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``torch.no_grad()`` inside the block; the training flag is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


@dataclass
class LocationReport:
    """Accuracy of a canvas task overall and per cell; ``correct``/``total`` are (grid*grid,) counts."""

    grid: int
    task: str
    correct: list
    total: list

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(sum(self.total), 1)

    @property
    def per_cell(self) -> Tensor:
        """Accuracy per cell (grid, grid), row-major like the cell index."""
        correct, total = torch.tensor(self.correct, dtype=torch.float64), torch.tensor(self.total, dtype=torch.float64)
        return (correct / total.clamp(min=1)).view(self.grid, self.grid)

    def to_dict(self) -> dict:
        return dict(grid=self.grid, task=self.task, accuracy=self.accuracy, per_cell=self.per_cell.tolist(),
                    correct=self.correct, total=self.total)

    def plot(self, path: Optional[str] = None, *, title: Optional[str] = None):
        """Per-cell accuracy heatmap; saved to ``path`` if given. Returns the figure."""
        plt = _pyplot()
        size = 1.0 + 0.6 * self.grid
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        acc = self.per_cell.numpy() * 100
        image = ax.imshow(acc, vmin=0, vmax=100, cmap="viridis")
        if self.grid <= 9:
            for (r, c), value in np.ndenumerate(acc):
                ax.text(c, r, f"{value:.0f}", ha="center", va="center", color="w" if value < 60 else "k", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title or f"{self.task} accuracy per cell: {100 * self.accuracy:.1f}%", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046, label="accuracy (%)")
        return _finish(fig, path)


def evaluate_canvas(
    model: nn.Module, canvas: LocationCanvas, *, task: str = "location", exhaustive: bool = False,
    passes: Optional[int] = None, batch_size: int = 200, generator: Optional[torch.Generator] = None,
    device: Union[str, torch.device] = "cpu", progress: bool = False,
) -> LocationReport:
    """Score ``model`` with every image of ``canvas`` in ``passes`` random cells (default grid*grid passes),
    or in every cell once (``exhaustive``); per-cell counts give the location or class accuracy map."""
    from tqdm.auto import tqdm

    g2 = canvas.num_cells
    passes = g2 if exhaustive or passes is None else passes
    correct, total = torch.zeros(g2, dtype=torch.long), torch.zeros(g2, dtype=torch.long)
    n = len(canvas)
    with evaluating(model.to(device)), tqdm(total=passes * n, desc=f"eval {task}", disable=not progress, leave=False) as bar:
        for p in range(passes):
            cells = torch.full((n,), p) if exhaustive else torch.randint(g2, (n,), generator=generator)
            for start in range(0, n, batch_size):
                indices = torch.arange(start, min(start + batch_size, n))
                x, cell, labels = canvas.batch(indices, cells[indices])
                pred = model(x.to(device)).argmax(1).cpu()
                hit = (pred == canvas.targets(cell, labels, task)).long()
                correct.index_add_(0, cell, hit)
                total.index_add_(0, cell, torch.ones_like(hit))
                bar.update(len(indices))
    return LocationReport(canvas.grid, task, correct.tolist(), total.tolist())


# ----------------------------------------------------------------------------------------------- channels

def get_module(model: nn.Module, layer: str) -> nn.Module:
    """The module called ``layer`` in ``model.named_modules()`` (clear error listing candidates otherwise)."""
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        convs = [name for name, m in modules.items() if name and len(list(m.children())) > 0][:12]
        raise ValueError(f"{type(model).__name__} has no module {layer!r}; module names look like: {', '.join(convs)}")
    return modules[layer]


def pooled_activations(
    model: nn.Module, layer: str, images: Tensor, *, batch_size: int = 64, device: Union[str, torch.device] = "cpu"
) -> Tensor:
    """Spatially averaged output (N, C) of module ``layer`` for ``images`` (N, C_in, H, W), in eval mode."""
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        if not isinstance(output, Tensor) or output.dim() < 2:
            raise ValueError(f"module {layer!r} outputs {type(output).__name__}, not a (N, C, ...) tensor; pick a layer "
                             "whose output is a feature map, e.g. 'layer4' or 'backbone.layer4'")
        captured.append(output.flatten(2).mean(-1).float().cpu() if output.dim() > 2 else output.float().cpu())

    handle = get_module(model, layer).register_forward_hook(hook)
    try:
        with evaluating(model.to(device)):
            for start in range(0, len(images), batch_size):
                model(images[start:start + batch_size].to(device))
    finally:
        handle.remove()
    return torch.cat(captured)


def position_pairs(
    images: Tensor, transform: str = "hflip", region: Optional[str] = None, *, amount: float = 0.25
) -> tuple[Tensor, Tensor]:
    """Two versions (A, B) of ``images`` with the same content at different positions.

    Without ``region``: ``hflip``/``vflip`` give (x, flipped x); ``shift`` gives x shifted left vs right by
    ``amount`` of the width (zero fill). With ``region`` (left/right/top/bottom), A has the content in that
    region and B the same content in the opposite one: ``shift`` moves x towards / away from it; a flip
    keeps only the region's half of x in A and mirrors A for B.
    """
    check_images(images, "images", floating=True)
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; supported: {', '.join(TRANSFORMS)}")
    if region is not None and region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; supported: {', '.join(REGIONS)}")
    if transform == "shift":
        axis, sign = REGIONS[region] if region is not None else ("x", -1)
        dim = -1 if axis == "x" else -2
        step = max(1, round(amount * images.shape[dim]))
        move = (lambda s: shift(images, s, 0)) if axis == "x" else (lambda s: shift(images, 0, s))
        return move(sign * step), move(-sign * step)
    axis, dim = ("x", -1) if transform == "hflip" else ("y", -2)
    if region is None:
        return images, images.flip(dim)
    region_axis, sign = REGIONS[region]
    if region_axis != axis:
        raise ValueError(f"region {region!r} needs transform='shift' or '{'hflip' if region_axis == 'x' else 'vflip'}'")
    size = images.shape[dim]
    keep = torch.zeros(size, dtype=images.dtype, device=images.device)
    keep[: size // 2] = 1  # the left (top) half
    keep = keep if sign < 0 else keep.flip(0)
    a = images * (keep if dim == -1 else keep.view(-1, 1))
    return a, a.flip(dim)


@dataclass
class ChannelRanking:
    """Channels of ``layer`` ranked by position score: ``channels`` (C,) highest first, ``scores`` (C,) per channel.

    Unsigned (``region=None``): mean |pooled(A) - pooled(B)|. Signed (region given): mean pooled(A) - pooled(B),
    i.e. positive for channels that fire more when the content is in ``region``.
    """

    layer: str
    transform: str
    region: Optional[str]
    scores: Tensor
    channels: Tensor
    num_images: int = 0

    def top(self, n: int) -> list[int]:
        """The ``n`` highest-ranked channel indices."""
        return self.channels[:n].tolist()

    def to_dict(self) -> dict:
        return dict(layer=self.layer, transform=self.transform, region=self.region, num_images=self.num_images,
                    channels=self.channels.tolist(), scores=self.scores.tolist())

    def plot(self, path: Optional[str] = None, *, top: int = 16):
        """Sorted channel scores with the top ``top`` highlighted, and their histogram. Returns the figure."""
        plt = _pyplot()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
        ordered = self.scores[self.channels].numpy()
        colors = ["tab:red" if i < top else "tab:gray" for i in range(len(ordered))]
        ax1.bar(range(len(ordered)), ordered, width=1.0, color=colors)
        ax1.set(xlabel="channel rank", ylabel="signed score" if self.region else "mean |A - B|",
                title=f"{self.layer}: {self.transform}{' / ' + self.region if self.region else ''} (top {top} red)")
        ax2.hist(ordered, bins=40, color="tab:gray")
        ax2.axvline(ordered[min(top, len(ordered)) - 1], color="tab:red", ls="--", label=f"top-{top} threshold")
        ax2.set(xlabel="score", ylabel="channels", title="score distribution")
        ax2.legend(fontsize=8)
        return _finish(fig, path)


def rank_position_channels(
    model: nn.Module, layer: str, images: Tensor, *, transform: str = "hflip", region: Optional[str] = None,
    amount: float = 0.25, batch_size: int = 64, device: Union[str, torch.device] = "cpu",
) -> ChannelRanking:
    """Rank the channels of module ``layer`` of ``model`` by how much position moves their pooled activation.

    ``images`` (N, C, H, W), normalised floats. See :func:`position_pairs` for ``transform``/``region``.
    """
    a, b = position_pairs(images, transform, region, amount=amount)
    diff = pooled_activations(model, layer, a, batch_size=batch_size, device=device) - pooled_activations(
        model, layer, b, batch_size=batch_size, device=device)
    scores = diff.mean(0) if region is not None else diff.abs().mean(0)
    return ChannelRanking(layer, transform, region, scores, torch.argsort(scores, descending=True, stable=True), len(images))


# ----------------------------------------------------------------------------------------------- attack

@contextmanager
def ablate_channels(model: nn.Module, layer: str, channels: Sequence[int]) -> Iterator[nn.Module]:
    """Zero ``channels`` of module ``layer``'s output (N, C, ...) inside the block (forward hook, removed on exit)."""
    module = get_module(model, layer)
    index = torch.as_tensor(list(channels), dtype=torch.long)

    def hook(mod: nn.Module, args: tuple, output: Tensor) -> Tensor:
        if not isinstance(output, Tensor) or output.dim() < 2:
            raise ValueError(f"cannot ablate channels of {layer!r}: its output is {type(output).__name__}, not (N, C, ...)")
        if len(index) and (index.min() < 0 or index.max() >= output.shape[1]):
            raise ValueError(f"channels must lie in [0, {output.shape[1]}) for {layer!r}, got {index.tolist()[:8]}...")
        return output.index_fill(1, index.to(output.device), 0) if len(index) else output

    handle = module.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


@dataclass
class AttackCurve:
    """Metrics with the top-N ranked channels ablated vs N random channels (``draws`` draws) for each N."""

    layer: str
    counts: list
    baseline: dict
    top: dict
    random: dict  # metric -> [[draw values] per N]
    draws: int
    ranking: dict = field(default_factory=dict)

    def random_mean(self, metric: str) -> list[float]:
        return [sum(v) / len(v) for v in self.random[metric]]

    def to_dict(self) -> dict:
        return dict(asdict(self), random_mean={m: self.random_mean(m) for m in self.random})

    def markdown(self, metrics: Optional[Sequence[str]] = None) -> str:
        """Table: N, then per metric the top-N value and the random-N mean (min..max)."""
        metrics = list(metrics or self.top)
        head = "| N | " + " | ".join(f"{m} top-N | {m} random-N mean (min..max)" for m in metrics) + " |"
        lines = [head, "|" + "---|" * (1 + 2 * len(metrics))]
        lines.append("| 0 | " + " | ".join(f"{self.baseline[m]:.4f} | {self.baseline[m]:.4f}" for m in metrics) + " |")
        for i, n in enumerate(self.counts):
            cells = []
            for m in metrics:
                draws = self.random[m][i]
                cells.append(f"{self.top[m][i]:.4f} | {sum(draws) / len(draws):.4f} ({min(draws):.4f}..{max(draws):.4f})")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def plot(self, path: Optional[str] = None, *, metrics: Optional[Sequence[str]] = None):
        """One panel per metric: top-N curve vs random-N mean and range. Returns the figure."""
        plt = _pyplot()
        metrics = list(metrics or self.top)
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.0), squeeze=False)
        xs = [0, *self.counts]
        for ax, m in zip(axes[0], metrics):
            rand = [self.baseline[m], *self.random_mean(m)]
            lo = [self.baseline[m], *(min(v) for v in self.random[m])]
            hi = [self.baseline[m], *(max(v) for v in self.random[m])]
            ax.plot(xs, [self.baseline[m], *self.top[m]], "o-", color="tab:red", label="top-N position channels")
            ax.plot(xs, rand, "s--", color="tab:blue", label=f"N random channels ({self.draws} draws)")
            ax.fill_between(xs, lo, hi, color="tab:blue", alpha=0.2)
            ax.set(xlabel=f"channels ablated at {self.layer}", ylabel=m, title=m)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        return _finish(fig, path)


def attack_curve(
    model: nn.Module, layer: str, ranking: Union[ChannelRanking, Sequence[int]],
    evaluate: Callable[[nn.Module], dict], *, counts: Sequence[int], num_channels: Optional[int] = None,
    draws: int = 3, generator: Optional[torch.Generator] = None, progress: bool = True,
) -> AttackCurve:
    """Ablate the top-N channels of ``ranking`` and, ``draws`` times, N random channels of ``layer``, for each N.

    ``evaluate(model) -> {metric: value}`` scores the model (e.g. :func:`augshift.segmentation.segmentation_scores`
    or a location accuracy). ``num_channels`` defaults to the ranking's length.
    """
    from tqdm.auto import tqdm

    order = ranking.channels.tolist() if isinstance(ranking, ChannelRanking) else list(ranking)
    num_channels = num_channels or len(order)
    if max(counts) > len(order) or max(counts) > num_channels:
        raise ValueError(f"counts go up to {max(counts)} but {layer!r} has {min(len(order), num_channels)} ranked channels")
    baseline = evaluate(model)
    top = {m: [] for m in baseline}
    rand = {m: [] for m in baseline}
    with tqdm(total=len(counts) * (1 + draws), desc="attack", disable=not progress, leave=False) as bar:
        for n in counts:
            with ablate_channels(model, layer, order[:n]):
                for m, v in evaluate(model).items():
                    top[m].append(v)
            bar.update(1)
            values = {m: [] for m in baseline}
            for _ in range(draws):
                with ablate_channels(model, layer, torch.randperm(num_channels, generator=generator)[:n].tolist()):
                    for m, v in evaluate(model).items():
                        values[m].append(v)
                bar.update(1)
            for m in baseline:
                rand[m].append(values[m])
    extra = ranking.to_dict() if isinstance(ranking, ChannelRanking) else {}
    extra.pop("scores", None)
    return AttackCurve(layer, list(counts), baseline, top, rand, draws, ranking=extra)
