"""Shared machinery of the training benchmarks: models, data, resumable data-parallel runs, sweeps, summaries.

A *run* is one (model, training recipe, seed) on one dataset. :func:`run_one` trains it (data-parallel when
the script was started by ``torchrun`` / ``accelerate launch``: gloo on CPU, NCCL on CUDA), saves a
checkpoint after every epoch (atomically; an interrupted run continues from it), evaluates accuracy and
shift consistency on the test set with :class:`augshift.ShiftConsistency` (every process evaluates its
shard, counts are summed, so the numbers equal a single-process evaluation) and writes ``result.json``;
a run whose ``result.json`` exists is skipped. :func:`run_sweep` runs a list of runs in this process group,
or spreads them over ``--devices`` (one worker process per device).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from augshift.io import write_bytes_atomic, write_json_atomic
from augshift.metrics import evaluate_shift_consistency, proportion_ci
from augshift.training import Trainer, TrainConfig, iterate_batches

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "runs"  # checkpoints and per-run results (not committed)
SHARED_CIFAR10 = Path(os.environ.get("AUGSHIFT_CIFAR10", ROOT.parent / "shared" / "data" / "cifar10"))
MODELS = ("resnet18", "resnetblur18", "resnet18+augshift", "resnetblur18+augshift")
STEMS = ("standard", "cifar")
EVAL = dict(max_shift=4, mode="zeros")  # the metric's protocol (fixed, whatever the training recipe)


def command_line() -> str:
    """The exact command that is running (``torchrun`` / ``accelerate launch`` prefix included when known)."""
    argv = [os.path.relpath(sys.argv[0], ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0], *sys.argv[1:]]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    prefix = f"torchrun --nproc_per_node {world} " if world > 1 else "python "
    return prefix + shlex.join(argv)


# ------------------------------------------------------------------------------------------ models, data

def create_model(arch: str, num_classes: int, *, stem: str = "standard") -> nn.Module:
    """A timm model (``pretrained=False``); ``stem="cifar"`` replaces the 7x7/2 conv + max-pool by a 3x3/1 conv.

    The replacement is applied the same way to every ResNet (plain and blur): ``conv1`` becomes a 3x3
    stride-1 conv with the same output channels and ``maxpool`` an identity, the usual CIFAR ResNet stem.
    """
    import timm

    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; supported: {', '.join(STEMS)}")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    if stem == "cifar":
        if not isinstance(getattr(model, "conv1", None), nn.Conv2d) or not hasattr(model, "maxpool"):
            raise ValueError(f"the CIFAR stem needs a ResNet with a single-conv stem (conv1, maxpool); {arch} has none")
        conv = model.conv1
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    return model


def parse_model(name: str) -> tuple[str, bool]:
    """``"resnet18+augshift"`` -> ``("resnet18", True)``."""
    arch, _, suffix = name.partition("+")
    if suffix not in ("", "augshift"):
        raise ValueError(f"model {name!r}: expected a timm name, optionally followed by '+augshift'")
    return arch, suffix == "augshift"


def default_source(dataset: str) -> str:
    """Where ``dataset`` (cifar10 / cifar100) comes from: the shared local copy when present, else the hub."""
    if dataset == "cifar10" and (SHARED_CIFAR10 / "test-00000-of-00001.parquet").is_file():
        return str(SHARED_CIFAR10)
    return {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100"}[dataset]


def load_split(source: str, split: str, *, limit: Optional[int] = None, cache: Optional[Path] = None,
               label_column: Optional[str] = None) -> tuple[Tensor, Tensor]:
    """``uint8`` images (N, 3, H, W) and labels (N,) of ``split``, decoded once and cached in ``cache``."""
    from augshift.integrations.datasets import load_image_dataset, to_tensors

    key = f"{source.replace('/', '_').strip('_.')}_{split}_{limit or 'all'}_{label_column or 'auto'}.pt"
    path = cache / key if cache is not None else None
    if path is not None and path.is_file():
        return torch.load(path)
    data = to_tensors(load_image_dataset(source, split), label_column=label_column, limit=limit)
    if path is not None:
        buffer = io.BytesIO()
        torch.save(data, buffer)
        write_bytes_atomic(path, buffer.getvalue())
    return data


# ------------------------------------------------------------------------------------------ processes

@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, running on ``device``."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: Optional[str] = None) -> Dist:
    """Join the process group started by ``torchrun`` / ``accelerate launch`` (env ``WORLD_SIZE`` > 1).

    Device: ``device`` if given, else ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU; the backend
    is NCCL on CUDA and gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    elif device == "cuda":
        device = f"cuda:{local}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank() if world > 1 else 0, world, device)


def barrier(place: Dist) -> None:
    if place.world > 1:
        dist.barrier()


@torch.no_grad()
def average_buffers(model: nn.Module, place: Dist) -> None:
    """Average floating buffers (BatchNorm statistics) over processes, so every rank holds one model."""
    if place.world == 1:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(place.world)


# ------------------------------------------------------------------------------------------ runs

@dataclass(frozen=True)
class RunSpec:
    """One training run. ``name`` names the run directory; ``config.seed`` is the seed."""

    name: str
    arch: str
    config: TrainConfig
    stem: str = "standard"
    label: str = ""  # the row it belongs to in the tables (model or ablation variant)

    def to_dict(self) -> dict:
        return {"name": self.name, "arch": self.arch, "stem": self.stem, "label": self.label, "config": self.config.to_dict()}


AUGSHIFT_ONLY = ("weight", "distance", "normalize")  # settings that do not change a run without AugShift


def same_recipe(stored: dict, spec: RunSpec) -> bool:
    """Whether a stored run (its spec fields) is ``spec``'s run; AugShift-only settings of a plain run do not count."""
    def identity(d: dict) -> dict:
        config = {k: v for k, v in d["config"].items() if d["config"]["augshift"] or k not in AUGSHIFT_ONLY}
        return {**{k: d[k] for k in ("name", "arch", "stem", "label")}, "config": config}

    return identity(stored) == identity(spec.to_dict())


@dataclass
class RunData:
    """Train and test tensors (uint8 images, long labels) and the evaluation options."""

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    num_classes: int
    curve_size: int = 1000
    eval_batch_size: int = 500
    description: str = ""


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A seed for one epoch of one rank (rank -1: shared by all ranks), so a resumed epoch replays exactly."""
    return int(np.random.SeedSequence([seed, epoch, rank + 1]).generate_state(1, dtype=np.uint64)[0])


def epoch_shard(n: int, *, seed: int, epoch: int, place: Dist) -> Tensor:
    """This rank's sample indices for one epoch: one permutation shared by all ranks (seeded by seed and
    epoch), cut to a multiple of the world size and dealt round-robin, so every rank takes the same
    number of steps."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, -1)))
    return order[: n - n % place.world][place.rank::place.world]


def evaluate_model(model: nn.Module, data: RunData, place: Dist, *, seed: int = 0, progress: bool = True) -> dict:
    """Accuracy and consistency (both protocols) on the whole test set, and the per-shift curve on its
    first ``curve_size`` images; each rank takes a strided shard, counts are summed over ranks."""
    images, labels = data.test
    bs = data.eval_batch_size
    shard = torch.arange(len(images))[place.rank::place.world]
    report = evaluate_shift_consistency(
        model, iterate_batches(images, labels, bs, indices=shard), device=torch.device(place.device),
        progress=progress, seed=seed, **EVAL,
    )
    out = report.to_dict()
    out["counts"] = {"samples": report.samples, "correct": report.correct, **{f"agree_{k}": v for k, v in report.agree.items()}}
    if data.curve_size:
        curve_shard = torch.arange(min(data.curve_size, len(images)))[place.rank::place.world]
        curve = evaluate_shift_consistency(
            model, iterate_batches(images, labels, bs, indices=curve_shard), device=torch.device(place.device),
            progress=progress, seed=seed, protocols=(), curve_max_shift=EVAL["max_shift"], **EVAL,
        ).to_dict()
        out.update(curve_consistency=curve["curve_consistency"], curve_accuracy=curve["curve_accuracy"],
                   curve_samples=curve["samples"])
    return out


def _save(path: Path, obj: dict) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def run_one(spec: RunSpec, data: RunData, run_dir: Path, place: Dist, *, progress: bool = True) -> dict:
    """Train (resuming from ``run_dir/checkpoint.pt``), evaluate, write ``run_dir/result.json``; returns it.

    A run whose ``result.json`` exists is returned as it is. ``config.batch_size`` is the global batch:
    each of the ``world`` processes takes ``batch_size / world`` samples per step.
    """
    from tqdm.auto import tqdm

    result_path, ckpt_path = run_dir / "result.json", run_dir / "checkpoint.pt"
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if not same_recipe(result, spec):
            raise ValueError(f"{result_path} was written by another recipe; use another --workdir")
        return result
    config = spec.config
    if config.batch_size % place.world:
        raise ValueError(f"batch size {config.batch_size} must be divisible by the number of processes {place.world}")
    device = torch.device(place.device)
    x_train, y_train = (t.to(device) for t in data.train)
    torch.manual_seed(config.seed)
    model = create_model(spec.arch, data.num_classes, stem=spec.stem).to(device)
    shard_len = (len(x_train) - len(x_train) % place.world) // place.world
    local_bs = config.batch_size // place.world
    steps = -(-shard_len // local_bs)
    wrap = None
    if place.world > 1:
        from functools import partial

        from torch.nn.parallel import DistributedDataParallel

        wrap = partial(DistributedDataParallel, device_ids=[device.index] if device.type == "cuda" else None)
    generator = torch.Generator(device=device)
    trainer = Trainer(model, config, steps_per_epoch=steps, wrap=wrap, generator=generator)
    start, history, seconds = 0, [], 0.0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if not same_recipe(state["spec"], spec):
            raise ValueError(f"{ckpt_path} was written by another recipe ({state['spec']}); use another --workdir")
        trainer.load_state_dict(state["trainer"])
        start, history, seconds = state["epoch"], state["history"], state["seconds"]
        if place.main:
            print(f"{spec.name}: resuming after epoch {start}", flush=True)
    desc = f"{spec.name} ({place.world} proc)" if place.world > 1 else spec.name
    with tqdm(total=config.epochs * steps, initial=start * steps, desc=desc, disable=not (progress and place.main),
              leave=False) as bar:
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            generator.manual_seed(epoch_seed(config.seed, epoch, place.rank))
            shard = epoch_shard(len(x_train), seed=config.seed, epoch=epoch, place=place).to(device)
            totals: dict[str, float] = {}
            for x, y, _ in iterate_batches(x_train, y_train, local_bs, indices=shard):
                for key, value in trainer.step(x, y).items():
                    totals[key] = totals.get(key, 0.0) + value / steps
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{totals['loss'] * steps / max(bar.n - epoch * steps, 1):.3f}")
            average_buffers(model, place)
            seconds += time.perf_counter() - began
            history.append({"epoch": epoch + 1, **totals})
            if place.main:
                _save(ckpt_path, {"spec": spec.to_dict(), "trainer": trainer.state_dict(), "epoch": epoch + 1,
                                  "history": history, "seconds": seconds})
            barrier(place)
    began = time.perf_counter()
    metrics = evaluate_model(model, data, place, seed=0, progress=progress and place.main)
    result = {**spec.to_dict(), "world_size": place.world, "data": data.description,
              "train_seconds": round(seconds, 1), "eval_seconds": round(time.perf_counter() - began, 1),
              "history": history, **metrics}
    if place.main:
        write_json_atomic(result_path, result)
        print(f"{spec.name}: accuracy {result['accuracy']:.2f}%, consistency random {result['consistency_random']:.2f}% "
              f"/ circular {result['consistency_circular']:.2f}%", flush=True)
    barrier(place)
    return result


def _run_list(specs: Sequence[RunSpec], data: RunData, work: Path, device: str, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    place = Dist(device=device)
    return [run_one(spec, data, work / spec.name, place) for spec in specs]


def run_sweep(specs: Sequence[RunSpec], data: RunData, work: Path, place: Dist, *,
              devices: Sequence[str] = (), threads: int = 0) -> list[dict]:
    """Run every spec; with ``devices`` (single-process only), independent runs are dealt round-robin to
    one worker process per device (e.g. ``cuda:0,cuda:1``), each with ``threads`` torch threads."""
    if len(devices) <= 1 or place.world > 1:
        place = Dist(place.rank, place.world, devices[0]) if len(devices) == 1 and place.world == 1 else place
        return [run_one(spec, data, work / spec.name, place) for spec in specs]
    import multiprocessing

    per_worker = threads or max(1, torch.get_num_threads() // len(devices))
    with ProcessPoolExecutor(len(devices), mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_run_list, specs[i::len(devices)], data, work, device, per_worker)
                for i, device in enumerate(devices)]
        done = {r["name"]: r for job in jobs for r in job.result()}
    return [done[spec.name] for spec in specs]


# ------------------------------------------------------------------------------------------ summaries

def difference_ci(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% interval (points) of the difference of two proportions ``k1/n1 - k2/n2`` (Newcombe, from Wilson).

    Treats the two as independent samples; for two models on the same test images this is conservative.
    """
    p1, p2 = 100.0 * k1 / n1, 100.0 * k2 / n2
    (l1, u1), (l2, u2) = proportion_ci(k1, n1), proportion_ci(k2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


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


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by the training benchmarks."""
    add = parser.add_argument
    add("--workdir", default=None, help=f"checkpoints and per-run results (default {os.path.relpath(WORK, ROOT)}/...)")
    add("--out", default=None, help="results folder (default benchmarks/results/<benchmark>/<preset>)")
    add("--devices", default="", help="spread independent runs over these devices, e.g. cuda:0,cuda:1 or cpu,cpu")
    add("--device", default=None, help="device of this process (default: cuda:<LOCAL_RANK> if available, else cpu)")
    add("--threads", type=int, default=0, help="torch threads per process (default: torch's choice)")
    add("--train-size", type=int, default=None, help="use the first N training images (overrides the preset)")
    add("--test-size", type=int, default=None, help="evaluate on the first N test images (default: all)")
    add("--epochs", type=int, default=None, help="overrides the preset")
    add("--batch-size", type=int, default=None, help="global batch size (overrides the preset)")
    add("--lr", type=float, default=None, help="peak learning rate (overrides the preset)")
    add("--seeds", default=None, help="comma-separated seeds (overrides the preset)")
    add("--stem", choices=STEMS, default=None, help="first layers of every model (overrides the preset)")
    add("--curve-size", type=int, default=None, help="test images for the per-shift curve")


def overrides(args: argparse.Namespace, preset: dict) -> dict:
    """The preset with the command-line overrides applied."""
    out = dict(preset)
    for key in ("train_size", "epochs", "batch_size", "lr", "stem", "curve_size", "test_size"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if args.seeds is not None:
        out["seeds"] = [int(s) for s in args.seeds.split(",")]
    return out


def recipe(preset: dict, *, seed: int, **changes) -> TrainConfig:
    """The TrainConfig of a preset (epochs, batch size, lr) for ``seed``, with ``changes``."""
    return dataclasses.replace(
        TrainConfig(epochs=preset["epochs"], batch_size=preset["batch_size"], lr=preset["lr"], seed=seed), **changes
    )


def load_data(source: str, preset: dict, *, label_column: Optional[str] = None, cache: Optional[Path] = None) -> RunData:
    """Train subset and test set of ``source`` as in the preset."""
    train = load_split(source, "train", limit=preset.get("train_size"), cache=cache, label_column=label_column)
    test = load_split(source, "test", limit=preset.get("test_size"), cache=cache, label_column=label_column)
    classes = int(max(train[1].max(), test[1].max())) + 1
    description = f"{source}: {len(train[0])} train / {len(test[0])} test images, {classes} classes"
    return RunData(train, test, classes, curve_size=preset.get("curve_size", 1000), description=description)
