"""Summaries of finished runs: per row, mean and spread over seeds with pooled 95% intervals, and the
differences between rows with Newcombe intervals, as dicts and markdown."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..intervals import difference_ci, proportion_ci

METRICS = {"accuracy": "correct", "consistency_random": "agree_random", "consistency_circular": "agree_circular"}


def summarize(results: Sequence[dict]) -> dict:
    """Per row label: mean and std over seeds, the pooled 95% Wilson interval (all seeds' test images),
    each seed's value, and the mean curves."""
    rows: dict[str, list[dict]] = {}
    for result in results:
        rows.setdefault(result["label"], []).append(result)
    summary = {}
    for label, runs in rows.items():
        row: dict = {"seeds": [r["config"]["seed"] for r in runs]}
        for metric, count in METRICS.items():
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
        row["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
        summary[label] = row
    return summary


def summary_table(summary: dict) -> str:
    """Markdown: mean +- std over seeds [pooled 95% CI] for accuracy and both consistency protocols."""
    lines = ["| model | seeds | top-1 % | consistency random % | consistency circular % | train s/run |",
             "|---|---|---|---|---|---|"]
    for label, row in summary.items():
        cells = []
        for metric in METRICS:
            lo, hi = row[f"{metric}_ci95"]
            cells.append(f"{row[metric]:.2f} ± {row[f'{metric}_std']:.2f} [{lo:.1f}, {hi:.1f}]")
        lines.append(f"| {label} | {len(row['seeds'])} | " + " | ".join(cells) + f" | {row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def comparison_table(summary: dict, pairs: Sequence[tuple[str, str]]) -> str:
    """Markdown: differences ``a - b`` (points, pooled over seeds) with their 95% intervals."""
    lines = ["| comparison | Δ top-1 | Δ consistency random | Δ consistency circular |", "|---|---|---|---|"]
    for a, b in pairs:
        if a not in summary or b not in summary:
            continue
        cells = []
        for metric in METRICS:
            lo, hi = difference_ci(*summary[a][f"{metric}_counts"], *summary[b][f"{metric}_counts"])
            d = summary[a][metric] - summary[b][metric]
            mark = " *" if lo > 0 or hi < 0 else ""
            cells.append(f"{d:+.2f} [{lo:+.1f}, {hi:+.1f}]{mark}")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n* the 95% interval excludes 0 (pooled over seeds; seed-to-seed spread not included).\n"
