"""Benchmark runs: one (model, recipe, seed) trained and evaluated by `run_one`, resumably, in one process
or data-parallel (`torchrun` / `accelerate launch`); `run_sweep` runs a list of them, here or spread
over devices (several processes may share one GPU), or only this shard's part of it.

A run writes `<workdir>/<name>/checkpoint.pt` after every epoch (atomically; an interrupted run continues
from it) and `result.json` at the end; a run whose `result.json` exists is read back, not redone. The test
set is evaluated with `augshift.ShiftConsistency`: every process evaluates its shard and the counts are
summed, so the numbers equal a single-process evaluation.
"""
from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from augshift.data.stats import Normalization
from augshift.engine import TensorBatches, TrainConfig, Trainer, evaluate_classifier, fit
from augshift.distributed import Dist, barrier
from augshift.engine.best_epoch import BestEpoch
from augshift.errors import UsageError
from augshift.protocols import PROTOCOL_FAMILY, WORST
from augshift.views import offsets_to
from augshift.reporting.files import write_json_atomic
from .outcomes import pack_outcomes
from .shards import check_identity, read_result
from .spec import RunSpec

# the evaluation (fixed, whatever the training recipe): shifts of up to 4 px with a zero border for random / circular,
# and the per-shift curve out to 16 px; the protocols are RunData's
EVAL = dict(max_shift=4, mode="zeros")
CURVE_OFFSETS = offsets_to(16)


@dataclass
class RunData:
    """Train and test tensors (uint8 images, long labels), their `normalization` (the training images' own
    statistics: every model is trained from scratch) and the evaluation options (`protocols`: those of
    `augshift.protocols`).

    Args:
        train: the training `(images, labels)`: `uint8` (N, C, H, W) and `long` (N,).
        test: the test `(images, labels)`: `uint8` (M, C, H, W) and `long` (M,).
        num_classes: the number of classes (the models' outputs).
        normalization: the per-channel statistics every model's inputs are normalised with (those of the
            training images, `Normalization.of_images`).
        curve_size: test images (the first ones) for the per-shift curve (offsets out to 16 px: the images must be
            larger than that); 0: no curve.
        eval_batch_size: images per forward in the evaluation.
        description: the data in words, recorded in each `result.json`.
        protocols: the consistency protocols evaluated (those of `augshift.protocols`).
        trace_protocols: the protocols of the per-epoch trace (`epoch_trace`; pair protocols only: a worst case
            costs a forward per offset of its grid); `()`: the pair protocols of `protocols`.
        crop_size: the models' input side when the test images are larger (the `crop` protocols: Zhang's
            256 -> 224); `None`: the test images are the models' size.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> images = torch.randint(0, 256, (24, 3, 20, 20), dtype=torch.uint8, generator=g)
        >>> labels = torch.randint(0, 3, (24,), generator=g)
        >>> normalization = Normalization.of_images(images[:16], source="the 16 training images")
        >>> data = RunData((images[:16], labels[:16]), (images[16:], labels[16:]), 3, normalization, curve_size=0,
        ...                description="random pixels", protocols=("random", "circular"))
        >>> len(data.train[0]), len(data.test[0]), data.eval_batch_size
        (16, 8, 500)
    """

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    num_classes: int
    normalization: Normalization
    curve_size: int = 1000
    eval_batch_size: int = 500
    description: str = ""
    protocols: tuple[str, ...] = PROTOCOL_FAMILY
    trace_protocols: tuple[str, ...] = ()
    crop_size: Optional[int] = None

    def traced(self) -> tuple[str, ...]:
        """The protocols of the per-epoch trace (`traced_protocols`)."""
        return traced_protocols(self.protocols, self.trace_protocols)


def traced_protocols(protocols: Sequence[str], trace_protocols: Sequence[str] = ()) -> tuple[str, ...]:
    """The protocols of a run's per-epoch trace: `trace_protocols`, else the pair protocols of `protocols`; a
    worst case among them raises `UsageError` (it costs a forward per offset of its grid, every epoch).

    Examples:
        >>> traced_protocols(("random", "circular_worst")), traced_protocols(("random",), ("circular",))
        (('random',), ('circular',))
    """
    traced = tuple(trace_protocols) or tuple(p for p in protocols if not p.endswith(WORST))
    worst = [p for p in traced if p.endswith(WORST)]
    if worst:
        raise UsageError(f"the per-epoch trace takes pair protocols only, not {', '.join(worst)} (a worst case "
                         "costs a forward per offset of its grid, every epoch): name others with --trace-protocols")
    return traced


def _evaluator(model: torch.nn.Module, data: RunData, place: Dist, *, progress: bool) -> partial:
    images, labels = data.test
    return partial(evaluate_classifier, model, images, labels, normalization=data.normalization,
                   batch_size=data.eval_batch_size, device=place.device, progress=progress, seed=0, **EVAL,
                   **({"crop_size": data.crop_size} if data.crop_size else {}))


def epoch_trace(model: torch.nn.Module, data: RunData, place: Dist) -> dict:
    """One point of a run's per-epoch trace: top-1 and the consistency under each protocol of `RunData.traced`
    (pair protocols: worst cases are left to the final evaluation, their grids cost many forwards) on the whole
    test set, with the per-image outcomes; each rank a strided shard, counts summed over ranks.

    Returns:
        `{"test_accuracy": %, "test_consistency_<protocol>": %, ..., "outcomes": pack_outcomes(...)}`.
    """
    shard = torch.arange(len(data.test[0]))[place.rank::place.world]
    protocols = data.traced()
    report = _evaluator(model, data, place, progress=False)(indices=shard, protocols=protocols)
    return {"test_accuracy": report.accuracy,
            **{f"test_consistency_{p}": report.consistency(p) for p in protocols}, "outcomes": pack_outcomes(report)}


def evaluate_model(model: torch.nn.Module, data: RunData, place: Dist, *, progress: bool = True) -> dict:
    """Accuracy and consistency (the protocol family) on the whole test set, and the per-shift curve (offsets
    `CURVE_OFFSETS`) on its first `curve_size` images; each rank takes a strided shard, counts are summed
    over ranks.

    The evaluation is fixed whatever the training recipe (`EVAL`: shifts of up to 4 px, zero border, seed 0).

    Args:
        model: the trained classifier (on `place.device`).
        data: the `RunData` whose test set, `normalization`, `protocols`, `curve_size` and
            `eval_batch_size` are used.
        place: this process's `Dist`.
        progress: show progress bars.

    Returns:
        `ConsistencyReport.to_dict` of the test set
        (`samples`, `accuracy`, `consistency_<protocol>`... with `_ci95` intervals), its integer
        `counts` (`samples`, `correct`, `agree_<protocol>`, `robust_<worst protocol>`), the same per image
        as `outcomes` (`pack_outcomes`), and with a curve
        `curve_offsets`, `curve_consistency`, `curve_accuracy` (S x S grids) and `curve_samples`.

    Examples:
        >>> from augshift.models.small_cnn import create_small_cnn
        >>> g = torch.Generator().manual_seed(0)
        >>> images = torch.randint(0, 256, (24, 3, 20, 20), dtype=torch.uint8, generator=g)
        >>> labels = torch.randint(0, 3, (24,), generator=g)
        >>> normalization = Normalization.of_images(images[:16], source="the 16 training images")
        >>> data = RunData((images[:16], labels[:16]), (images[16:], labels[16:]), 3, normalization, curve_size=2,
        ...                protocols=("random", "circular"))
        >>> metrics = evaluate_model(create_small_cnn(3, width=4), data, Dist(), progress=False)
        >>> metrics["samples"], metrics["curve_samples"], sorted(metrics["counts"])
        (8, 2, ['agree_circular', 'agree_random', 'correct', 'samples'])
        >>> len(metrics["curve_offsets"]), len(metrics["curve_consistency"])
        (17, 17)
    """
    evaluate = _evaluator(model, data, place, progress=progress)
    report = evaluate(indices=torch.arange(len(data.test[0]))[place.rank::place.world], protocols=data.protocols)
    out = report.to_dict()
    out["counts"] = {"samples": report.samples, "correct": report.correct,
                     **{f"agree_{k}": v for k, v in report.agree.items()},
                     **{f"robust_{k}": v for k, v in report.robust.items()}}
    out["outcomes"] = pack_outcomes(report)
    if data.curve_size:
        curve = evaluate(indices=torch.arange(min(data.curve_size, len(data.test[0])))[place.rank::place.world],
                         protocols=(), curve_offsets=CURVE_OFFSETS).to_dict()
        out.update({key: curve[key] for key in ("curve_offsets", "curve_consistency", "curve_accuracy")},
                   curve_samples=curve["samples"])
    return out


def run_one(spec: RunSpec, data: RunData, run_dir: Path, place: Dist, *, progress: bool = True) -> dict:
    """Train (resuming from `run_dir/checkpoint.pt`), evaluate, write `run_dir/result.json`; returns it.

    `config.batch_size` is the global batch: each of the `world` processes takes `batch_size / world`
    samples per step. The test top-1 is measured after every epoch and the best epoch's weights are kept in
    `run_dir/best.pt` (`BestEpoch`); when the best is not the last epoch, its weights are
    evaluated too. A run whose `result.json` exists is read back (`read_result`), not redone. The main
    process prints one summary line (accuracy and the consistency under each protocol).

    Args:
        spec: the run (`RunSpec`: model, recipe, seed).
        data: the `RunData` to train and evaluate on.
        run_dir: the run's folder (created when missing): `checkpoint.pt`, `best.pt`, `result.json`.
        place: this process's `Dist` (data-parallel runs wrap the model in DDP).
        progress: show progress bars (main process only).

    Returns:
        The result: the spec (`RunSpec.to_dict`), `world_size`, `device`, `data`, `normalization`,
        `train_seconds`, `image_passes` (`image_passes`: the training cost), `eval_seconds`, `history`
        (`fit`'s rows, each with the epoch's trace, `epoch_trace`: test top-1, consistency under the pair protocols
        and their per-image outcomes), the last epoch's metrics (`evaluate_model`) and `best` (the best epoch's
        `epoch` and metrics).
    """
    if (run_dir / "result.json").is_file():
        return read_result(spec, run_dir / "result.json")
    if (run_dir / "checkpoint.pt").is_file():  # an interrupted run: resumed only if it is this one
        stored = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False).get("identity")
        check_identity(spec, stored or {}, run_dir / "checkpoint.pt")
    config, device = spec.config, torch.device(place.device)
    batches = TensorBatches(*(t.to(device) for t in data.train), batch_size=config.batch_size, seed=config.seed,
                            normalization=data.normalization, place=place, hflip=config.hflip,
                            drop_last=config.compile)
    torch.manual_seed(config.seed)
    model = spec.create(data.num_classes).to(device)
    wrap = None
    if place.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrap = partial(DistributedDataParallel, device_ids=[device.index] if device.type == "cuda" else None)
    trainer = Trainer(model, config, steps_per_epoch=batches.steps, wrap=wrap, generator=torch.Generator(device=device))
    desc = f"{spec.name} ({place.world} proc)" if place.world > 1 else spec.name
    best = BestEpoch(model, lambda net: epoch_trace(net, data, place), path=run_dir / "best.pt", write=place.main,
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
              "normalization": data.normalization.to_dict(),
              "train_seconds": round(sum(row["seconds"] for row in history), 1),
              "image_passes": image_passes(config, batches.steps, len(data.train[0])),
              "eval_seconds": round(time.perf_counter() - began, 1), "history": history, **metrics,
              "best": {"epoch": best_epoch, **best_metrics}}
    if place.main:
        write_json_atomic(run_dir / "result.json", result)
        consistency = ", ".join(f"{p} {result[f'consistency_{p}']:.2f}%" for p in data.protocols)
        print(f"{spec.name}: accuracy {result['accuracy']:.2f}%, consistency {consistency} (last epoch; best epoch "
              f"{best_epoch})", flush=True)
    barrier()
    return result


def image_passes(config: TrainConfig, steps: int, train_images: int) -> int:
    """The training cost of a recipe in image-passes: images through the model (forward and backward) over all
    epochs; an AugShift step passes each image twice (two views).

    Args:
        config: the recipe (`epochs`, `batch_size`, `compile` (the last partial batch dropped), `augshift`).
        steps: steps per epoch.
        train_images: images in the training set.

    Examples:
        >>> from augshift.config import AugShiftConfig
        >>> augshift = TrainConfig(epochs=2, batch_size=128, shift=AugShiftConfig(), augshift=True)
        >>> image_passes(TrainConfig(epochs=2, batch_size=128), 8, 1000), image_passes(augshift, 8, 1000)
        (2000, 4000)
    """
    per_epoch = steps * config.batch_size if config.compile else train_images
    return config.epochs * per_epoch * (2 if config.augshift else 1)


def _run_list(specs: Sequence[RunSpec], data: RunData, work: Path, device: str, threads: int) -> list[dict]:
    if threads:
        torch.set_num_threads(threads)
    return [run_one(spec, data, work / spec.name, Dist(device=device)) for spec in specs]


def run_sweep(specs: Sequence[RunSpec], data: RunData, work: Path, place: Dist, *,
              devices: Sequence[str] = (), threads: int = 0) -> list[dict]:
    """Run every spec; with several `devices` (single-process only), independent runs are dealt round-robin to
    one worker process per entry (e.g. `cuda:0,cuda:1`, or `cuda:0,cuda:0` for two runs sharing a GPU),
    each with `threads` torch threads. Results come back in the order of `specs`. To spread a sweep over
    machines, give each job `shard_of` the specs and `collect` the results at the end.

    Args:
        specs: the runs (`RunSpec`), each trained by `run_one` into `work / spec.name` (finished
            ones are read back).
        data: the `RunData` every run trains and evaluates on.
        work: the sweep's folder.
        place: this process's `Dist`; a data-parallel process runs every spec with the
            others, on its own device.
        devices: devices for the runs: none (`place.device`), one (every run on it), or several (one spawned
            worker process each, single-process only).
        threads: torch threads per worker process (0: torch's threads shared out among the workers).

    Returns:
        The runs' results (`run_one`), in the order of `specs`.
    """
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
