"""Every plot of the project (PNG, written atomically): consistency curves, consistency-vs-accuracy trade-off,
training curves, and the matplotlib set-up (`pyplot`, `save_figure`) that the position plots and the benchmark
plots use."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import require
from .files import PathLike, save_figure_atomic


def pyplot() -> Any:
    """`matplotlib.pyplot` on the non-interactive Agg backend (no display needed)."""
    matplotlib = require("matplotlib", purpose="plotting")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: PathLike | None, *, dpi: int = 110) -> Any:
    """Save `figure` to `path` atomically (if given) and close it; returns the figure."""
    if path:
        save_figure_atomic(figure, path, dpi=dpi, bbox_inches="tight")
        pyplot().close(figure)
    return figure


def curve_by_distance(grid: Sequence[Sequence[float]], offsets: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Average an (S, S) per-shift grid over rings of equal Chebyshev distance max(|dx|, |dy|); `offsets`: the
    S shifts per axis (default: the dense grid `-c..c`, S = 2c+1)."""
    grid = np.asarray(grid, dtype=float)
    d = np.asarray(offsets if offsets is not None else np.arange(grid.shape[0]) - grid.shape[0] // 2)
    distance = np.maximum(np.abs(d)[:, None], np.abs(d)[None, :])
    radii = np.unique(np.abs(d))
    return radii, np.array([grid[distance == r].mean() for r in radii])


def plot_consistency_curves(results: Mapping[str, Mapping], path: PathLike, *, title: str = "") -> None:
    """PNG: consistency with the unshifted prediction and accuracy vs shift distance, plus per-shift heatmaps.

    Args:
        results: `{name: ConsistencyReport.to_dict()}`-like dicts; those with a curve (`curve_consistency` and
            `curve_accuracy`, (S, S) grids in %, and `curve_offsets`, the S shifts per axis) are plotted.
        path: the PNG file (written atomically).
        title: the figure's title.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> grid = [[90.0, 95.0, 90.0], [95.0, 100.0, 95.0], [90.0, 95.0, 90.0]]
        >>> results = {"resnet18": {"curve_offsets": [-1, 0, 1], "curve_consistency": grid, "curve_accuracy": grid}}
        >>> plot_consistency_curves(results, Path(tmp.name) / "curves.png", title="shift consistency")
        >>> (Path(tmp.name) / "curves.png").is_file()
        True
        >>> tmp.cleanup()
    """
    plt = pyplot()
    names = [n for n, r in results.items() if "curve_consistency" in r]
    fig, axes = plt.subplots(1, 2 + len(names), figsize=(4.2 * (2 + len(names)), 3.8))
    for name in names:
        offsets = results[name].get("curve_offsets")
        radii, cons = curve_by_distance(results[name]["curve_consistency"], offsets)
        _, acc = curve_by_distance(results[name]["curve_accuracy"], offsets)
        axes[0].plot(radii, cons, marker="o", label=name)
        axes[1].plot(radii, acc, marker="o", label=name)
    axes[0].set(xlabel="shift distance max(|dx|, |dy|) [px]", ylabel="% same class as unshifted", title="consistency vs shift")
    axes[1].set(xlabel="shift distance max(|dx|, |dy|) [px]", ylabel="accuracy %", title="accuracy vs shift")
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
        ax.legend()
    for ax, name in zip(axes[2:], names):
        grid = np.asarray(results[name]["curve_consistency"])
        offsets = results[name].get("curve_offsets") or list(np.arange(grid.shape[0]) - grid.shape[0] // 2)
        image = ax.imshow(grid, vmin=min(80, grid.min()), vmax=100, cmap="viridis")  # one cell per offset
        ticks = range(0, len(offsets), max(1, len(offsets) // 8))
        ax.set_xticks(list(ticks), [str(offsets[i]) for i in ticks])
        ax.set_yticks(list(ticks), [str(offsets[i]) for i in ticks])
        ax.set(xlabel="dx [px]", ylabel="dy [px]", title=f"{name}: consistency per shift")
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_tradeoff(rows: Mapping[str, Mapping], path: PathLike, *, title: str = "") -> None:
    """PNG: consistency under each protocol against top-1 accuracy, one point per row with its 95% intervals.

    Args:
        rows: `{name: {"accuracy": %, "consistency_<protocol>": %, "<key>_ci95": (lo, hi)}}`
            (`ConsistencyReport.to_dict()` or a benchmark summary); one panel per protocol some row has (none is
            a `ValueError`).
        path: the PNG file (written atomically).
        title: the figure's title.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> rows = {"baseline": {"accuracy": 90.0, "consistency_random": 85.0, "consistency_random_ci95": (83.0, 87.0)},
        ...         "augshift": {"accuracy": 89.5, "consistency_random": 95.0}}
        >>> plot_tradeoff(rows, Path(tmp.name) / "tradeoff.png")
        >>> (Path(tmp.name) / "tradeoff.png").is_file()
        True
        >>> tmp.cleanup()
    """
    plt = pyplot()
    protocols = list(dict.fromkeys(  # every protocol some row has, in the rows' order
        key[len("consistency_"):] for r in rows.values() for key in r
        if key.startswith("consistency_") and not key.endswith(("_ci95", "_std", "_per_seed", "_counts"))))
    if not protocols:
        raise ValueError("rows have no consistency_<protocol> values (e.g. consistency_random) to plot")
    colors = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20").colors
    fig, axes = plt.subplots(1, len(protocols), figsize=(6.0 * len(protocols), 4.6), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        key = f"consistency_{protocol}"
        for i, (name, row) in enumerate(rows.items()):
            if key not in row:
                continue
            x, y = row["accuracy"], row[key]
            xerr = _ci_error(x, row.get("accuracy_ci95"))
            yerr = _ci_error(y, row.get(f"{key}_ci95"))
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3, color=colors[i % len(colors)], label=name)
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set(xlabel="top-1 accuracy %", ylabel=f"consistency ({protocol}) %", title=f"{protocol} protocol, 95% intervals")
        ax.grid(alpha=0.3)
    _finish_panels(fig, axes, path, title)


def plot_consistency_at_accuracy(traces: Mapping[str, Mapping[str, Sequence]], path: PathLike, *,
                                 title: str = "") -> None:
    """PNG: consistency against top-1 accuracy along training, one line per row (each seed's epochs, joined in
    order), one panel per protocol: rows are compared where their lines overlap in accuracy, not where each
    stopped.

    Args:
        traces: `{protocol: {row: [seed trace, ...]}}`, each seed trace a sequence of `(top-1 %, consistency %)`
            per epoch (e.g. `sweep.matched.Trace.rates`).
        path: the PNG file (written atomically).
        title: the figure's title.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> tmp = tempfile.TemporaryDirectory()
        >>> traces = {"random": {"plain": [[(40.0, 70.0), (55.0, 74.0), (60.0, 76.0)]],
        ...                      "augshift": [[(42.0, 75.0), (56.0, 80.0)], [(45.0, 76.0), (58.0, 81.0)]]}}
        >>> plot_consistency_at_accuracy(traces, Path(tmp.name) / "matched.png")
        >>> (Path(tmp.name) / "matched.png").is_file()
        True
        >>> tmp.cleanup()
    """
    if not traces:
        raise ValueError("no traces to plot: give {protocol: {row: [seed traces]}}")
    plt = pyplot()
    rows = list(dict.fromkeys(row for by_row in traces.values() for row in by_row))
    colors = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20").colors
    fig, axes = plt.subplots(1, len(traces), figsize=(6.0 * len(traces), 4.6), squeeze=False)
    for ax, (protocol, by_row) in zip(axes[0], traces.items()):
        for row, seeds in by_row.items():
            color = colors[rows.index(row) % len(colors)]
            for i, seed in enumerate(seeds):
                points = np.asarray(seed, dtype=float)
                ax.plot(points[:, 0], points[:, 1], "-o", ms=3, lw=1.2, alpha=0.85, color=color,
                        label=row if i == 0 else None)
        ax.set(xlabel="top-1 accuracy % (test)", ylabel=f"consistency ({protocol}) %",
               title=f"{protocol} protocol: one point per epoch, one line per seed")
        ax.grid(alpha=0.3)
    _finish_panels(fig, axes, path, title)


def _finish_panels(fig: Any, axes: Any, path: PathLike, title: str) -> None:
    """The legend in the last of a row of panels, the title, and the figure saved."""
    axes[0][-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _ci_error(value: float, ci: Sequence[float] | None) -> list[list[float]] | None:
    """matplotlib's asymmetric error bar `[[below], [above]]` of `value` for the interval `ci`."""
    return None if ci is None else [[value - ci[0]], [ci[1] - value]]


def plot_training_curve(history: Sequence[Mapping], path: PathLike, *, score: str = "test_accuracy",
                        title: str = "") -> None:
    """PNG: the training loss and (when the rows have it) `score` per epoch, from a training history (the
    engine's per-epoch rows)."""
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(epochs, [row["loss"] for row in history], marker="o", color="tab:blue", label="training loss")
    ax.set(xlabel="epoch", ylabel="training loss")
    ax.grid(alpha=0.3)
    if all(score in row for row in history):
        twin = ax.twinx()
        twin.plot(epochs, [row[score] for row in history], marker="s", color="tab:orange", label=score)
        twin.set_ylabel(f"{score} (%)")
        fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
