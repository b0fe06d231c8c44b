"""AugShift ablation: consistency weight, distance, shift range and padding mode, one factor at a time.

    python benchmarks/ablation.py --preset quick       # resnet18 on a CIFAR-10 subset, 2 CPU cores
    torchrun --nproc_per_node 8 benchmarks/ablation.py --preset paper

Every variant changes one setting of the library's defaults (`augshift.config.DEFAULTS`); the plain
resnet18 (one shifted view, CE only) and AugShift with weight 0 (two views, no consistency term) are the
controls. The recommendation is the variant with the highest mean consistency (both protocols) whose
accuracy is within `--max-accuracy-drop` points of the plain model. Writes `results.json`,
`results.md` and `tradeoff.png` (consistency against accuracy) under `--out`; runs resume like the
invariance benchmark.
"""
from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

from paths import RESULTS, WORK, source_of

from augshift.arguments import Parser
from augshift.errors import UsageError, run_command
from augshift.config import DEFAULTS, AugShiftConfig
from augshift.distributed import init_distributed
from augshift.reporting.plots import plot_tradeoff
from augshift.reporting.provenance import command_line
from augshift.reporting.results import Figure, write_results
from sweep import (
    RunSpec, add_common_args, check_common_args, comparison_table, load_data, overrides, recipe, run_inputs,
    run_or_collect, summarize, summary_table,
)

PRESETS = {
    "quick": dict(seeds=[0], train_size=10_000, test_size=None, epochs=6, batch_size=128, lr=0.1, stem="standard",
                  curve_size=0),
    "paper": dict(seeds=[0, 1], train_size=None, test_size=None, epochs=200, batch_size=128, lr=0.1, stem="cifar",
                  curve_size=0),
}
DEFAULT = DEFAULTS.to_dict()
# AugShift settings, each a change of the library defaults (augshift.config.DEFAULTS); the plain model
# (one shifted view, CE only) and weight 0 (two views, no consistency term) are the controls
CHANGES = [
    dict(weight=0.0),
    {},
    dict(distance="mse", weight=1.0), dict(distance="mse", weight=0.3), dict(distance="mse", weight=3.0),
    dict(distance="cosine", weight=1.0), dict(distance="cosine", weight=0.3), dict(distance="cosine", weight=3.0),
    dict(distance="mse", normalize=True, weight=10.0), dict(distance="l1", weight=1.0),
    dict(max_shift=2), dict(max_shift=8), dict(mode="reflect"), dict(mode="circular"),
]
PLAIN = "plain resnet18"


def label(settings: dict) -> str:
    """`"mse w1 s4 zeros"` (+ `norm`), `" (defaults)"` appended for the library defaults."""
    name = (f"{settings['distance']}{' norm' if settings['normalize'] else ''} w{settings['weight']:g} "
            f"s{settings['max_shift']} {settings['mode']}")
    return name + (" (defaults)" if settings == DEFAULT else "")


def variants() -> dict:
    """label -> full AugShift settings (None: the plain model), duplicates removed, in CHANGES order."""
    out: dict = {PLAIN: None}
    for changes in CHANGES:
        settings = {**DEFAULT, **changes}
        out.setdefault(label(settings), settings)
    return out


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c == "." else "_" for c in text.replace(" (defaults)", "")).strip("_")


def specs_for(preset: dict, labels: list[str]) -> list[RunSpec]:
    table, specs = variants(), []
    for seed in preset["seeds"]:
        for name in labels:
            settings = table[name]
            config = recipe(preset, seed=seed, augshift=AugShiftConfig(**settings) if settings else None)
            specs.append(RunSpec(f"{slug(name)}_seed{seed}", "resnet18", config, stem=preset["stem"], label=name))
    return specs


def recommend(summary: dict, max_drop: float) -> tuple[str, dict]:
    """The AugShift variant with the best mean consistency whose accuracy is within `max_drop` of plain."""
    plain = summary[PLAIN]["accuracy"]
    ok = {name: row for name, row in summary.items() if name != PLAIN and row["accuracy"] >= plain - max_drop}
    if not ok:
        return "none", {}
    best = max(ok, key=lambda name: ok[name]["consistency_random"] + ok[name]["consistency_circular"])
    return best, variants()[best]


def plot_figures(summary: dict, preset_name: str) -> dict[str, Figure]:
    """`tradeoff.png`: consistency against accuracy of every variant, as the writer's figures."""
    return {"tradeoff.png": partial(plot_tradeoff, summary, title=f"AugShift ablation, preset {preset_name}")}


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick")
    parser.add_argument("--data", default=None, help="CIFAR-10 source (default: the shared local copy, else the hub)")
    parser.add_argument("--variants", default=None, help="comma-separated variant numbers (default: all)")
    parser.add_argument("--max-accuracy-drop", type=float, default=1.5)
    add_common_args(parser)
    args = parser.parse_args(argv)
    command, start = command_line(), time.time()
    labels = list(variants())
    if args.variants is not None:
        numbers = args.variants.split(",")
        if not all(n.isdigit() and int(n) < len(labels) for n in numbers) or len(set(numbers)) != len(numbers):
            raise UsageError(f"--variants {args.variants!r}: expected distinct numbers from 0 to {len(labels) - 1}, "
                             "comma-separated")
        labels = [labels[int(n)] for n in numbers]
    place = init_distributed(args.device)
    devices = [d for d in args.devices.split(",") if d]
    preset = overrides(args, PRESETS[args.preset], device=devices[0] if devices else place.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else RESULTS / "ablation" / args.preset
    work = Path(args.workdir) if args.workdir else WORK / "ablation" / args.preset
    check_common_args(args, out, preset)
    source = args.data or source_of("cifar10")
    results = run_or_collect(specs_for(preset, labels), args, work / "cifar10", place, devices=devices,
                             load=lambda: load_data(source, preset, cache=work / "cache", protocols=args.protocols),
                             inputs=run_inputs(source, preset, args))
    if results is None or not place.main:
        return 0
    summary = summarize(results)
    default = label(DEFAULT)
    pairs = [(name, default) for name in summary if name not in (default, PLAIN)] + [(default, PLAIN)]
    text = (f"# AugShift ablation — preset `{args.preset}`\n\nCommand: `{command}`\n\n"
            f"Data: {results[0]['data']}. resnet18 ({preset['stem']} stem), {preset['epochs']} epochs, seeds "
            f"{preset['seeds']}; variants: consistency distance, weight w, training shift range s, padding mode. Cells: mean ± std over seeds [95% Wilson interval]. "
            f"Wall time {(time.time() - start) / 60:.1f} min.\n\n" + summary_table(summary)
            + "\nDifferences to the current defaults (points):\n\n" + comparison_table(summary, pairs))
    if PLAIN in summary:
        best, settings = recommend(summary, args.max_accuracy_drop)
        text += (f"\nBest mean consistency with accuracy within {args.max_accuracy_drop} points of plain resnet18: "
                 f"**{best}** -> {settings}\n")
    text += "\n![consistency vs accuracy](tradeoff.png)\n"
    write_results(out, "results", {"command": command, "preset": args.preset, "recipe": preset, "defaults": DEFAULT,
                                   "summary": summary, "runs": results}, text,
                  figures=plot_figures(summary, args.preset))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="runs resume from their last finished epoch when the same command runs again; result files already written are whole"))
