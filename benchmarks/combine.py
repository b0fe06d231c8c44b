"""Put the runs of several invariance results into one table: rows from different invocations (e.g. new models
measured later with the same preset) side by side, with pooled intervals and the differences between rows.

    python benchmarks/combine.py benchmarks/results/invariance/quick-cosine-w1 benchmarks/results/invariance/quick-aps --seeds 0

Each folder holds a `results.json` of `benchmarks/invariance.py`; runs are taken per dataset, optionally only
those of `--seeds`. A run (row and seed) found in two folders is taken once when both copies are the same run (two
invocations over one work folder) and refused when they differ. The differences are those `invariance.py` reports:
its pairs and, when every folder has one recipe, that recipe's equal-compute pairs; paired over the test images
where the runs kept per-image outcomes, and at matched accuracy where they kept per-epoch traces. Writes `results.md`,
`results.json` and `tradeoff_<dataset>.png` to `--out` (default: the last folder's `combined/`).
"""
from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

from invariance import equal_compute_pairs
from presets import PAIRS

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift.reporting.plots import plot_tradeoff
from augshift.reporting.provenance import command_line
from augshift.reporting.results import write_results
from sweep import comparison_table, paired_differences, summarize, summary_table
from sweep.matched import matched_comparisons, matched_table


def combined_runs(folders: list[Path], seeds: set[int] | None) -> dict[str, list[dict]]:
    """Runs per dataset from every folder's `results.json`, each (row, seed) once."""
    datasets: dict[str, dict[tuple[str, int], dict]] = {}
    for folder in folders:
        results = json.loads((folder / "results.json").read_text())
        for dataset, block in results["datasets"].items():
            taken = datasets.setdefault(dataset, {})
            for run in block["runs"]:
                key = (run["label"], run["config"]["seed"])
                if seeds is not None and key[1] not in seeds:
                    continue
                if key in taken and taken[key] != run:
                    raise ValueError(f"{folder} has a different run of a row and seed already taken from an earlier "
                                     f"folder: {key[0]} seed {key[1]}")
                taken[key] = run
    return {dataset: list(runs.values()) for dataset, runs in datasets.items()}


def common_recipe(folders: list[Path]) -> dict | None:
    """What the equal-compute rows of every folder's recipe depend on (`invariance.py`'s `recipe`: epochs, global
    batch, its own `equal_compute` models), or None when the folders differ in it."""
    keys = ("epochs", "batch_size", "equal_compute")
    recipes = [{key: recipe[key] for key in keys if key in recipe} if recipe else None
               for recipe in (json.loads((folder / "results.json").read_text()).get("recipe") for folder in folders)]
    return recipes[0] if recipes[0] and all(r == recipes[0] for r in recipes) else None


def traced(folders: list[Path], dataset: str) -> list[str]:
    """The protocols every folder traced per epoch for `dataset` (none when a folder kept no traces)."""
    lists = [json.loads((folder / "results.json").read_text())["datasets"].get(dataset, {}).get("compared", {})
             .get("trace_protocols", []) for folder in folders]
    return [p for p in lists[0] if all(p in other for other in lists[1:])]


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
    recipe = common_recipe(args.folders)
    pairs = [*PAIRS, *(equal_compute_pairs(recipe) if recipe else ())]
    summaries, compared, figures = {}, {}, {}
    for dataset, runs in combined_runs(args.folders, seeds).items():
        summary = summaries[dataset] = summarize(runs)
        protocols = traced(args.folders, dataset)
        paired = paired_differences(runs, pairs)
        matched = matched_comparisons(runs, pairs, protocols) if protocols else {}
        compared[dataset] = {"pairs": pairs, "paired": paired, "matched": matched, "trace_protocols": protocols}
        lines += [f"## {dataset}", "", summary_table(summary), "Differences (points, last epoch) with 95% intervals:",
                  "", comparison_table(summary, pairs, paired=paired)]
        if matched:
            lines += ["Consistency at matched accuracy (each run's per-epoch trace; bootstrap over the test images):",
                      "", matched_table(matched)]
        lines += [f"![consistency vs accuracy](tradeoff_{dataset}.png)", ""]
        figures[f"tradeoff_{dataset}.png"] = partial(plot_tradeoff, summary, title=f"{dataset}: combined runs")
    write_results(out, "results", {"command": command_line(), "folders": [str(f) for f in args.folders],
                                   "seeds": sorted(seeds) if seeds else None, "summaries": summaries,
                                   "compared": compared}, "\n".join(lines), figures=figures)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
