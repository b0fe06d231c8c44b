"""Invariance benchmark (the paper's Table 2): top-1 accuracy and shift consistency of plain, BlurPool and
AugShift timm ResNets, trained with the same recipe, data and seeds.

    python benchmarks/invariance.py --preset quick                       # CIFAR-10, 2 CPU cores, < 45 min
    torchrun --nproc_per_node 8 benchmarks/invariance.py --preset paper  # data-parallel (NCCL / gloo)
    accelerate launch --multi_gpu --num_processes 8 benchmarks/invariance.py --preset paper
    python benchmarks/invariance.py --preset paper --devices cuda:0,cuda:1,cuda:2,cuda:3  # runs spread over GPUs
    python benchmarks/invariance.py --preset paper --devices cuda:0,cuda:0,cuda:0,cuda:0  # 4 runs share one GPU
    python benchmarks/invariance.py --preset paper --workdir /shared/w --shard $SLURM_ARRAY_TASK_ID/24  # a job array
    python benchmarks/invariance.py --preset paper --workdir /shared/w --collect  # then the tables, from the runs

Models: resnet18, resnetblur18 (BlurPool, Zhang 2019), aps_resnet18 (adaptive polyphase sampling, Chaman &
Dokmanić 2021, circular padding: exactly invariant to circular shifts), each also +augshift: the library
default (cosine distance) or the paper's loss, `+augshift:mse@WEIGHT` (mean squared error of the pooled
features; raw MSE depends on the feature scale, hence the weight sweep of the presets). Every model trains
with horizontal flips and shifts, as standard CIFAR training does. Consistency is reported under the whole
protocol family (±4, ±8, ±16 px zero-padded, ±4 px and whole-image circular), for the last epoch and for the
epoch of the best test top-1. Writes `results.json`, `results.md`, `consistency_vs_shift_<dataset>.png`
and `tradeoff_<dataset>.png` (consistency against accuracy) under `--out`; runs resume from `--workdir`
(a finished run is skipped, an interrupted one continues from its last epoch).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from functools import cache, partial
from pathlib import Path

import time_budget
from paths import RESULTS, WORK, source_of
from presets import PAIRS, PAPER_TABLE2, PRESETS

from augshift.arguments import Parser, positive_float
from augshift.config import DISTANCES, AugShiftConfig
from augshift.distributed import init_distributed
from augshift.errors import UsageError, run_command
from augshift.protocols import PROTOCOL_FAMILY
from augshift.reporting.plots import plot_consistency_at_accuracy, plot_consistency_curves, plot_tradeoff
from augshift.reporting.provenance import command_line
from augshift.reporting.results import Figure, write_results
from sweep import (
    RunSpec, add_common_args, check_common_args, comparison_table, load_data, missing_runs, overrides,
    paired_differences, parse_model, parse_row, recipe, run_inputs, run_or_collect, split_rows, summarize,
    summary_table,
)
from sweep.matched import matched_comparisons, matched_table, row_traces
from sweep.projection import projected_gpu_hours
from sweep.runs import traced_protocols
from sweep.shards import identity_differences


def dataset_source(text: str) -> tuple[str, str]:
    """An `argparse` type: `DATASET=SOURCE` (`cifar10=path/to/parquet`) -> `(dataset, source)`.

    Examples:
        >>> dataset_source("cifar10=shapes")
        ('cifar10', 'shapes')
    """
    dataset, equals, source = text.partition("=")
    if not equals or not dataset or not source:
        raise argparse.ArgumentTypeError(f"expected DATASET=SOURCE (e.g. cifar10=path/to/cifar10), got {text!r}")
    return dataset, source


def equal_compute_rows(preset: dict) -> list[str]:
    """The rows that answer "better than the plain model on the same compute?": plain resnet18 and BlurPool at
    twice the epochs (the image-passes of an AugShift run), AugShift at half the epochs (the plain run's
    image-passes), also at half the batch (the plain run's steps, each the size of a plain step); a preset's own
    `equal_compute` models: each at twice the epochs only."""
    epochs, batch = preset["epochs"], preset["batch_size"]
    if "equal_compute" in preset:
        return [f"{model}[epochs={2 * epochs}]" for model in preset["equal_compute"]]
    half = max(1, epochs // 2)
    return [f"resnet18[epochs={2 * epochs}]", f"resnetblur18[epochs={2 * epochs}]", f"resnet18+augshift[epochs={half}]",
            f"resnet18+augshift[epochs={half},batch={batch // 2}]"]


def equal_compute_pairs(preset: dict) -> list[tuple[str, str]]:
    """AugShift against the plain model (and BlurPool) on the same image-passes: AugShift's preset epochs against
    theirs at twice the epochs, and AugShift at half the epochs (and half the batch) against their preset runs (a
    preset's own `equal_compute` models: AugShift against each at twice the epochs, and that against it)."""
    if "equal_compute" in preset:
        return [pair for model, doubled in zip(preset["equal_compute"], equal_compute_rows(preset))
                for pair in ((f"{model}+augshift", doubled), (doubled, model))]
    plain2, blur2, half, half_batch = equal_compute_rows(preset)
    return [("resnet18+augshift", plain2), ("resnet18+augshift:mse@3", plain2), ("resnet18+augshift", blur2),
            (half, "resnet18"), (half_batch, "resnet18"), (half_batch, "resnetblur18"), (plain2, "resnet18")]


def specs_for(rows: list[str], preset: dict, augshift_settings: dict | None = None) -> list[RunSpec]:
    """One run per (seed, row); `augshift_settings` (weight, distance, normalize) override the library
    defaults in the AugShift runs (a row's own `:distance@weight` overrides those), and a row's own
    `[epochs=N,batch=N]` the preset's recipe."""
    specs, defaults = [], AugShiftConfig(**(augshift_settings or {}))
    for seed in preset["seeds"]:
        for row in rows:
            model, changes = parse_row(row)
            arch, augshift = parse_model(model, defaults=defaults)
            config = recipe(preset, seed=seed, augshift=augshift, **changes)
            specs.append(RunSpec(f"{row}_seed{seed}", arch, config, stem=preset["stem"], label=row))
    return specs


def paper_table(dataset: str) -> str:
    rows = PAPER_TABLE2.get(dataset, {})
    lines = ["| model (paper, CIFAR stem, full training; AugShift with the MSE loss) | top-1 % | consistency % |",
             "|---|---|---|"]
    lines += [f"| {model} | {acc} | {cons} |" for model, (acc, cons) in rows.items()]
    return "\n".join(lines) + "\n"


def compare(runs: list[dict], preset: dict, pair_protocols: tuple[str, ...]) -> dict:
    """The comparisons of one dataset's runs: paired intervals of the last and best epochs and consistency at
    matched accuracy (per-epoch traces under `pair_protocols`), for `PAIRS` and the equal-compute pairs."""
    pairs = [*PAIRS, *preset.get("pairs", ()), *equal_compute_pairs(preset)]
    return {"paired": paired_differences(runs, pairs), "paired_best": paired_differences(runs, pairs, epoch="best"),
            "matched": matched_comparisons(runs, pairs, pair_protocols), "pairs": pairs,
            "trace_protocols": list(pair_protocols)}


def recipe_of(runs: list[dict]) -> dict:
    """The recipe the runs had, read from their results: the most common epochs, peak lr, global batch, stem and
    flips among them (rows with their own `[epochs=N,batch=N]` aside), and the seeds they ran.

    Examples:
        >>> runs = [{"stem": "standard", "config": {"epochs": e, "lr": 0.1, "batch_size": 128, "hflip": True, "seed": s}}
        ...         for e, s in ((6, 0), (6, 1), (12, 0))]
        >>> recipe_of(runs)
        {'epochs': 6, 'lr': 0.1, 'batch_size': 128, 'hflip': True, 'stem': 'standard', 'seeds': [0, 1]}
    """
    def common(value) -> object:
        return Counter(value(run) for run in runs).most_common(1)[0][0]

    recipe = {key: common(lambda run, key=key: run["config"][key]) for key in ("epochs", "lr", "batch_size", "hflip")}
    return {**recipe, "stem": common(lambda run: run["stem"]), "seeds": sorted({run["config"]["seed"] for run in runs})}


def report(out: Path, preset_name: str, preset: dict, datasets: dict, command: str, seconds: float) -> None:
    """results.json, results.md and two PNGs per dataset, as one unit; the recipe printed is the runs' own."""
    runs = [run for block in datasets.values() for run in block["runs"]]
    had = recipe_of(runs)
    augshift = {run["label"]: run["config"]["shift"] for run in runs if run["config"]["augshift"]}
    settings = ("AugShift rows: " + "; ".join(
        f"{label}: " + ", ".join(f"{k}={a[k]}" for k in ("distance", "normalize", "weight", "max_shift", "mode"))
        for label, a in augshift.items()) if augshift else "no AugShift run")
    compute = sum(run["train_seconds"] + run["eval_seconds"] for run in runs)
    md = [f"# Invariance benchmark — preset `{preset_name}`\n", f"Command: `{command}`\n",
          f"Recipe (of the runs): {had['epochs']} epochs, SGD (nesterov, momentum 0.9, wd 5e-4), one-cycle lr peak "
          f"{had['lr']}, global batch {had['batch_size']}, {had['stem']} stem, shifts up to 4 px (zeros)"
          f"{' and horizontal flips' if had['hflip'] else ''} for every model (rows with [epochs=N,batch=N] their "
          f"own); {settings}. Seeds {had['seeds']}. Training + evaluation time of the runs: {compute / 60:.1f} min "
          f"({runs[0]['world_size'] if runs else 1} process(es)); this invocation: {seconds / 60:.1f} min.\n",
          "Cells: mean ± std over seeds [95% Wilson interval pooled over the seeds' test predictions]. "
          "Consistency: same class for two shifts of each test image (protocols, `augshift.protocols`: random = "
          "zero-padded shifts in [-4, 4] px, Zhang 2019; random8 / random16: in [-8, 8] / [-16, 16] px; circular: "
          "torch.roll in [-4, 4] px; circular_full: torch.roll by any offset of the image; fractional: band-limited "
          "circular shifts by real offsets in [-4, 4] px; `<protocol>_worst`: the same class for every offset of the "
          "protocol's grid, and `top-1 <protocol>_worst`: correct for every offset). *Last epoch*: the weights after "
          "training; "
          "*best epoch*: those of the epoch with the highest test top-1 (chosen on the test set, as much CIFAR code "
          "does: optimistic).\n"]
    figures: dict[str, Figure] = {}
    for dataset, block in datasets.items():
        compared = block["compared"]
        budget = block.get("time_budget")
        md += [f"## {dataset} — {block['data']}\n",
               *([f"**Missing runs** (they failed; their logs and the commands that rerun them were printed): "
                  f"{', '.join(block['missing'])}. The tables below hold the other runs only.\n"]
                 if block.get("missing") else []),
               *([f"Length chosen for a time budget of {budget['minutes']:g} min on this machine: **{budget['epochs']}** "
                  f"epochs (at most the preset's {preset['epochs']}; estimated {budget['estimated_minutes']} min from "
                  f"the training steps and evaluations measured first, {budget['measured_seconds']} s).\n"]
                 if budget else []),
               "### Last epoch\n", summary_table(block["summary"]),
               "\n### Best epoch\n", summary_table(block["best"]),
               "\nDifferences (points, last epoch) with 95% intervals:\n",
               comparison_table(block["summary"], compared["pairs"], paired=compared["paired"]),
               "\nDifferences (points, best epochs):\n",
               comparison_table(block["best"], compared["pairs"], paired=compared["paired_best"]),
               "\n### Consistency at matched accuracy\n",
               "Each run's test top-1 and consistency after every epoch, compared where both rows reach the same "
               "top-1 (interpolated along each run's trace, mean over seeds); intervals: bootstrap over the test "
               "images.\n", matched_table(compared["matched"]),
               f"\n![consistency at matched accuracy](consistency_at_accuracy_{dataset}.png)\n",
               "\nPaper (Islam et al. 2021, Table 2; consistency protocol of Zhang 2019) — **not this run**:\n",
               paper_table(dataset), f"\n![consistency vs shift](consistency_vs_shift_{dataset}.png)\n",
               f"![consistency vs accuracy](tradeoff_{dataset}.png)\n"]
        figures.update(plot_figures(block, dataset, preset_name))
    write_results(out, "results", {"command": command, "preset": preset_name, "recipe": preset,
                                   "seconds": round(seconds, 1), "datasets": datasets}, "\n".join(md), figures=figures)


def plot_figures(block: dict, dataset: str, preset_name: str) -> dict[str, Figure]:
    """`consistency_vs_shift_<dataset>.png`, `tradeoff_<dataset>.png` and (runs with per-epoch traces)
    `consistency_at_accuracy_<dataset>.png` of one dataset's runs, as the writer's figures."""
    title = f"{dataset}, preset {preset_name} (mean over seeds)"
    figures = {f"consistency_vs_shift_{dataset}.png": partial(plot_consistency_curves, block["summary"], title=title),
               f"tradeoff_{dataset}.png": partial(plot_tradeoff, block["summary"], title=title)}
    if "compared" not in block:  # results written before runs kept their per-epoch traces
        return figures
    traces = {p: {row: [trace.rates().tolist() for trace in traces]
                  for row, traces in row_traces(block["runs"], p).items()} for p in block["compared"]["trace_protocols"]}
    figures[f"consistency_at_accuracy_{dataset}.png"] = partial(plot_consistency_at_accuracy, traces,
                                                                 title=f"{dataset}, preset {preset_name}")
    return figures


def fit_time_budget(args: argparse.Namespace, preset: dict, work: Path, load, rows, settings: dict, *, identity: dict,
                    device: str, workers: int) -> dict:
    """The preset at the most epochs that fit `--time-budget` (`time_budget.plan_preset`, its share for one
    dataset), planned once per work folder (`time_budget.json`: a resumed run, a shard and `--collect` reuse
    the plan) and reused only for the same budget, preset (its epochs the plan's cap), rows, settings and data
    (`identity`); the plan is recorded in the preset (`time_budget`)."""
    from augshift.reporting.files import write_json_atomic

    path, minutes = work / "time_budget.json", args.time_budget / len(preset["datasets"])
    asked = json.loads(json.dumps({"minutes": minutes, "preset": preset, "rows": rows(preset), "settings": settings,
                                   "inputs": identity}))
    plan = json.loads(path.read_text()) if path.is_file() else None
    if plan is None or plan.get("for") != asked:
        if args.collect:
            stored = (plan or {}).get("for")
            raise UsageError(f"{work} holds no plan for these options and --time-budget {args.time_budget:g}"
                             + (f" (it holds one for {'; '.join(identity_differences(asked, stored))})"
                                if stored else "") + ": run the sweep first")
        plan = time_budget.plan_preset(lambda epochs: specs_for(rows({**preset, "epochs": epochs}),
                                                                {**preset, "epochs": epochs}, settings),
                                       load(), device, minutes=minutes, cap=preset["epochs"], workers=workers)
        plan["for"] = asked
        write_json_atomic(path, plan)
    print(f"time budget: {minutes:g} min -> {plan['epochs']} epochs (of at most {preset['epochs']}; estimated "
          f"{plan['estimated_minutes']} min)", flush=True)
    return {**preset, "epochs": plan["epochs"], "time_budget": {k: v for k, v in plan.items() if k != "for"}}


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick")
    parser.add_argument("--models", default=None,
                        help="comma-separated (default: the preset's); a timm ResNet name, optionally +augshift, "
                             "+augshift:DISTANCE or +augshift:DISTANCE@WEIGHT (e.g. resnet18+augshift:mse@3)")
    parser.add_argument("--datasets", default=None, help="comma-separated: cifar10, cifar100 (overrides the preset)")
    parser.add_argument("--data", action="append", default=[], metavar="DATASET=SOURCE", type=dataset_source,
                        help="where a dataset comes from: hub name, parquet file/folder or image folder "
                             "(default: the shared local CIFAR-10 when present, else uoft-cs/cifar10 / uoft-cs/cifar100)")
    parser.add_argument("--weight", type=float, default=None, help="AugShift consistency weight (default: the library's)")
    parser.add_argument("--distance", choices=DISTANCES, default=None, help="AugShift distance")
    parser.add_argument("--normalize", action="store_true", default=None, help="AugShift: L2-normalise the features first")
    parser.add_argument("--time-budget", type=positive_float, default=None, metavar="MINUTES",
                        help="run the preset at the most epochs (at most its own) that fit MINUTES on this machine: "
                             "each recipe's training step and evaluation are measured first on the data; the budget "
                             "and the chosen length are recorded in the results (each dataset gets an equal share)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    command, start = command_line(), time.time()
    sources = dict(args.data)
    place = init_distributed(args.device)
    devices = [d for d in args.devices.split(",") if d]
    preset = overrides(args, PRESETS[args.preset], device=devices[0] if devices else place.device)
    if args.datasets:
        preset["datasets"] = args.datasets.split(",")
    if args.protocols == PROTOCOL_FAMILY:  # the preset's protocols unless --protocols names others
        args.protocols = tuple(preset.get("protocols", args.protocols))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else RESULTS / "invariance" / args.preset
    work = Path(args.workdir) if args.workdir else WORK / "invariance" / args.preset
    check_common_args(args, out, preset)
    models = split_rows(args.models) if args.models is not None else None
    rows = lambda preset: models or [*preset["models"], *equal_compute_rows(preset)]  # noqa: E731
    datasets = {}
    settings = {k: getattr(args, k) for k in ("weight", "distance", "normalize") if getattr(args, k) is not None}
    for dataset in preset["datasets"]:
        source = sources.get(dataset) or source_of(dataset)
        load = cache(lambda: load_data(source, preset, cache=work / "cache", protocols=args.protocols,  # noqa: E731
                                       trace_protocols=args.trace_protocols))  # once, for the plan and the runs
        chosen = preset if args.time_budget is None else fit_time_budget(
            args, preset, work / dataset, load, rows, settings, identity=run_inputs(source, preset, args),
            device=devices[0] if devices else place.device, workers=max(1, len(devices)))
        specs = specs_for(rows(chosen), chosen, settings)
        if args.launcher == "submitit" and not args.collect and "train_images" in chosen:
            hours = projected_gpu_hours(specs, image_size=chosen["image_size"], train_images=chosen.get(
                "train_size") or chosen["train_images"], num_classes=chosen.get("num_classes", 1000),
                throughput=RESULTS / "throughput" / "cuda" / "results.json")
            print(f"{dataset}: {len(specs)} runs, projected {hours:,.0f} GPU-hours of training (the engine's FLOP/s "
                  "on an H100, benchmarks/results/throughput/cuda)", flush=True)
        results = run_or_collect(specs, args, work / dataset, place, devices=devices, load=load,
                                 inputs=run_inputs(source, chosen, args))
        if results is not None:
            datasets[dataset] = {"data": results[0]["data"], "summary": summarize(results),
                                 "best": summarize(results, epoch="best"), "runs": results,
                                 "missing": missing_runs(specs, results),
                                 "compared": compare(results, chosen,
                                                     traced_protocols(args.protocols, args.trace_protocols)),
                                 **({"time_budget": chosen["time_budget"]} if "time_budget" in chosen else {})}
            if place.main:
                print(f"\n{dataset}:\n" + summary_table(datasets[dataset]["summary"]))
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; once every shard is, the same command with --collect "
              "instead of --shard writes the tables")
    elif place.main and datasets:  # none: the runs were submitted with --no-wait
        report(out, args.preset, preset, datasets, command, time.time() - start)
    return 1 if any(block["missing"] for block in datasets.values()) else 0  # tables written, but not of every run


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="runs resume from their last finished epoch when the same command runs again; result files already written are whole"))
