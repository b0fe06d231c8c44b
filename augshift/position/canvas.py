"""The location task (Islam et al. 2021, Sec. 3): an image pasted into one cell of a ``grid x grid`` zero canvas.

The target is the cell index ``row * grid + col`` (the class label is kept for the image-classification column).
:func:`evaluate_canvas` scores GAPNet / PermuteNet (:mod:`augshift.models`) overall and per cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..engine.evaluation import evaluating
from ..reporting.plots import pyplot, save_figure
from ..shift import check_images

TASKS = ("location", "class")


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
