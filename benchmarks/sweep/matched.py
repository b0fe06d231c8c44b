"""Consistency at matched accuracy: a more accurate classifier is more consistent for that reason alone (a model that
is always right is perfectly consistent), so two rows are compared at the same test top-1, not at wherever each
stopped. Each run's per-epoch trace (`sweep.runs.epoch_trace`: top-1 and consistency of every epoch, with
per-image outcomes) is read as consistency against accuracy; two rows are compared over the accuracies both reach,
and the interval comes from resampling the test images (the same images for every run: the comparison stays
paired)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from augshift.errors import UsageError
from .outcomes import unpack_outcomes


@dataclass
class Trace:
    """One run's per-epoch outcomes on the same N test images.

    Args:
        correct: (E, N) bool: image `i` classified correctly after epoch `e`.
        agree: (E, N) bool: image `i`'s two views agreed under the protocol after epoch `e`.

    Examples:
        >>> trace = Trace(np.array([[1, 0, 0, 0], [1, 1, 1, 0]], bool), np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool))
        >>> trace.rates().tolist()
        [[25.0, 50.0], [75.0, 100.0]]
    """

    correct: np.ndarray
    agree: np.ndarray

    @classmethod
    def of(cls, result: dict, protocol: str, *, start: Optional[dict] = None) -> "Trace":
        """The trace of a finished run (`run_one`'s result: each `history` row's `outcomes`) under
        `protocol`; `start`: the packed outcomes of the weights before training (fine-tuning), prepended."""
        rows = ([start] if start is not None else []) + [row.get("outcomes") for row in result["history"]]
        if any(row is None or f"agree_{protocol}" not in row for row in rows):
            raise UsageError(f"run {result.get('name')!r} has no per-epoch trace under the {protocol} protocol (written "
                             f"by an older version, or evaluated with other --protocols): rerun it")
        unpacked = [unpack_outcomes(row) for row in rows]
        return cls(np.stack([u["correct"] for u in unpacked]), np.stack([u[f"agree_{protocol}"] for u in unpacked]))

    def rates(self, weights: Optional[np.ndarray] = None) -> np.ndarray:
        """(E, 2): top-1 % and consistency % per epoch, over the images weighted by `weights` (N,) (a bootstrap
        resample's counts; default: each image once)."""
        w = np.ones(self.correct.shape[1]) if weights is None else weights
        return 100.0 * np.stack([self.correct @ w, self.agree @ w], axis=1) / w.sum()


def consistency_at(accuracies: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """A run's consistency at the given accuracies, interpolated along its trace.

    The trace is read as the path training took: the epochs that reach a top-1 above every earlier epoch's (the
    first time the run reaches each accuracy), joined by straight lines; accuracies outside the path are `nan`.

    Args:
        accuracies: (P,) top-1 % at which to read the consistency.
        trace: (E, 2) top-1 % and consistency % per epoch (`Trace.rates`).

    Returns:
        (P,) consistency %.

    Examples:
        >>> trace = np.array([[50.0, 60.0], [70.0, 80.0], [65.0, 90.0], [80.0, 85.0]])  # epoch 3 is left out
        >>> consistency_at(np.array([60.0, 75.0, 90.0]), trace).tolist()
        [70.0, 82.5, nan]
    """
    best = np.maximum.accumulate(trace[:, 0])
    keep = np.ones(len(trace), bool)
    keep[1:] = trace[1:, 0] > best[:-1]
    x, y = trace[keep, 0], trace[keep, 1]
    return np.where((accuracies >= x[0]) & (accuracies <= x[-1]), np.interp(accuracies, x, y), np.nan)


def _difference(a: Sequence[Trace], b: Sequence[Trace], points: int,
                weights: Optional[np.ndarray] = None) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(grid, a's mean consistency - b's) over the accuracies every run of both rows reaches; `None`: none."""
    rates = [trace.rates(weights) for trace in (*a, *b)]
    low = max(float(r[:, 0].min()) for r in rates)
    high = min(float(r[:, 0].max()) for r in rates)
    if not high > low:
        return None
    grid = np.linspace(low, high, points)
    curves = [consistency_at(grid, r) for r in rates]
    # the first reach of each accuracy starts at a run's first epoch, which may lie above another's low end
    curve_a, curve_b = np.mean(curves[:len(a)], axis=0), np.mean(curves[len(a):], axis=0)
    valid = ~np.isnan(curve_a) & ~np.isnan(curve_b)
    if not valid.any():
        return None
    return grid[valid], (curve_a - curve_b)[valid]


def matched_difference(a: Sequence[Trace], b: Sequence[Trace], *, points: int = 21, resamples: int = 1000,
                       seed: int = 0) -> Optional[dict]:
    """Consistency of row `a` minus row `b` at equal top-1, over the accuracies both reach, with bootstrap
    intervals over the test images.

    Each row's consistency at an accuracy is the mean over its runs (seeds) of `consistency_at`. The images are
    resampled with replacement (the same resample for every run, so the comparison stays paired) `resamples`
    times and everything is recomputed; the interval is the 2.5th-97.5th percentile. The spread from one training
    seed to another enters only through the mean over seeds.

    Args:
        a: the traces of row `a`'s runs (`Trace`), all on the same N images.
        b: row `b`'s.
        points: accuracies on the common range at which the two are compared.
        resamples: bootstrap resamples of the images.
        seed: the resampling's seed.

    Returns:
        `None` when the two rows reach no common accuracy; else `{"range": [low, high]` (top-1 % both
        reach), `"mean"` (the difference averaged over the range), `"top"` (at the highest accuracy both reach),
        each with `_ci95`, `"grid"` and `"difference"` (the curve)}.

    Examples:
        >>> correct = np.zeros((3, 100), bool)
        >>> for epoch, right in enumerate((50, 60, 70)):
        ...     correct[epoch, :right] = True
        >>> agree = correct.copy()
        >>> agree[:, 90:] = True  # 10 more images agree than are right, at every epoch
        >>> row = [Trace(correct, agree)]
        >>> same = matched_difference(row, row, resamples=50)
        >>> same["range"], same["mean"], same["mean_ci95"]
        ([50.0, 70.0], 0.0, [0.0, 0.0])
    """
    n = a[0].correct.shape[1]
    if any(trace.correct.shape[1] != n for trace in (*a, *b)):
        raise UsageError("the rows' traces hold different numbers of test images: compare runs evaluated on the same "
                         "images")
    point = _difference(a, b, points)
    if point is None:
        return None
    grid, difference = point
    rng = np.random.default_rng(seed)
    means, tops = [], []
    for _ in range(resamples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        again = _difference(a, b, points, weights)
        if again is not None:
            means.append(again[1].mean())
            tops.append(again[1][-1])
    ci = lambda values: [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else [
        float("nan")] * 2
    return {"range": [float(grid[0]), float(grid[-1])], "mean": float(difference.mean()), "mean_ci95": ci(means),
            "top": float(difference[-1]), "top_ci95": ci(tops), "grid": grid.tolist(),
            "difference": difference.tolist()}


def row_traces(results: Sequence[dict], protocol: str, *, starts: Optional[dict] = None) -> dict[str, list[Trace]]:
    """Each row's traces (one per seed) under `protocol`, by label, in the order the rows first appear.

    Args:
        results: finished runs' results (`run_one`), each with its per-epoch trace.
        protocol: the consistency protocol (one the runs' traces hold).
        starts: per seed, the packed outcomes of the weights before training (fine-tuning: every row starts
            there); `None`: traces start after the first epoch.
    """
    rows: dict[str, list[Trace]] = {}
    for result in results:
        start = (starts or {}).get(result["config"]["seed"])
        rows.setdefault(result["label"], []).append(Trace.of(result, protocol, start=start))
    return rows


def matched_comparisons(results: Sequence[dict], pairs: Sequence[tuple[str, str]], protocols: Sequence[str], *,
                        starts: Optional[dict] = None, resamples: int = 1000) -> dict:
    """`matched_difference` of every pair of rows under every protocol.

    Args:
        results: finished runs' results with per-epoch traces; runs of one `label` are the seeds of one row.
        pairs: `(a, b)` label pairs; a pair naming a missing row is left out.
        protocols: the pair protocols compared.
        starts: per seed, the packed outcomes before training (`row_traces`).
        resamples: bootstrap resamples of the test images.

    Returns:
        `{"a − b": {protocol: matched_difference(...) or None}}`.
    """
    out: dict = {}
    for protocol in protocols:
        rows = row_traces(results, protocol, starts=starts)
        for a, b in pairs:
            if a in rows and b in rows:
                out.setdefault(f"{a} − {b}", {})[protocol] = matched_difference(rows[a], rows[b], resamples=resamples)
    return out


def matched_table(comparisons: dict) -> str:
    """Markdown of `matched_comparisons`: per pair and protocol, the top-1 range both rows reach, the consistency
    difference averaged over it and at its top, with their 95% bootstrap intervals (`*`: excludes 0).

    Examples:
        >>> cell = {"range": [50.0, 70.0], "mean": 1.5, "mean_ci95": [0.5, 2.5], "top": 2.0, "top_ci95": [-0.5, 4.0]}
        >>> print(matched_table({"a − b": {"random": cell, "circular": None}}))
        | comparison | protocol | top-1 range both reach % | Δ consistency, mean over the range | Δ consistency at its top |
        |---|---|---|---|---|
        | a − b | random | 50.0 – 70.0 | +1.50 [+0.5, +2.5] * | +2.00 [-0.5, +4.0] |
        | a − b | circular | no common accuracy | | |
        * the 95% interval (bootstrap over the test images, paired) excludes 0.
    """
    def cell(value: float, ci: Sequence[float]) -> str:
        return f"{value:+.2f} [{ci[0]:+.1f}, {ci[1]:+.1f}]" + (" *" if ci[0] > 0 or ci[1] < 0 else "")

    lines = ["| comparison | protocol | top-1 range both reach % | Δ consistency, mean over the range | "
             "Δ consistency at its top |", "|---|---|---|---|---|"]
    for pair, by_protocol in comparisons.items():
        for protocol, m in by_protocol.items():
            lines.append(f"| {pair} | {protocol} | no common accuracy | | |" if m is None else
                         f"| {pair} | {protocol} | {m['range'][0]:.1f} – {m['range'][1]:.1f} | "
                         f"{cell(m['mean'], m['mean_ci95'])} | {cell(m['top'], m['top_ci95'])} |")
    return "\n".join(lines) + "\n* the 95% interval (bootstrap over the test images, paired) excludes 0.\n"
