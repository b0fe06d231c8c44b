"""Put the runs of several invariance results into one table: rows from different invocations (e.g. new models
measured later with the same preset) side by side, with pooled intervals and the differences between rows.

    python benchmarks/combine.py benchmarks/results/invariance/quick-cosine-w1 benchmarks/results/invariance/quick-aps --seeds 0

Each folder holds a `results.json` of `benchmarks/invariance.py`; runs are taken per dataset, optionally only
those of `--seeds`; a row (model) found in two folders is refused. Writes `results.md`, `results.json` and
`tradeoff_<dataset>.png` to `--out` (default: the last folder's `combined/`).
"""
from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

from presets import PAIRS

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift.reporting.plots import plot_tradeoff
from augshift.reporting.provenance import command_line
from augshift.reporting.results import write_results
from sweep import comparison_table, summarize, summary_table


def combined_runs(folders: list[Path], seeds: set[int] | None) -> dict[str, list[dict]]:
    """Runs per dataset from every folder's `results.json`."""
    datasets: dict[str, list[dict]] = {}
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        for dataset, block in results["datasets"].items():
            runs = [r for r in block["runs"] if seeds is None or r["config"]["seed"] in seeds]
            known = {r["label"] for r in datasets.get(dataset, [])}
            clash = known & {r["label"] for r in runs}
            if clash:
                raise ValueError(f"{folder} has rows already taken from an earlier folder: {sorted(clash)}")
            datasets.setdefault(dataset, []).extend(runs)
    return datasets


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders with an invariance results.json")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds to keep (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    seeds = {int(s) for s in args.seeds.split(",")} if args.seeds else None
    out = args.out or args.folders[-1] / "combined"
    lines = ["# Invariance runs combined", "", f"Command: `{command_line()}`", "",
             "Runs of " + ", ".join(f"`{f}`" for f in args.folders) + (f", seeds {sorted(seeds)}" if seeds else "")
             + ". Cells: mean ± std over seeds [95% Wilson interval pooled over the seeds' test predictions].", ""]
    summaries, figures = {}, {}
    for dataset, runs in combined_runs(args.folders, seeds).items():
        summary = summaries[dataset] = summarize(runs)
        lines += [f"## {dataset}", "", summary_table(summary), "Differences (points) with 95% intervals:", "",
                  comparison_table(summary, PAIRS), f"![consistency vs accuracy](tradeoff_{dataset}.png)", ""]
        figures[f"tradeoff_{dataset}.png"] = partial(plot_tradeoff, summary, title=f"{dataset}: combined runs")
    write_results(out, "results", {"command": command_line(), "folders": [str(f) for f in args.folders],
                                   "seeds": sorted(seeds) if seeds else None, "summaries": summaries},
                  "\n".join(lines), figures=figures)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
