"""Redraw a benchmark's PNG plots from its saved ``results.json``, without rerunning anything.

    python benchmarks/replot.py benchmarks/results/invariance/quick benchmarks/results/cost/cuda

Each folder is recognised by its ``results.json``: invariance (``datasets``), ablation (``summary``) or cost
(``rows``). The plots are the ones the benchmark itself draws; a link to each is appended to ``results.md``
where it is missing.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ablation
import cost
import invariance

from augshift.reporting.files import write_text_atomic


def replot(folder: Path) -> list[Path]:
    """Draw the plots of the benchmark results in ``folder``; returns the PNG paths."""
    results = json.loads((folder / "results.json").read_text())
    if "datasets" in results:
        for dataset, block in results["datasets"].items():
            invariance.plot_figures(block["summary"], folder, dataset, results["preset"])
        pngs = [folder / f"{kind}_{dataset}.png" for dataset in results["datasets"]
                for kind in ("consistency_vs_shift", "tradeoff")]
    elif "summary" in results:
        ablation.plot_figures(results["summary"], folder, results["preset"])
        pngs = [folder / "tradeoff.png"]
    elif "rows" in results:
        cost.plot_ratios(results["rows"], folder, device=results["device"],
                         machine=results.get("machine", results["device"]))
        pngs = [folder / "cost.png"]
    else:
        raise ValueError(f"{folder / 'results.json'} is not from a benchmark with plots; supported: invariance, "
                         "ablation, cost")
    markdown = folder / "results.md"
    text = markdown.read_text()
    missing = [png for png in pngs if f"({png.name})" not in text]
    if missing:
        write_text_atomic(markdown, text.rstrip("\n") + "\n\n" + "".join(f"![{p.stem}]({p.name})\n" for p in missing))
    return pngs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding a benchmark's results.json")
    for folder in parser.parse_args(argv).folders:
        for png in replot(folder):
            print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
