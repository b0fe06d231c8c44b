"""Benchmark runs: one (model, recipe, seed) trained and evaluated by :func:`run_one`, resumably, in one process
or data-parallel (``torchrun`` / ``accelerate launch``); :func:`run_sweep` runs a list of them, here or spread
over devices (several processes may share one GPU), or only this shard's part of it.

A run writes ``<workdir>/<name>/checkpoint.pt`` after every epoch (atomically; an interrupted run continues
from it) and ``result.json`` at the end; a run whose ``result.json`` exists is read back, not redone. The test
set is evaluated with :class:`augshift.ShiftConsistency`: every process evaluates its shard and the counts are
summed, so the numbers equal a single-process evaluation.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..config import DISTANCES, AugShiftConfig
from ..engine import BestEpoch, Dist, TensorBatches, TrainConfig, Trainer, barrier, evaluate_classifier, fit
from ..errors import UsageError
from ..metrics import PROTOCOL_FAMILY, curve_offsets_to
from ..models import create_model
from ..reporting.files import write_json_atomic

# the metric's protocols (fixed, whatever the training recipe): the whole family, and the per-shift curve out to 16 px
EVAL = dict(max_shift=4, mode="zeros", protocols=PROTOCOL_FAMILY)
CURVE_OFFSETS = curve_offsets_to(16)


def parse_model(name: str, *, defaults: AugShiftConfig = AugShiftConfig()) -> tuple[str, Optional[AugShiftConfig]]:
    """A benchmark row's model: ``"resnet18"`` -> ``("resnet18", None)``; ``"resnet18+augshift"`` -> AugShift with
    ``defaults``; ``"resnet18+augshift:mse"`` with that distance; ``"resnet18+augshift:mse@0.1"`` and weight."""
    arch, plus, suffix = name.partition("+")
    if not plus:
        return arch, None
    method, _, setting = suffix.partition(":")
    distance, _, weight = setting.partition("@")
    try:
        if method != "augshift" or (distance and distance not in DISTANCES):
            raise ValueError
        changes = dict(distance=distance or defaults.distance, weight=float(weight) if weight else defaults.weight)
        return arch, AugShiftConfig(**{**defaults.to_dict(), **changes})
    except ValueError:
        raise UsageError(f"model {name!r}: expected a timm name, optionally followed by '+augshift', "
                         f"'+augshift:DISTANCE' or '+augshift:DISTANCE@WEIGHT' (distances: {', '.join(DISTANCES)}), "
                         "e.g. resnet18+augshift:mse@0.1") from None


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``name`` names the run directory; ``config.seed`` is the seed; ``label`` is the row of
    the tables it belongs to (model or ablation variant)."""

    name: str
    arch: str
    config: TrainConfig
    stem: str = "standard"
    label: str = ""

    def to_dict(self) -> dict:
        """The spec as JSON values (as ``result.json`` stores it: tuples become lists)."""
        spec = {"name": self.name, "arch": self.arch, "stem": self.stem, "label": self.label,
                "config": self.config.to_dict()}
        return json.loads(json.dumps(spec))


@dataclass
class RunData:
    """Train and test tensors (uint8 images, long labels) and the evaluation options."""

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    num_classes: int
    curve_size: int = 1000
    eval_batch_size: int = 500
    description: str = ""


def _evaluator(model: torch.nn.Module, data: RunData, place: Dist, *, progress: bool) -> partial:
    images, labels = data.test
    return partial(evaluate_classifier, model, images, labels, batch_size=data.eval_batch_size, device=place.device,
                   progress=progress, seed=0, **EVAL)


def test_accuracy(model: torch.nn.Module, data: RunData, place: Dist) -> float:
    """Top-1 % on the whole test set (no shifts; each rank a strided shard, counts summed over ranks)."""
    shard = torch.arange(len(data.test[0]))[place.rank::place.world]
    return _evaluator(model, data, place, progress=False)(indices=shard, protocols=()).accuracy


def evaluate_model(model: torch.nn.Module, data: RunData, place: Dist, *, progress: bool = True) -> dict:
    """Accuracy and consistency (the protocol family) on the whole test set, and the per-shift curve (offsets
    :data:`CURVE_OFFSETS`) on its first ``curve_size`` images; each rank takes a strided shard, counts are summed
    over ranks."""
    evaluate = _evaluator(model, data, place, progress=progress)
    report = evaluate(indices=torch.arange(len(data.test[0]))[place.rank::place.world])
    out = report.to_dict()
    out["counts"] = {"samples": report.samples, "correct": report.correct,
                     **{f"agree_{k}": v for k, v in report.agree.items()}}
    if data.curve_size:
        curve = evaluate(indices=torch.arange(min(data.curve_size, len(data.test[0])))[place.rank::place.world],
                         protocols=(), curve_offsets=CURVE_OFFSETS).to_dict()
        out.update({key: curve[key] for key in ("curve_offsets", "curve_consistency", "curve_accuracy")},
                   curve_samples=curve["samples"])
    return out


def run_one(spec: RunSpec, data: RunData, run_dir: Path, place: Dist, *, progress: bool = True) -> dict:
    """Train (resuming from ``run_dir/checkpoint.pt``), evaluate, write ``run_dir/result.json``; returns it.

    ``config.batch_size`` is the global batch: each of the ``world`` processes takes ``batch_size / world``
    samples per step.
    """
    if (run_dir / "result.json").is_file():
        return read_result(spec, run_dir / "result.json")
    config, device = spec.config, torch.device(place.device)
    batches = TensorBatches(*(t.to(device) for t in data.train), batch_size=config.batch_size, seed=config.seed,
                            place=place, hflip=config.hflip)
    torch.manual_seed(config.seed)
    model = create_model(spec.arch, data.num_classes, stem=spec.stem).to(device)
    wrap = None
    if place.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrap = partial(DistributedDataParallel, device_ids=[device.index] if device.type == "cuda" else None)
    trainer = Trainer(model, config, steps_per_epoch=batches.steps, wrap=wrap, generator=torch.Generator(device=device))
    desc = f"{spec.name} ({place.world} proc)" if place.world > 1 else spec.name
    best = BestEpoch(model, lambda net: test_accuracy(net, data, place), path=run_dir / "best.pt", write=place.main,
                     identity=spec.to_dict())
    history = fit(trainer, batches.source(), place=place, checkpoint=run_dir / "checkpoint.pt",
                  identity=spec.to_dict(), progress=progress, desc=desc, after_epoch=best)
    began = time.perf_counter()
    metrics = evaluate_model(model, data, place, progress=progress and place.main)
    best_epoch, best_metrics = best.best_epoch(history), metrics
    if best_epoch != history[-1]["epoch"]:
        barrier()
        best.load_best(device)
        best_metrics = evaluate_model(model, data, place, progress=progress and place.main)
    result = {**spec.to_dict(), "world_size": place.world, "device": place.device, "data": data.description,
              "train_seconds": round(sum(row["seconds"] for row in history), 1),
              "eval_seconds": round(time.perf_counter() - began, 1), "history": history, **metrics,
              "best": {"epoch": best_epoch, **best_metrics}}
    if place.main:
        write_json_atomic(run_dir / "result.json", result)
        print(f"{spec.name}: accuracy {result['accuracy']:.2f}%, consistency random {result['consistency_random']:.2f}% "
              f"/ circular {result['consistency_circular']:.2f}% (last epoch; best epoch {best_epoch})", flush=True)
    barrier()
    return result


def _run_list(specs: Sequence[RunSpec], data: RunData, work: Path, device: str, threads: int) -> list[dict]:
    if threads:
        torch.set_num_threads(threads)
    return [run_one(spec, data, work / spec.name, Dist(device=device)) for spec in specs]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: shard 2 (counting from 0) of 8."""
    index, _, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (-1, 0)
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got {text!r}")
    return shard


def shard_of(specs: Sequence[RunSpec], shard: Optional[tuple[int, int]]) -> list[RunSpec]:
    """The specs of one shard ``(i, n)``: every n-th from the i-th (all specs without a shard)."""
    return list(specs) if shard is None else list(specs[shard[0]::shard[1]])


def collect(specs: Sequence[RunSpec], work: Path) -> list[dict]:
    """The results of finished runs, in the order of ``specs``; raises naming the runs that have none yet."""
    missing = [spec.name for spec in specs if not (work / spec.name / "result.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} run(s) have no result.json in {work} yet: {', '.join(missing[:8])}; "
                                "run the missing shards first")
    return [read_result(spec, work / spec.name / "result.json") for spec in specs]


def read_result(spec: RunSpec, path: Path) -> dict:
    """The ``result.json`` at ``path``, checked to be ``spec``'s run."""
    result = json.loads(path.read_text())
    if {k: result.get(k) for k in spec.to_dict()} != spec.to_dict():
        raise ValueError(f"{path} was written by another recipe; use another --workdir")
    return result


def run_sweep(specs: Sequence[RunSpec], data: RunData, work: Path, place: Dist, *,
              devices: Sequence[str] = (), threads: int = 0) -> list[dict]:
    """Run every spec; with several ``devices`` (single-process only), independent runs are dealt round-robin to
    one worker process per entry (e.g. ``cuda:0,cuda:1``, or ``cuda:0,cuda:0`` for two runs sharing a GPU),
    each with ``threads`` torch threads. Results come back in the order of ``specs``. To spread a sweep over
    machines, give each job :func:`shard_of` the specs and :func:`collect` the results at the end."""
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
