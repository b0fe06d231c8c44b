"""The location task (Islam et al. 2021, Sec. 3): an image pasted into one cell of a `grid x grid` zero canvas.

The target is the cell index `row * grid + col` (the class label is kept for the image-classification column).
`evaluate_canvas` scores GAPNet / PermuteNet (`augshift.models`) overall and per cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..choices import CANVAS_TASKS as TASKS
from ..outputs import evaluating
from ..reporting.plots import pyplot, save_figure
from ..progress import progress_bar
from ..shifts import check_images


def tile(tiles: Tensor, grid: int) -> Tensor:
    """Lay out `tiles` (N, grid*grid, C, h, w) row-major on canvases (N, C, grid*h, grid*w).

    Args:
        tiles: (N, grid*grid, C, h, w) tiles per canvas, tile `row * grid + col` at row `row`, column `col`.
        grid: the canvas has `grid x grid` cells.

    Returns:
        (N, C, grid*h, grid*w) canvases.

    Raises:
        ValueError: when `tiles` has not `grid * grid` tiles per canvas.

    Examples:
        >>> tile(torch.zeros(2, 9, 3, 4, 4), grid=3).shape
        torch.Size([2, 3, 12, 12])
        >>> tile(torch.arange(4.0).view(1, 4, 1, 1, 1), grid=2)[0, 0]
        tensor([[0., 1.],
                [2., 3.]])
    """
    n, cells, c, h, w = tiles.shape
    if cells != grid * grid:
        raise ValueError(f"expected grid*grid = {grid * grid} tiles per canvas, got {cells}")
    return tiles.reshape(n, grid, grid, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, grid * h, grid * w)


def paste_in_cells(images: Tensor, cells: Tensor, grid: int) -> Tensor:
    """Paste each image (N, C, h, w) into cell `cells[i]` (row-major) of a zero canvas (N, C, grid*h, grid*w).

    Args:
        images: (N, C, h, w) images.
        cells: (N,) cell indices `row * grid + col` in [0, grid*grid), one per image (else ValueError).
        grid: the canvas has `grid x grid` cells.

    Returns:
        (N, C, grid*h, grid*w) canvases, zero outside each image's cell.

    Examples:
        >>> canvases = paste_in_cells(torch.ones(2, 1, 2, 2), torch.tensor([0, 3]), grid=2)
        >>> canvases.shape
        torch.Size([2, 1, 4, 4])
        >>> canvases[1, 0]  # cell 3: bottom right
        tensor([[0., 0., 0., 0.],
                [0., 0., 0., 0.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.]])
    """
    check_images(images)
    cells = torch.as_tensor(cells, dtype=torch.long)
    if cells.shape != (len(images),) or cells.min() < 0 or cells.max() >= grid * grid:
        raise ValueError(f"cells must be (N,) = ({len(images)},) indices in [0, {grid * grid}), got {cells.tolist()[:8]}")
    return _paste(images, cells, grid)


def _paste(images: Tensor, cells: Tensor, grid: int) -> Tensor:
    """`paste_in_cells` of cells known to be valid, without its range check (which reads the cells back to the
    host: on CUDA a wait at every training batch)."""
    tiles = images.new_zeros((len(images), grid * grid, *images.shape[1:]))
    tiles[torch.arange(len(images), device=images.device), cells.to(images.device)] = images
    return tile(tiles, grid)


class LocationCanvas(Dataset):
    """The location task: image `i` pasted into cell `cells[i]` of a `grid x grid` zero canvas.

    Item `i` is `(canvas (C, grid*h, grid*w), cell, label)`; the `cells` (N,) are drawn from `generator`
    and redrawn by `resample`; `batch` gives many items at once.

    Args:
        images: float (N, C, h, w) images (normalised: the empty cells are zeros).
        labels: (N,) the classes (kept for the image-classification column); None: all -1.
        grid: the canvas has `grid x grid` cells (>= 1).
        generator: draws the cells (reproducible); a CUDA generator draws them on the GPU.

    Examples:
        >>> canvas = LocationCanvas(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), grid=3,
        ...                         generator=torch.Generator().manual_seed(0))
        >>> len(canvas), canvas.num_cells
        (4, 9)
        >>> image, cell, label = canvas[1]
        >>> image.shape, cell == int(canvas.cells[1]), label
        (torch.Size([3, 24, 24]), True, 1)
        >>> x, cells, labels = canvas.batch(torch.arange(4), flip=torch.tensor([True, False, False, True]))
        >>> x.shape, bool(canvas.targets(cells, labels, "location").equal(cells))
        (torch.Size([4, 3, 24, 24]), True)
    """

    def __init__(
        self, images: Tensor, labels: Optional[Tensor] = None, *, grid: int = 3,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        check_images(images, "images", floating=True)
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.images, self.grid, self.generator = images, grid, generator
        self.labels = (torch.full((len(images),), -1, dtype=torch.long) if labels is None
                       else torch.as_tensor(labels)).to(images.device)
        if self.labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {tuple(self.labels.shape)}")
        self.cells = self.resample()

    @property
    def num_cells(self) -> int:
        """`grid * grid`: the number of cells, and of location classes.

        Examples:
            >>> LocationCanvas(torch.randn(2, 3, 4, 4), grid=7).num_cells
            49
        """
        return self.grid * self.grid

    def resample(self) -> Tensor:
        """Draw a new cell for every image from `generator` (e.g. once per epoch); returns the cells.

        Examples:
            >>> canvas = LocationCanvas(torch.randn(50, 3, 4, 4), grid=3, generator=torch.Generator().manual_seed(0))
            >>> first = canvas.cells.clone()
            >>> cells = canvas.resample()
            >>> torch.equal(cells, canvas.cells), torch.equal(cells, first), int(cells.max()) < 9
            (True, False, True)
        """
        device = self.generator.device if self.generator is not None else None  # drawn where the generator lives
        self.cells = torch.randint(self.num_cells, (len(self.images),), generator=self.generator, device=device)
        return self.cells

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        canvas, cell, label = self.batch(torch.tensor([index]))
        return canvas[0], int(cell[0]), int(label[0])

    def batch(
        self, indices: Tensor, cells: Optional[Tensor] = None, *, flip: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Canvases (B, C, H, W), cells (B,), labels (B,) for `indices`; `flip` (B,) bool mirrors images first.

        Examples:
            >>> canvas = LocationCanvas(torch.ones(2, 1, 2, 2), torch.tensor([5, 6]), grid=2)
            >>> x, cells, labels = canvas.batch(torch.tensor([1]), cells=torch.tensor([3]))  # the bottom-right cell
            >>> x[0, 0].tolist(), labels.tolist()
            ([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], [6])
        """
        paste = paste_in_cells if cells is not None else _paste  # its own cells were drawn in range
        cells = self.cells[indices] if cells is None else cells
        images = self.images[indices]
        if flip is not None:
            images = torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
        return paste(images, cells, self.grid), cells, self.labels[indices]

    def targets(self, cells: Tensor, labels: Tensor, task: str) -> Tensor:
        """The training target of `task`: the cell index (location) or the class label (class).

        Examples:
            >>> canvas = LocationCanvas(torch.randn(2, 3, 4, 4), torch.tensor([5, 6]), grid=3)
            >>> cells, labels = torch.tensor([0, 8]), torch.tensor([5, 6])
            >>> canvas.targets(cells, labels, "location").tolist(), canvas.targets(cells, labels, "class").tolist()
            ([0, 8], [5, 6])
        """
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; supported: {', '.join(TASKS)}")
        return cells if task == "location" else labels


@dataclass
class LocationReport:
    """Accuracy of a canvas task overall and per cell; `correct`/`total` are (grid*grid,) counts.

    Made by `evaluate_canvas`; `plot` draws the per-cell accuracy map.

    Args:
        grid: the canvas has `grid x grid` cells.
        task: the scored task, `"location"` or `"class"`.
        correct: (grid*grid,) correct predictions per cell (row-major).
        total: (grid*grid,) predictions per cell.

    Examples:
        >>> report = LocationReport(grid=2, task="location", correct=[1, 2, 0, 3], total=[2, 2, 0, 4])
        >>> report.accuracy
        0.75
        >>> report.per_cell.tolist()  # a cell never scored reads 0
        [[0.5, 1.0], [0.0, 0.75]]
    """

    grid: int
    task: str
    correct: list
    total: list

    @property
    def accuracy(self) -> float:
        """The accuracy over all cells, a fraction in [0, 1]."""
        return sum(self.correct) / max(sum(self.total), 1)

    @property
    def per_cell(self) -> Tensor:
        """Accuracy per cell (grid, grid), row-major like the cell index."""
        correct, total = torch.tensor(self.correct, dtype=torch.float64), torch.tensor(self.total, dtype=torch.float64)
        return (correct / total.clamp(min=1)).view(self.grid, self.grid)

    def to_dict(self) -> dict:
        """JSON-ready: the fields plus `accuracy` and `per_cell`."""
        return dict(grid=self.grid, task=self.task, accuracy=self.accuracy, per_cell=self.per_cell.tolist(),
                    correct=self.correct, total=self.total)

    def plot(self, path: Optional[str] = None, *, title: Optional[str] = None):
        """Per-cell accuracy heatmap; saved to `path` if given. Returns the figure."""
        plt = pyplot()
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
        return save_figure(fig, path, dpi=120)


def evaluate_canvas(
    model: nn.Module, canvas: LocationCanvas, *, task: str = "location", exhaustive: bool = False,
    passes: Optional[int] = None, batch_size: int = 200, generator: Optional[torch.Generator] = None,
    device: Union[str, torch.device] = "cpu", progress: bool = False,
) -> LocationReport:
    """Score `model` with every image of `canvas` in `passes` random cells (default grid*grid passes),
    or in every cell once (`exhaustive`); per-cell counts give the location or class accuracy map.

    Args:
        model: a classifier of canvases (N, C, H, W) -> logits (N, K) (GAPNet / PermuteNet); run in eval mode.
        canvas: the `LocationCanvas` of test images (its own `cells` are not used).
        task: `"location"` (target: the cell) or `"class"` (target: the image's label).
        exhaustive: put every image in every cell once (`grid * grid` passes); overrides `passes`.
        passes: how many passes, each with every image in a random cell; default `grid * grid`.
        batch_size: canvases per forward.
        generator: draws the random cells (reproducible).
        device: where the model runs (it is moved there).
        progress: show a progress bar (`progress_bar`).

    Returns:
        A `LocationReport` with the per-cell counts.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
        >>> canvas = LocationCanvas(torch.randn(4, 3, 8, 8), grid=2)
        >>> report = evaluate_canvas(model, canvas, exhaustive=True, batch_size=2)
        >>> report.total, 0.0 <= report.accuracy <= 1.0
        ([4, 4, 4, 4], True)
    """
    g2 = canvas.num_cells
    passes = g2 if exhaustive or passes is None else passes
    correct, total = torch.zeros(g2, dtype=torch.long), torch.zeros(g2, dtype=torch.long)
    n = len(canvas)
    with evaluating(model.to(device)), progress_bar(total=passes * n, desc=f"eval {task}", enabled=progress) as bar:
        for p in range(passes):
            cells = torch.full((n,), p) if exhaustive else torch.randint(g2, (n,), generator=generator)
            for start in range(0, n, batch_size):
                indices = torch.arange(start, min(start + batch_size, n))
                x, cell, labels = canvas.batch(indices, cells[indices])
                pred = model(x.to(device)).argmax(1).cpu()
                hit = (pred == canvas.targets(cell, labels, task).cpu()).long()  # labels live with the images
                correct.index_add_(0, cell, hit)
                total.index_add_(0, cell, torch.ones_like(hit))
                bar.update(len(indices))
    return LocationReport(canvas.grid, task, correct.tolist(), total.tolist())
