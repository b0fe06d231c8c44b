"""The paper's experiments within a time budget: measure first, then run them at the largest length that fits.

    python benchmarks/time_budget.py table2 --budget 400 --throughput $OUT/throughput/results.json --data DIR --out DIR
    python benchmarks/time_budget.py table1 --budget 480 --data DIR --out DIR
    python benchmarks/time_budget.py nccl --data DIR --out DIR      # machines of 2+ GPUs: the 2-process evaluation is exact

`table2`: the CIFAR-10 rows of the paper's Table 2 for one seed (`--models`, default resnet18, resnetblur18,
resnet18+augshift, resnet18+augshift:mse@W, resnetblur18+augshift), all sharing the device, at the paper recipe
(`benchmarks/invariance.py --preset paper`: CIFAR stem, full 50k / 10k, flips, one-cycle SGD, batch 128, the
captured step), for the largest epoch count (at most 200) that the throughput measured by `benchmarks/throughput.py`
lets finish in `--budget` seconds. Each model's aggregate rate is its `compiled xN` row (N runs sharing the
device) times N; a model not measured is estimated from the measured ones (its blur and AugShift factors).

`table1`: the paper's Table 1 at the official recipe (`benchmarks/position.py --preset paper`), in this order as
far as the budget goes: PermuteNet 3x3 location, GAPNet 3x3 location, then the 3x3 class column, then 7x7; GAPNet and
PermuteNet of a cell side by side on the device when two at once measured faster than one after the other. It first
times the captured training step of PermuteNet 3x3 alone and of a pair, then gives each group the largest epoch count
(at most 20, the paper's) that fits what is left, from the seconds per epoch measured so far (the first group's from
the probe, later ones from the epochs that ran; a 7x7 canvas has 49/9 times the pixels). Writes `plan.json` and
the tables under `--out`.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from augshift.arguments import Parser
from augshift.errors import UsageError, run_command
from augshift.engine.sources import steps_per_epoch

HERE = Path(__file__).resolve().parent
TABLE2_MODELS = ("resnet18", "resnetblur18", "resnet18+augshift", "resnet18+augshift:mse@3", "resnetblur18+augshift")
TABLE1_ORDER = (("location", 3), ("class", 3), ("location", 7), ("class", 7))  # each: PermuteNet first, then GAPNet
IMAGES, TEST_IMAGES = 50_000, 10_000
FORWARD_SHARE = 1 / 3  # a forward is about a third of a training step's work
TRACE_PROTOCOLS = ("random", "circular")  # the per-epoch trace of the budgeted Table 2 (the final evaluation: all)
TRACE_FORWARDS = 1 + 2 * len(TRACE_PROTOCOLS)  # per test image and epoch: the image and each protocol's two views


def aggregate_rates(throughput: dict) -> dict[str, float]:
    """Training images/s of the whole device per measured model: its `compiled xN` row for the largest N measured
    (`throughput.py` divides the wall time of N runs by N, so that row's images/s is already the device's), else its
    `compiled` row alone."""
    best: dict[str, tuple[int, float]] = {}
    for row in throughput["rows"]:
        path = row["path"]
        if path == "compiled" or path.startswith("compiled x"):
            n = int(path.split("x")[1]) if "x" in path else 1
            if n >= best.get(row["model"], (0, 0.0))[0]:
                best[row["model"]] = (n, row["images_per_s"])
    return {model: rate for model, (_, rate) in best.items()}


def model_rate(model: str, rates: dict[str, float]) -> float:
    """The aggregate rate of a Table 2 row: measured, or a `:mse@W` row at its `+augshift` model's, or
    estimated as `base x blur factor x AugShift factor` from the measured resnet18 / resnetblur18 / +augshift."""
    model = model.split(":")[0]
    if model in rates:
        return rates[model]
    arch = model.partition("+")[0]
    if arch not in rates or "resnet18+augshift" not in rates:
        raise KeyError(f"{model}: measure {arch} and resnet18+augshift with benchmarks/throughput.py first")
    return rates[arch] * rates["resnet18+augshift"] / rates["resnet18"]  # AugShift's factor, measured on resnet18


def table2_epochs(rates: dict[str, float], models: list[str], budget_s: float, *, fixed_s: float,
                  cap: int = 200) -> tuple[int, float]:
    """`(epochs, seconds per epoch)`: the most epochs (at most `cap`, at least 1) of all `models` sharing the
    device that fit `budget_s` after `fixed_s` (compilation and the final evaluations). An epoch of all models
    takes their summed work at each one's aggregate rate, plus each one's per-epoch trace (top-1 and consistency
    under `TRACE_PROTOCOLS` on the test set)."""
    per_epoch = sum((IMAGES + FORWARD_SHARE * TRACE_FORWARDS * TEST_IMAGES) / model_rate(m, rates) for m in models)
    return max(1, min(cap, math.floor((budget_s - fixed_s) / per_epoch))), per_epoch


def run_table2(args: argparse.Namespace) -> int:
    throughput = json.loads(Path(args.throughput).read_text())
    rates, models = aggregate_rates(throughput), args.models.split(",")
    compile_s = max((row.get("compile_s") or 0.0) for row in throughput["rows"])
    # final evaluation per run: 10k test images under the protocol family (13 forwards each) and the sparse curve on
    # 2,000 (289 forwards), twice (last and best epoch)
    evaluation = sum(2 * FORWARD_SHARE * (13 * TEST_IMAGES + 289 * 2000) / model_rate(m, rates) for m in models)
    fixed = 1.5 * compile_s + evaluation + args.margin
    epochs, per_epoch = table2_epochs(rates, models, args.budget - (time.time() - args.started), fixed_s=fixed)
    plan = dict(models=models, epochs=epochs, seconds_per_epoch=per_epoch, fixed_seconds=fixed, rates=rates,
                budget=args.budget)
    write_plan(args.out, plan)
    print(f"Table 2 plan: {epochs} epochs of {len(models)} runs sharing {args.device} "
          f"(~{per_epoch:.1f} s per epoch of all runs, ~{fixed:.0f} s compilation and evaluation)", flush=True)
    devices = ",".join([args.device] * len(models))
    command = [sys.executable, str(HERE / "invariance.py"), "--preset", "paper", "--datasets", "cifar10",
               "--data", f"cifar10={args.data}", "--seeds", "0", "--epochs", str(epochs), "--models", ",".join(models),
               "--trace-protocols", ",".join(TRACE_PROTOCOLS),
               "--devices", devices, "--workdir", str(Path(args.workdir) / "table2"), "--out", str(Path(args.out))]
    return subprocess.run(command, timeout=max(60, args.budget - (time.time() - args.started))).returncode


def longest_fitting(cost: Callable[[int], float], budget_s: float, cap: int) -> int:
    """The most epochs `E` in `[1, cap]` whose estimated `cost(E)` seconds fit `budget_s`; `cost` grows
    with `E`. A budget that fits no epoch is a `UsageError` saying what one epoch needs."""
    fitting = [epochs for epochs in range(1, cap + 1) if cost(epochs) <= budget_s]
    if not fitting:
        raise UsageError(f"the time budget fits no epoch: one epoch of the preset needs about "
                         f"{cost(1) / 60:.2g} min here ({max(budget_s, 0) / 60:.2g} min left after measuring); give a "
                         "larger --time-budget, or fewer models, seeds or images")
    return max(fitting)


def measure_preset(specs: Sequence, data, device: str, *, steps: int = 4, warmup: int = 1,
                   sample: int = 64) -> dict:
    """What the runs of a preset cost on this machine, measured on its data: seconds per training step of each
    distinct recipe (architecture, AugShift or not, batch), and seconds per test image of each architecture's
    per-epoch trace and final evaluation (last and best epoch: twice), timed on `sample` test images with the
    model at its initial weights (evaluation costs do not depend on the weights)."""
    import torch
    from throughput import time_engine

    from augshift.engine import TensorBatches, Trainer
    from augshift.distributed import Dist
    from augshift.models import create_model
    from sweep.runs import epoch_trace, evaluate_model

    place, measured = Dist(device=device), {"step_seconds": {}, "trace_seconds_per_image": {},
                                            "evaluation_seconds_per_image": {}}
    n = min(sample, len(data.test[0]))
    subset = replace(data, test=(data.test[0][:n], data.test[1][:n]),
                     curve_size=round(data.curve_size * n / len(data.test[0])))
    for spec in specs:
        key, config = recipe_key(spec), spec.config
        if key in measured["step_seconds"]:
            continue
        batches = TensorBatches(*(t.to(device) for t in data.train), batch_size=config.batch_size, seed=0,
                                normalization=data.normalization, hflip=config.hflip, drop_last=config.compile)
        model = create_model(spec.arch, data.num_classes, stem=spec.stem).to(device)
        trainer = Trainer(model, config.replace(epochs=1000), steps_per_epoch=batches.steps,
                          generator=torch.Generator(device=device))
        measured["step_seconds"][key] = time_engine(trainer, batches, steps=steps, warmup=warmup, device=device) / steps
        if spec.arch not in measured["trace_seconds_per_image"]:
            began = time.perf_counter()
            epoch_trace(model, subset, place)
            measured["trace_seconds_per_image"][spec.arch] = (time.perf_counter() - began) / n
            began = time.perf_counter()
            evaluate_model(model, subset, place, progress=False)
            measured["evaluation_seconds_per_image"][spec.arch] = 2 * (time.perf_counter() - began) / n
    return measured


def recipe_key(spec) -> str:
    """A training recipe's cost key: architecture, AugShift or not, batch size."""
    return f"{spec.arch}{'+augshift' if spec.config.augshift else ''}@{spec.config.batch_size}"


def preset_seconds(specs: Sequence, measured: dict, train_images: int, test_images: int) -> float:
    """The estimated seconds of `specs` from `measure_preset`'s measurements: each run's steps at its recipe's
    step time, its per-epoch traces and its final evaluations."""
    total = 0.0
    for spec in specs:
        steps = steps_per_epoch(train_images, spec.config.batch_size, drop_last=spec.config.compile)
        per_epoch = steps * measured["step_seconds"][recipe_key(spec)] + \
            test_images * measured["trace_seconds_per_image"][spec.arch]
        total += spec.config.epochs * per_epoch + test_images * measured["evaluation_seconds_per_image"][spec.arch]
    return total


def plan_preset(specs_of: Callable[[int], Sequence], data, device: str, *, minutes: float, cap: int,
                workers: int = 1) -> dict:
    """The longest preset that fits `minutes`: measure (`measure_preset`, on the specs of the preset at its own
    length), then the most epochs (at most `cap`) whose runs' estimated time, shared by `workers` processes
    running side by side, fits what is left of the budget.

    Returns:
        `{"minutes", "epochs", "estimated_minutes", "measured_seconds", "measured"}`, recorded in the results.
    """
    began = time.perf_counter()
    measured = measure_preset(specs_of(cap), data, device)
    spent = time.perf_counter() - began
    cost = lambda epochs: preset_seconds(specs_of(epochs), measured, len(data.train[0]),  # noqa: E731
                                         len(data.test[0])) / workers
    epochs = longest_fitting(cost, minutes * 60 - spent, cap)
    return {"minutes": minutes, "epochs": epochs, "estimated_minutes": round((cost(epochs) + spent) / 60, 1),
            "measured_seconds": round(spent, 1), "measured": measured}


def locate(model: str, task: str, grid: int, epochs: int, args: argparse.Namespace) -> list[str]:
    """The `augshift locate` command of one Table 1 cell at the paper recipe."""
    return [sys.executable, "-m", "augshift.cli", "locate", "--preset", "paper", "--model", model, "--task", task,
            "--grid", str(grid), "--epochs", str(epochs), "--data", args.data, "--device", args.device, "--out",
            str(Path(args.out) / "table1"), *args.locate_options]


def probe_command(args: argparse.Namespace, steps: int, tag: str) -> list[str]:
    return [sys.executable, str(HERE / "time_budget.py"), "probe", "--device", args.device, "--steps", str(steps),
            "--data", args.data, "--out", args.out, "--tag", tag]


def run_together(commands: list[list[str]], timeout: float) -> list[int]:
    """Start `commands` at once; their return codes (a command still running at `timeout` is stopped: 124)."""
    processes = [subprocess.Popen(command) for command in commands]
    deadline, codes = time.time() + timeout, []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(1.0, deadline - time.time())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(124)
    return codes


def probe_path(out: str, model: str, grid: int, tag: str = "") -> Path:
    """The file a probe of `model` on `grid` x `grid` canvases writes (`tag`: one of several side by side)."""
    return Path(out, f"probe-{model}-g{grid}" + (f"-{tag}" if tag else "") + ".json")


def run_table1(args: argparse.Namespace) -> int:
    left = lambda: args.budget - (time.time() - args.started)  # noqa: E731 -- seconds left of the budget
    probe, step_s = {}, {}
    for together in (1, 2):  # PermuteNet 3x3 alone, then two at once
        tags = [f"{together}-{i}" for i in range(together)]
        for tag in tags:
            probe_path(args.out, "permutenet", 3, tag).unlink(missing_ok=True)
        began = time.time()
        codes = run_together([probe_command(args, args.probe_steps, tag) for tag in tags], timeout=left())
        probe[together] = dict(wall=time.time() - began, codes=codes)
        if any(codes):
            write_plan(args.out, dict(probe=probe, failed=f"the probe of {together} run(s) at once exited with {codes}"))
            print(f"time_budget: the probe of {together} run(s) at once failed ({codes}); see the log above", flush=True)
            return 1
        step_s[together] = max(json.loads(probe_path(args.out, "permutenet", 3, tag).read_text())["step_seconds"]
                               for tag in tags)
    pair_faster = step_s[2] < 2 * step_s[1]  # two steps at once against two one after the other
    step_s = step_s[2] if pair_faster else step_s[1]
    # seconds of one epoch of one cell (both models) at 3x3: 50k canvases at the measured step time, plus its test pass
    cell_epoch = {3: (IMAGES / 48) * step_s * (1 if pair_faster else 2) * (1 + FORWARD_SHARE * TEST_IMAGES / IMAGES)}
    # (step_s is the wall time of a step of the pair when it shares the device, of one model when it does not)
    cell_epoch[7] = cell_epoch[3] * 49 / 9
    plan = dict(probe=probe, step_seconds=step_s, pair_faster=pair_faster, cells=[])
    for task, grid in TABLE1_ORDER:
        fixed = 60.0 + 2 * FORWARD_SHARE * grid * grid * TEST_IMAGES / (IMAGES / cell_epoch[grid])  # compile + eval
        epochs = min(20, math.floor((left() - fixed - args.margin) / cell_epoch[grid]))
        if epochs < 1:
            plan["cells"].append(dict(task=task, grid=grid, epochs=0, ran=False))
            continue
        commands = [locate(model, task, grid, epochs, args) for model in ("permutenet", "gapnet")]
        began = time.time()
        codes = run_together(commands, timeout=left()) if pair_faster else \
            [run_together([command], timeout=left())[0] for command in commands]
        seconds = time.time() - began
        cell_epoch[grid] = max(cell_epoch[grid], (seconds - fixed) / epochs)  # what it really took, for the next
        cell_epoch[7 if grid == 3 else 3] = cell_epoch[grid] * (49 / 9 if grid == 3 else 9 / 49)
        plan["cells"].append(dict(task=task, grid=grid, epochs=epochs, ran=True, seconds=seconds, codes=codes))
        write_plan(args.out, plan)
    write_plan(args.out, plan)
    collect = [sys.executable, str(HERE / "position.py"), "--preset", "paper", "--collect", "--out",
               str(Path(args.out) / "table1")]
    return subprocess.run(collect).returncode


def run_probe(args: argparse.Namespace) -> int:
    """Time the training step of `--model` (official trunk) on `--grid` canvases at the paper recipe (the captured
    step on CUDA, eager elsewhere); writes `probe-<model>-g<grid>.json` with the seconds per step and per epoch."""
    import torch

    import augshift.models  # noqa: F401  (registers the models)
    from augshift.data import Normalization, load_split
    from augshift.data.stats import normalize
    from augshift.engine import Trainer
    from augshift.models import create_model
    from augshift.position import LocationCanvas
    from augshift.position.recipes import PRESETS, canvas_source

    device = torch.device(args.device)
    config = PRESETS["paper"]
    images, labels = load_split(args.data, "train", limit=48 * (args.steps + 10))
    x = normalize(images, Normalization.of_images(images, source="probe")).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    canvas = LocationCanvas(x, labels.to(device), grid=args.grid, generator=generator)
    source = canvas_source(canvas, task="location", config=config, generator=generator)
    options = dict(seed=1) if args.model == "permutenet" else {}
    model = create_model(f"{args.model}_{config.trunk}", num_classes=args.grid ** 2, **options).to(device)
    trainer = Trainer(model, config.train_config(device), steps_per_epoch=source.steps)
    batches = iter(source.batches(0))
    began = time.perf_counter()
    for _ in range(args.warmup):  # compilation and CUDA graph recording
        trainer.step(*next(batches))
    warmup_s = time.perf_counter() - began
    torch.cuda.synchronize() if device.type == "cuda" else None
    began = time.perf_counter()
    sums = sum(trainer.step(*next(batches)) for _ in range(args.steps))
    float(sums.sum())
    step_s = (time.perf_counter() - began) / args.steps
    from augshift.reporting.provenance import command_line, machine

    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = {"model": f"{args.model}_{config.trunk}", "grid": args.grid, "step_seconds": step_s,
              "epoch_seconds": step_s * IMAGES / config.batch_size, "warmup_seconds": warmup_s,
              "steps": args.steps, "warmup": args.warmup, "compiled": trainer.config.compile, "device": str(device),
              "machine": machine(str(device), torch.get_num_threads()), "command": command_line()}
    probe_path(args.out, args.model, args.grid, args.tag).write_text(json.dumps(result, indent=2) + "\n")
    print(f"probe {args.model} {args.grid}x{args.grid}: {step_s * 1000:.1f} ms per step of 48 canvases, "
          f"{result['epoch_seconds']:.0f} s per epoch of 50k ({'compiled' if result['compiled'] else 'eager'})",
          flush=True)
    return 0


def run_nccl(args: argparse.Namespace) -> int:
    """The 2-GPU check: the Accelerate example trains one epoch on 256 images under `torchrun --nproc_per_node 2`
    (NCCL); its evaluation, gathered over the two processes, must equal one process's evaluation of the saved model."""
    from augshift.data import Normalization, eval_split, load_split_dataset
    from augshift.metrics import ShiftConsistency
    from augshift.models import load_model

    out = Path(args.out)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE.parent / "integrations" / "accelerate" / "train.py"), "--data", args.data, "--epochs", "1",
               "--train-limit", "256", "--eval-limit", "200", "--batch-size", "32", "--output", str(out / "accelerate")]
    subprocess.run(command, check=True, timeout=300)
    metrics = json.loads((out / "accelerate" / "metrics.json").read_text())
    loaded = load_model(str(out / "accelerate"))
    normalization = Normalization.from_dict(metrics["normalization"])
    data = load_split_dataset(args.data, eval_split(args.data), normalization=normalization, limit=200)
    metric, model = ShiftConsistency(), loaded.model.to(args.device)
    for start in range(0, 200, 50):
        rows = data[start:start + 50]
        metric.update(model, rows["pixel_values"].to(args.device), rows["labels"].to(args.device), rows["index"])
    one = json.loads(json.dumps(metric.compute().to_dict()))
    two = metrics["epochs"][-1]["eval"]
    equal = one == two
    write_plan(str(out), {"two_processes": two, "one_process": one, "equal": equal})
    print(f"2-GPU NCCL check: the two-process evaluation {'equals' if equal else 'does NOT equal'} one process's "
          f"(random {two['consistency_random']:.2f} vs {one['consistency_random']:.2f})", flush=True)
    return 0 if equal else 1


def write_plan(out: str, plan: dict) -> None:
    from augshift.reporting.files import write_json_atomic

    write_json_atomic(Path(out) / "plan.json", plan)


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("table1", "table2", "probe", "nccl"))
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for everything this command does")
    parser.add_argument("--margin", type=float, default=30.0, help="seconds kept free at the end")
    parser.add_argument("--data", required=True, help="CIFAR-10 (parquet folder in the hub layout)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=".")
    parser.add_argument("--workdir", default="/tmp/time_budget")
    parser.add_argument("--throughput", default=None, help="table2: results.json of benchmarks/throughput.py")
    parser.add_argument("--models", default=",".join(TABLE2_MODELS), help="table2: the rows")
    parser.add_argument("--steps", type=int, default=40, help="probe: timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="probe: untimed steps first (compilation)")
    parser.add_argument("--model", choices=("permutenet", "gapnet"), default="permutenet", help="probe: the model")
    parser.add_argument("--grid", type=int, default=3, help="probe: canvases of grid x grid cells")
    parser.add_argument("--tag", default="", help="probe: appended to the output's name (probes run side by side)")
    parser.add_argument("--probe-steps", type=int, default=40, help="table1: timed steps of the probe")
    parser.add_argument("locate_options", nargs="*", help="table1, after --: more options for augshift locate")
    args = parser.parse_args(argv)
    args.started = time.time()
    return {"table1": run_table1, "table2": run_table2, "probe": run_probe, "nccl": run_nccl}[args.what](args)


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="runs resume from their last finished epoch when the same command runs again; result files already written are whole"))
