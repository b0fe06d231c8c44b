"""Position benchmark (the paper's Table 1): GAPNet vs PermuteNet on 3x3 and 7x7 CIFAR-10 canvases.

    python benchmarks/position.py --preset quick
    python benchmarks/position.py --preset paper --device cuda

A thin loop over `augshift locate` (`augshift.cli.locate`, the position code of the library):
for each model (gapnet, permutenet), task (location, class) and grid (3, 7) it runs `augshift locate`
unless its JSON already exists under `--out` (so an interrupted sweep resumes), then collects the
results into `table1.md` / `table1.json` next to the paper's numbers: accuracy after the last epoch and
at the epoch of the best test score (chosen on the test canvases: optimistic), each with its 95% interval.
The `paper` preset is the official code's: ResNet-18 without max-pool (`resnet18_stride16`), Adam lr 1e-3
betas (0.5, 0.999), batch 48, 20 epochs, flips, the full 50k / 10k split.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from paths import RESULTS, source_of

from augshift.arguments import Parser
from augshift.errors import run_command
from augshift.cli import main as augshift_main
from augshift.cli.locate import PAPER_TABLE1
from augshift.intervals import proportion_ci
from augshift.position.recipes import PRESETS
from augshift.reporting.provenance import command_line
from augshift.reporting.results import write_results

MODELS, TASKS, GRIDS = ("gapnet", "permutenet"), ("location", "class"), (3, 7)


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick")
    parser.add_argument("--data", default=None, help="CIFAR-10 source (default: the shared local copy, else the hub)")
    parser.add_argument("--grids", default="3,7")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--trunk", default=None, help="GAPNet / PermuteNet trunk (default: the preset's)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None, help="default benchmarks/results/position/<preset>")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: the table of the results in --out (cells without one: 'not run')")
    parser.add_argument("locate_options", nargs="*", help="after --: more options for augshift locate (e.g. --epochs 1)")
    args = parser.parse_args(argv)
    command = command_line()
    out = Path(args.out) if args.out else RESULTS / "position" / args.preset
    trunk = args.trunk or PRESETS[args.preset].trunk
    rows = []
    for grid in (int(g) for g in args.grids.split(",")):
        for task in args.tasks.split(","):
            for model in MODELS:
                path = out / f"locate-{model}-{trunk}-{task}-g{grid}.json"
                if args.collect and not path.is_file():
                    rows.append(dict(model=model, trunk=trunk, task=task, grid=grid, last="not run", best="not run",
                                     best_epoch="-", epochs=0, train_images=0, paper=PAPER_TABLE1.get((model, task, grid)),
                                     command=None))
                    continue
                if not path.is_file():
                    options = ["locate", "--data", args.data or source_of("cifar10"), "--model", model, "--trunk", trunk,
                               "--grid", str(grid), "--task", task, "--preset", args.preset, "--out", str(out)]
                    options += ["--device", args.device] if args.device else []
                    augshift_main(options + args.locate_options)
                result = json.loads(path.read_text())
                rows.append(dict(model=model, trunk=trunk, task=task, grid=grid, last=cell(result["results"]),
                                 best=cell(result["best"]["results"]), best_epoch=result["best"]["epoch"],
                                 epochs=len(result["history"]), train_images=result["train_images"],
                                 paper=PAPER_TABLE1.get((model, task, grid)), command=result["command"]))
    lines = [f"# Position benchmark (Table 1) — preset `{args.preset}`\n", f"Command: `{command}`\n",
             "Accuracy % [95% Wilson interval over the test evaluations].\n",
             "| model | trunk | task | grid | last epoch | best epoch | train images x epochs | paper % |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['trunk']} | {r['task']} | {r['grid']}x{r['grid']} | {r['last']} | "
              f"{r['best']} (epoch {r['best_epoch']}) | {r['train_images']} x {r['epochs']} | "
              f"{r['paper'] if r['paper'] is not None else '-'} |" for r in rows]
    write_results(out, "table1", {"command": command, "preset": args.preset, "rows": rows}, "\n".join(lines))
    return 0


def cell(results: dict) -> str:
    """`accuracy [lo, hi]` of a location report (its per-cell counts)."""
    correct, total = sum(results["correct"]), sum(results["total"])
    lo, hi = proportion_ci(correct, total)
    return f"{100 * correct / total:.2f} [{lo:.1f}, {hi:.1f}]"


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="runs resume from their last finished epoch when the same command runs again; result files already written are whole"))
