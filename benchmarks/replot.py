"""Redraw a benchmark's PNG plots from its saved `results.json`, without rerunning anything.

    python benchmarks/replot.py benchmarks/results/invariance/quick benchmarks/results/cost/cuda

Each folder is recognised by its `results.json`: invariance (`datasets`), ablation (`summary`) or cost
(`rows`). The plots are the ones the benchmark itself draws; a link to each is appended to `results.md`
where it is missing. The folder's result is rewritten as one unit (`results.json` then lists the new plots).
"""
from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import ablation
import cost
import invariance

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift.reporting.results import Figure, write_results


def figures_of(results: dict, path: Path) -> dict[str, Figure]:
    """The plots of a benchmark's saved `results.json` (read from `path`), as the writer's figures."""
    if "datasets" in results:
        return {name: draw for dataset, block in results["datasets"].items()
                for name, draw in invariance.plot_figures(block, dataset, results["preset"]).items()}
    if "summary" in results:
        return ablation.plot_figures(results["summary"], results["preset"])
    if "rows" in results:
        return {"cost.png": partial(cost.plot_ratios, results["rows"], device=results["device"],
                                    machine=results.get("machine", results["device"]))}
    raise ValueError(f"{path} is not from a benchmark with plots; supported: invariance, ablation, cost")


def replot(folder: Path) -> list[Path]:
    """Draw the plots of the benchmark results in `folder`; returns the PNG paths."""
    results = json.loads((folder / "results.json").read_text())
    figures = figures_of(results, folder / "results.json")
    text = (folder / "results.md").read_text().rstrip("\n")
    missing = [name for name in figures if f"({name})" not in text]
    if missing:
        text += "\n\n" + "".join(f"![{Path(name).stem}]({name})\n" for name in missing)
    results.pop("files", None)  # the manifest of the previous unit: the writer lists the new one's
    write_results(folder, "results", results, text, figures=figures)
    return [folder / name for name in figures]


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding a benchmark's results.json")
    for folder in parser.parse_args(argv).folders:
        replot(folder)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
