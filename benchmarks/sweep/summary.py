"""Summaries of finished runs: per row, mean and spread over seeds with pooled 95% intervals, and the
differences between rows with paired intervals (the same test images and views for every row; Newcombe's
unpaired interval for results without per-image outcomes), as dicts and markdown."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from augshift.errors import UsageError
from augshift.intervals import difference_ci, paired_difference_ci, proportion_ci
from augshift.protocols import protocol_names, worst_protocols
from .outcomes import unpack_outcomes

# each reported metric and the count in a run's result it is the percentage of
def metrics() -> dict[str, str]:
    """Each metric of a summary row and the per-image outcome it counts, for every protocol registered now."""
    return {"accuracy": "correct", **{f"consistency_{p}": f"agree_{p}" for p in protocol_names()},
            **{f"accuracy_{p}": f"robust_{p}" for p in worst_protocols()}}
EPOCHS = ("last", "best")  # which weights of a run: after the last epoch, or of its best test top-1


def summarize(results: Sequence[dict], *, epoch: str = "last") -> dict:
    """Per row label: mean and std over seeds, the pooled 95% Wilson interval (all seeds' test images),
    each seed's value, and the mean curves; of the last epoch's weights or (`epoch="best"`) the best epoch's
    (each run's `best` entry; `best_epoch` lists them). Metrics missing from a run (results of an older
    version) are left out of its row.

    Args:
        results: finished runs' results (`run_one`, `collect`); runs
            of one `label` are the seeds of one row.
        epoch: `"last"` (the weights after the last epoch) or `"best"` (each run's best epoch; results without
            a `best` entry raise `UsageError`).

    Returns:
        `{label: row}`, each row with `seeds`, and per metric of `metrics` `<metric>` (mean),
        `<metric>_std`, `<metric>_ci95` (pooled Wilson interval), `<metric>_per_seed` and `<metric>_counts`
        (pooled `[k, n]`); the mean `curve_consistency` / `curve_accuracy` and `curve_offsets` when the runs
        have them; `train_seconds` and `image_passes` (means: the training cost); and `best_epoch` with
        `epoch="best"`.

    Examples:
        >>> def result(label, seed, correct):  # a finished run's result.json, reduced to what is summarised
        ...     metrics = {"accuracy": 2.0 * correct, "counts": {"samples": 50, "correct": correct}}
        ...     return {"label": label, "config": {"seed": seed}, "train_seconds": 10.0, **metrics,
        ...             "best": {"epoch": 3, **metrics}}
        >>> summary = summarize([result("a", 0, 40), result("a", 1, 42), result("b", 0, 30), result("b", 1, 34)])
        >>> summary["a"]["seeds"], summary["a"]["accuracy"], summary["a"]["accuracy_counts"]
        ([0, 1], 82.0, [82, 100])
        >>> summarize([result("a", 0, 40), result("a", 1, 42)], epoch="best")["a"]["best_epoch"]
        [3, 3]
    """
    if epoch not in EPOCHS:
        raise ValueError(f"epoch must be one of {EPOCHS}, got {epoch!r}")
    if epoch == "best" and not all("best" in r for r in results):
        raise UsageError("some results have no best epoch (written before best epochs were kept): summarize their "
                         "last epoch, or rerun them")
    rows: dict[str, list[dict]] = {}
    for result in results:
        rows.setdefault(result["label"], []).append(
            result if epoch == "last" else {**result, **result["best"], "best_epoch": result["best"]["epoch"]})
    summary = {}
    for label, runs in rows.items():
        row: dict = {"seeds": [r["config"]["seed"] for r in runs]}
        if epoch == "best":
            row["best_epoch"] = [r["best_epoch"] for r in runs]
        for metric, count in metrics().items():
            if not all(metric in r for r in runs):
                continue
            values = np.array([r[metric] for r in runs])
            k, n = sum(r["counts"][count] for r in runs), sum(r["counts"]["samples"] for r in runs)
            row[metric] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            row[f"{metric}_ci95"] = proportion_ci(k, n)
            row[f"{metric}_per_seed"] = values.tolist()
            row[f"{metric}_counts"] = [k, n]
        for curve in ("curve_consistency", "curve_accuracy"):
            if all(curve in r for r in runs):
                row[curve] = np.mean([r[curve] for r in runs], axis=0).tolist()
        if "curve_offsets" in runs[0]:
            row["curve_offsets"] = runs[0]["curve_offsets"]
        row["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
        if all("image_passes" in r for r in runs):
            row["image_passes"] = float(np.mean([r["image_passes"] for r in runs]))
        summary[label] = row
    return summary


def paired_differences(results: Sequence[dict], pairs: Sequence[tuple[str, str]], *, epoch: str = "last") -> dict:
    """For each pair of rows `(a, b)`, each metric's difference `a - b` with its paired 95% interval over the test
    images (`paired_difference_ci`: seed `s` of `a` against seed `s` of `b`, on the same images and
    views) and, for reference, Newcombe's unpaired interval of the pooled counts.

    Args:
        results: finished runs' results (`run_one`) with per-image `outcomes`; runs of one `label` are
            the seeds of one row. A pair without outcomes, without common seeds or naming a missing row is left out.
        pairs: `(a, b)` label pairs.
        epoch: `"last"` or `"best"` (each run's best epoch's outcomes).

    Returns:
        `{"a − b": {metric: {"difference", "paired_ci95", "unpaired_ci95", "seeds"}}}` (points).

    Examples:
        >>> import torch
        >>> from augshift.report import ConsistencyReport
        >>> from sweep.outcomes import pack_outcomes
        >>> def result(label, bits):  # a finished run's result.json, reduced to what is compared
        ...     report = ConsistencyReport(len(bits), sum(bits), {}, outcomes={
        ...         "index": torch.arange(len(bits)), "correct": torch.tensor(bits, dtype=torch.bool)})
        ...     return {"label": label, "config": {"seed": 0}, "outcomes": pack_outcomes(report),
        ...             "counts": {"samples": len(bits), "correct": sum(bits)}}
        >>> results = [result("a", [1, 1, 1, 0, 1, 0, 1, 1]), result("b", [1, 1, 0, 0, 1, 0, 1, 0])]
        >>> cell = paired_differences(results, [("a", "b")])["a − b"]["accuracy"]
        >>> round(cell["difference"], 1), [round(v, 1) for v in cell["paired_ci95"]], cell["seeds"]
        (25.0, [-7.1, 57.1], [0])
    """
    if epoch not in EPOCHS:
        raise ValueError(f"epoch must be one of {EPOCHS}, got {epoch!r}")
    rows: dict[str, dict[int, dict]] = {}
    for result in results:
        run = result if epoch == "last" else result.get("best", {})
        rows.setdefault(result["label"], {})[result["config"]["seed"]] = run
    out = {}
    for a, b in pairs:
        seeds = sorted(set(rows.get(a, {})) & set(rows.get(b, {})))
        runs_a, runs_b = [rows[a][s] for s in seeds], [rows[b][s] for s in seeds]
        if not seeds or not all("outcomes" in run for run in (*runs_a, *runs_b)):
            continue
        bits_a, bits_b = [unpack_outcomes(r["outcomes"]) for r in runs_a], [unpack_outcomes(r["outcomes"]) for r in runs_b]
        cells = {}
        for metric, count in metrics().items():
            if not all(count in bits for bits in (*bits_a, *bits_b)):
                continue
            difference, low, high = paired_difference_ci([x[count] for x in bits_a], [x[count] for x in bits_b])
            pooled = [sum(r["counts"][key] for r in runs) for runs in (runs_a, runs_b) for key in (count, "samples")]
            cells[metric] = {"difference": difference, "paired_ci95": [low, high],
                             "unpaired_ci95": list(difference_ci(*pooled)), "seeds": seeds}
        out[f"{a} − {b}"] = cells
    return out


def reported_metrics(summary: dict) -> list[str]:
    """The metrics every row of `summary` has, in `metrics` order.

    Args:
        summary: a `summarize` result, `{label: row}`.

    Returns:
        The names of `metrics` present in every row.

    Examples:
        >>> reported_metrics({"a": {"consistency_random": 90.0, "accuracy": 80.0}, "b": {"accuracy": 70.0}})
        ['accuracy']
    """
    return [m for m in metrics() if all(m in row for row in summary.values())]


def _header(metric: str) -> str:
    return "top-1" if metric == "accuracy" else metric.replace("consistency_", "cons. ").replace("accuracy_", "top-1 ")


def summary_table(summary: dict) -> str:
    """Markdown: mean +- std over seeds [pooled 95% CI] for accuracy and each consistency protocol (and the best
    epochs, for a summary of best epochs).

    Args:
        summary: a `summarize` result; the columns are its `reported_metrics`.

    Returns:
        The table, one row per label, with the number of seeds and the training cost: mean seconds per run and,
        when the runs record them, image-passes per run (millions; AugShift passes each image twice).

    Examples:
        >>> def result(label, seed, correct):  # a finished run's result.json, reduced to what is summarised
        ...     metrics = {"accuracy": 2.0 * correct, "counts": {"samples": 50, "correct": correct}}
        ...     return {"label": label, "config": {"seed": seed}, "train_seconds": 10.0, **metrics,
        ...             "best": {"epoch": 3, **metrics}}
        >>> summary = summarize([result("a", 0, 40), result("a", 1, 42), result("b", 0, 30), result("b", 1, 34)])
        >>> print(summary_table(summary))
        | model | seeds | top-1 % | train s/run |
        |---|---|---|---|
        | a | 2 | 82.00 ± 2.83 [73.3, 88.3] | 10 |
        | b | 2 | 64.00 ± 5.66 [54.2, 72.7] | 10 |
    """
    metrics = reported_metrics(summary)
    best = all("best_epoch" in row for row in summary.values())
    passes = all("image_passes" in row for row in summary.values())
    lines = ["| model | seeds | " + " | ".join(f"{_header(m)} %" for m in metrics)
             + (" | best epoch" if best else "") + (" | image-passes (M)" if passes else "") + " | train s/run |",
             "|---|---|" + "---|" * (len(metrics) + 1 + best + passes)]
    for label, row in summary.items():
        cells = []
        for metric in metrics:
            lo, hi = row[f"{metric}_ci95"]
            cells.append(f"{row[metric]:.2f} ± {row[f'{metric}_std']:.2f} [{lo:.1f}, {hi:.1f}]")
        cells += [",".join(map(str, row["best_epoch"]))] if best else []
        cells += [f"{row['image_passes'] / 1e6:.2f}"] if passes else []
        lines.append(f"| {label} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def comparison_table(summary: dict, pairs: Sequence[tuple[str, str]], *, paired: Optional[dict] = None) -> str:
    """Markdown: differences `a - b` (points, pooled over seeds) with their 95% intervals.

    Args:
        summary: a `summarize` result; the columns are its `reported_metrics`.
        pairs: `(a, b)` label pairs to compare; a pair naming a label the summary lacks is left out.
        paired: `paired_differences` of the same runs: the intervals are then the paired ones (the same test
            images and views for both rows), for the pairs and metrics it holds; the rest keep Newcombe's
            unpaired interval of the pooled counts, marked `(u)`.

    Returns:
        The table, one row per pair: the difference of the means and its 95% interval, marked `*` when the
        interval excludes 0.

    Examples:
        >>> def result(label, seed, correct):  # a finished run's result.json, reduced to what is summarised
        ...     metrics = {"accuracy": 2.0 * correct, "counts": {"samples": 50, "correct": correct}}
        ...     return {"label": label, "config": {"seed": seed}, "train_seconds": 10.0, **metrics,
        ...             "best": {"epoch": 3, **metrics}}
        >>> summary = summarize([result("a", 0, 40), result("a", 1, 42), result("b", 0, 30), result("b", 1, 34)])
        >>> print(comparison_table(summary, [("a", "b")]))
        | comparison | Δ top-1 |
        |---|---|
        | a − b | +18.00 [+5.7, +29.6] * |
        * the 95% interval excludes 0; intervals unpaired (Newcombe), pooled over seeds; seed-to-seed spread not included.
    """
    metrics = reported_metrics(summary)
    lines = ["| comparison | " + " | ".join(f"Δ {_header(m)}" for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for a, b in pairs:
        if a not in summary or b not in summary:
            continue
        cells = []
        for metric in metrics:
            cell = (paired or {}).get(f"{a} − {b}", {}).get(metric)
            if cell is not None:  # the difference and interval of the seeds both rows have
                d, (lo, hi) = cell["difference"], cell["paired_ci95"]
                both = set(summary[a]["seeds"]) | set(summary[b]["seeds"])
                kind = "" if set(cell["seeds"]) == both else f" (seeds {', '.join(map(str, cell['seeds']))})"
            else:
                (lo, hi) = difference_ci(*summary[a][f"{metric}_counts"], *summary[b][f"{metric}_counts"])
                d, kind = summary[a][metric] - summary[b][metric], " (u)" if paired else ""
            mark = " *" if lo > 0 or hi < 0 else ""
            cells.append(f"{d:+.2f} [{lo:+.1f}, {hi:+.1f}]{mark}{kind}")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    kinds = ("paired over the same test images and views (seed s against seed s; (seeds ...): only those seeds "
             "are in both rows); (u): unpaired (Newcombe), for results without per-image outcomes" if paired
             else "unpaired (Newcombe), pooled over seeds")
    return "\n".join(lines) + f"\n* the 95% interval excludes 0; intervals {kinds}; seed-to-seed spread not included.\n"
