"""Tables and plots of consistency results (markdown and PNG), shared by the CLI and the benchmarks."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .io import PathLike, save_figure_atomic


def _fmt(value: float, ci: Sequence[float] | None = None) -> str:
    return f"{value:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci is not None else f"{value:.2f}"


def markdown_table(rows: Mapping[str, Mapping], columns: Sequence[str] = ("accuracy", "consistency_random", "consistency_circular")) -> str:
    """One row per model from ``ConsistencyReport.to_dict()``-like dicts; values with their 95% CI."""
    header = "| model | " + " | ".join(columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [_fmt(row[c], row.get(f"{c}_ci95")) if c in row else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def curve_by_distance(grid: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Average a (2c+1, 2c+1) per-shift grid over rings of equal Chebyshev distance max(|dx|, |dy|)."""
    grid = np.asarray(grid, dtype=float)
    c = grid.shape[0] // 2
    d = np.arange(-c, c + 1)
    distance = np.maximum(np.abs(d)[:, None], np.abs(d)[None, :])
    radii = np.arange(c + 1)
    return radii, np.array([grid[distance == r].mean() for r in radii])


def plot_consistency_curves(results: Mapping[str, Mapping], path: PathLike, *, title: str = "") -> None:
    """PNG: consistency with the unshifted prediction and accuracy vs shift distance, plus per-shift heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, r in results.items() if "curve_consistency" in r]
    fig, axes = plt.subplots(1, 2 + len(names), figsize=(4.2 * (2 + len(names)), 3.8))
    for name in names:
        radii, cons = curve_by_distance(results[name]["curve_consistency"])
        _, acc = curve_by_distance(results[name]["curve_accuracy"])
        axes[0].plot(radii, cons, marker="o", label=name)
        axes[1].plot(radii, acc, marker="o", label=name)
    axes[0].set(xlabel="shift distance max(|dx|, |dy|) [px]", ylabel="% same class as unshifted", title="consistency vs shift")
    axes[1].set(xlabel="shift distance max(|dx|, |dy|) [px]", ylabel="accuracy %", title="accuracy vs shift")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
        ax.legend()
    for ax, name in zip(axes[2:], names):
        grid = np.asarray(results[name]["curve_consistency"])
        c = grid.shape[0] // 2
        image = ax.imshow(grid, extent=(-c - 0.5, c + 0.5, c + 0.5, -c - 0.5), vmin=min(80, grid.min()), vmax=100, cmap="viridis")
        ax.set(xlabel="dx", ylabel="dy", title=f"{name}: consistency per shift")
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
