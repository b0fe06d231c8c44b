"""Accuracy check of the engine's fast paths: the same runs trained in fp32, in the eager fast path (bf16 autocast +
channels-last) and with the captured step (the same, compiled: `TrainConfig.compile`), compared on top-1 and the
consistency protocols with 95% intervals of the differences (fast - fp32, compiled - fast).

    python benchmarks/fast_path.py --device cuda --devices cuda:0,cuda:0,cuda:0,cuda:0   # 15 epochs, CIFAR-10
    python benchmarks/fast_path.py --epochs 1 --train-limit 512 --eval-limit 256 --stem standard   # CPU smoke run

The recipe is the `paper` preset's (CIFAR stem, full CIFAR-10, SGD one-cycle, batch 128), shortened to
`--epochs`; models resnet18 and resnet18+augshift, one seed. Writes `results.json` and `results.md`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from paths import RESULTS, WORK, source_of

from augshift.errors import run_command
from augshift.arguments import Parser, add_limit_arguments
from augshift.distributed import init_distributed
from augshift.intervals import difference_ci
from augshift.reporting.provenance import command_line, machine
from augshift.reporting.results import write_results
from sweep import RunSpec, load_data, parse_model, recipe, reported_metrics, run_sweep, summarize, summary_table

PRESET = dict(train_size=None, test_size=None, epochs=15, batch_size=128, lr=0.1, stem="cifar", curve_size=0, seeds=[0])
PATHS = {"fp32": dict(precision="fp32", channels_last=False), "fast": dict(precision="bf16", channels_last=True),
         "compiled": dict(precision="bf16", channels_last=True, compile=True)}
COMPARISONS = (("fast", "fp32"), ("compiled", "fast"))


def specs(models: list[str], preset: dict) -> list[RunSpec]:
    out = []
    for model in models:
        arch, augshift = parse_model(model)
        for path, numerics in PATHS.items():
            config = recipe({**preset, **numerics}, seed=preset["seeds"][0], augshift=augshift)
            out.append(RunSpec(f"{model}_{path}", arch, config, stem=preset["stem"], label=f"{model} [{path}]"))
    return out


def differences(summary: dict, models: list[str]) -> tuple[str, dict]:
    """Markdown and dict: per model, fast - fp32 and compiled - fast per metric, with the 95% Newcombe interval."""
    metrics = reported_metrics(summary)
    lines = ["| model | comparison | " + " | ".join(f"Δ {metric}" for metric in metrics) + " | inside the intervals |",
             "|---|---|" + "---|" * (len(metrics) + 1)]
    out = {}
    for model in models:
        for new, base in COMPARISONS:
            a, b = summary[f"{model} [{new}]"], summary[f"{model} [{base}]"]
            cells, inside, key = [], True, f"{new} - {base}"
            for metric in metrics:
                lo, hi = difference_ci(*a[f"{metric}_counts"], *b[f"{metric}_counts"])
                delta = a[metric] - b[metric]
                inside &= lo <= 0 <= hi
                cells.append(f"{delta:+.2f} [{lo:+.2f}, {hi:+.2f}]")
                out.setdefault(model, {}).setdefault(key, {})[metric] = {"delta": delta, "ci95": [lo, hi]}
            out[model][key]["inside"] = inside
            lines.append(f"| {model} | {new} − {base} | " + " | ".join(cells) + f" | {'yes' if inside else 'NO'} |")
    return "\n".join(lines) + "\n", out


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet18+augshift")
    parser.add_argument("--data", default=None, help="CIFAR-10 source (default: the shared local copy, else the hub)")
    parser.add_argument("--epochs", type=int, default=PRESET["epochs"])
    add_limit_arguments(parser, train=("train_size", None), evaluate=("test_size", None))
    parser.add_argument("--stem", default=PRESET["stem"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--devices", default="", help="runs side by side, e.g. cuda:0,cuda:0,cuda:0,cuda:0")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=None, help="default benchmarks/results/fast_path/<cpu|cuda>")
    args = parser.parse_args(argv)
    place = init_distributed(args.device)
    devices = [d for d in args.devices.split(",") if d]
    device = devices[0] if devices else place.device
    preset = {**PRESET, "epochs": args.epochs, "train_size": args.train_size, "test_size": args.test_size,
              "stem": args.stem}
    kind = "cuda" if device.startswith("cuda") else "cpu"
    work = Path(args.workdir) if args.workdir else WORK / "fast_path" / kind
    out = Path(args.out) if args.out else RESULTS / "fast_path" / kind
    models = args.models.split(",")
    data = load_data(args.data or source_of("cifar10"), preset, cache=work / "cache")
    results = run_sweep(specs(models, preset), data, work / "cifar10", place, devices=devices, threads=args.threads)
    summary = summarize(results)
    table, deltas = differences(summary, models)
    seconds = {r["label"]: r["train_seconds"] for r in results}
    text = (f"# Fast path accuracy check ({device}: {machine(device)})\n\nCommand: `{command_line()}`\n\n"
            f"Data: {data.description}. {preset['stem']} stem, {preset['epochs']} epochs of the paper recipe (SGD, "
            f"one-cycle lr 0.1, batch 128, shifts up to 4 px), seed {preset['seeds'][0]}; `fp32` vs `fast` (bf16 "
            "autocast + channels-last; the fused optimizer on CUDA in both) vs `compiled` (fast + the captured step: "
            "torch.compile, CUDA graphs on CUDA, the last partial batch of an epoch dropped). Cells: value [95% Wilson "
            "interval].\n\n" + summary_table(summary) + "\nDifferences (points) with 95% Newcombe intervals:\n\n" + table
            + "\nTraining seconds per run (runs shared the device when --devices repeats it): "
            + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + "\n")
    write_results(out, "results", {"command": command_line(), "device": device, "machine": machine(device),
                                   "preset": preset, "differences": deltas, "summary": summary, "runs": results}, text)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="runs resume from their last finished epoch when the same command runs again; result files already written are whole"))
