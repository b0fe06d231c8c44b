"""What the training benchmarks share on the command line: presets with overrides, the recipe they turn into,
and the data they load."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence

from augshift.arguments import add_limit_arguments, positive_float, whole
from augshift.config import AugShiftConfig
from augshift.data import Normalization, load_split
from augshift.data.hub import num_classes
from augshift.data.splits import EMBEDDED, eval_split, open_split
from augshift.distributed import Dist
from augshift.engine import TrainConfig
from augshift.engine.config import PRECISIONS, fast_path
from augshift.models import create_model
from augshift.models.stem import STEMS
from augshift.errors import UsageError
from augshift.protocols import PROTOCOL_FAMILY, WORST, add_protocols_argument, crop_protocols
from augshift.reporting.files import check_output_folder

from .launch import RunsFailed, add_launch_args, submit_runs
from .runs import RunData, run_sweep, traced_protocols
from .shards import collect, parse_shard, shard_of
from .spec import RunSpec


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by the training benchmarks (`--workdir`, `--out`, devices, preset overrides).

    Adds `--workdir`, `--out`, `--devices`, `--device`, `--threads`, the preset overrides
    (`--train-size`, `--test-size`, `--epochs`, `--batch-size`, `--lr`, `--seeds`, `--stem`,
    `--curve-size`, `--precision`, `--channels-last`, `--compile`; `None` when not given, see
    `overrides`), `--shard I/N`, `--collect`, `--protocols` (default: the protocol family) and
    `--trace-protocols` (those of the per-epoch trace; default: the pair protocols of `--protocols`).

    Args:
        parser: the benchmark script's parser, changed in place.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_common_args(parser)
        >>> args = parser.parse_args(["--epochs", "2", "--shard", "0/4", "--no-compile"])
        >>> args.epochs, args.lr, args.shard, args.compile, args.collect
        (2, None, (0, 4), False, False)
    """
    add = parser.add_argument
    add("--workdir", default=None, help="checkpoints and per-run results (default benchmarks/runs/...)")
    add("--out", default=None, help="results folder (default benchmarks/results/<benchmark>/<preset>)")
    add("--devices", default="", help="spread independent runs over these devices, e.g. cuda:0,cuda:1 or cpu,cpu; "
                                      "repeat a GPU to run several runs on it at once (cuda:0,cuda:0)")
    add("--device", default=None, help="device of this process (default: cuda:<LOCAL_RANK> if available, else cpu)")
    add("--threads", type=whole(0), default=0, help="torch threads per process (default: torch's choice)")
    add_limit_arguments(parser, train=("train_size", None), evaluate=("test_size", None),
                        help_train="train on the first N images (overrides the preset)",
                        help_eval="evaluate on the first N images (default: all)")
    add("--epochs", type=whole(1), default=None, help="overrides the preset")
    add("--batch-size", type=whole(1), default=None, help="global batch size (overrides the preset)")
    add("--lr", type=positive_float, default=None, help="peak learning rate (overrides the preset)")
    add("--seeds", type=seed_list, default=None, help="comma-separated seeds, each once (overrides the preset)")
    add("--stem", choices=STEMS, default=None, help="first layers of every model (overrides the preset)")
    add("--curve-size", type=whole(0), default=None, help="test images for the per-shift curve")
    add("--image-size", type=whole(1), default=None, help="train at this side (presets of larger images; overrides it)")
    add("--crop-from", type=whole(1), default=None,
        help="test images at this side for the crop protocols (overrides it)")
    add("--precision", choices=PRECISIONS, default=None,
        help="fp32, or bf16 autocast (default: the preset's; presets with the fast path use bf16 on CUDA)")
    add("--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="channels-last memory format (default: the preset's; on with the fast path on CUDA)")
    add("--compile", action=argparse.BooleanOptionalAction, default=None,
        help="the captured step: torch.compile of forward and backward, CUDA graphs on CUDA, the last partial batch "
             "of each epoch dropped (default: the preset's; on with the fast path on CUDA)")
    either = parser.add_mutually_exclusive_group()
    either.add_argument("--shard", type=parse_shard, default=None, metavar="I/N",
                        help="run only shard I of N of the runs (e.g. one SLURM array task each), into the shared "
                             "--workdir; then --collect writes the tables")
    either.add_argument("--collect", action="store_true",
                        help="train nothing: write the tables from the finished runs in --workdir")
    add_protocols_argument(parser, default=PROTOCOL_FAMILY)
    add_protocols_argument(parser, "--trace-protocols", default=())
    parser.set_defaults(trace_protocols=())
    add_launch_args(parser)


def check_common_args(args: argparse.Namespace, out: Path, preset: dict) -> None:
    """What `add_common_args`' options must satisfy, checked before any data is loaded or any run trained: the
    output folder can be written (`out`: `--out` or the script's default), the trace takes pair protocols only,
    the tables have a pair protocol to compare, and a crop protocol comes with larger test images (`crop_from` in
    the `preset`, after `overrides`).

    Examples:
        >>> args = argparse.Namespace(protocols=("random_worst",), trace_protocols=())
        >>> check_common_args(args, Path("out"), {})
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: --protocols random_worst has no pair protocol for the tables, the per-epoch trace and the plots to compare: add one (e.g. random)
    """
    if not any(not name.endswith(WORST) for name in args.protocols):
        raise UsageError(f"--protocols {','.join(args.protocols)} has no pair protocol for the tables, the per-epoch "
                         "trace and the plots to compare: add one (e.g. random)")
    traced_protocols(args.protocols, args.trace_protocols)
    larger = crop_protocols([*args.protocols, *args.trace_protocols])
    if larger and not preset.get("crop_from"):
        raise UsageError(f"{', '.join(larger)} evaluate(s) crops of test images larger than the model's input: pass "
                         "--crop-from (the test images' side) and --image-size (the models' input), or leave "
                         f"{', '.join(larger)} out")
    check_output_folder(out, option="--out")


def overrides(args: argparse.Namespace, preset: dict, *, device: str = "cpu") -> dict:
    """The preset with the command-line overrides applied; a preset with `fast_path` trains in bf16, channels-last
    and with the captured step (`compile`) on CUDA (eager fp32 stays the CPU default).

    Args:
        args: the parsed options of `add_common_args` (an option left at `None` keeps the preset's value;
            `--seeds 0,1` becomes `seeds=[0, 1]`).
        preset: the benchmark's preset (`epochs`, `batch_size`, `lr`, `seeds`, `fast_path`...); not
            changed.
        device: the device the runs train on (`fast_path` acts only on CUDA); with `--launcher submitit` the
            jobs' device instead: `--device`, else CUDA when `--gpus-per-task` is above 0.

    Returns:
        A new dict: the preset without `fast_path`, with the fast path's settings and the overrides applied.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_common_args(parser)
        >>> args = parser.parse_args(["--epochs", "3", "--seeds", "0,1"])
        >>> preset = {"epochs": 10, "lr": 0.05, "fast_path": True}
        >>> overrides(args, preset)
        {'epochs': 3, 'lr': 0.05, 'seeds': [0, 1]}
        >>> overrides(args, preset, device="cuda:0")
        {'epochs': 3, 'lr': 0.05, 'precision': 'bf16', 'channels_last': True, 'compile': True, 'seeds': [0, 1]}
    """
    out = dict(preset)
    if getattr(args, "launcher", "local") == "submitit":  # the runs train on the jobs' device, not this one's
        device = args.device or ("cuda" if args.gpus_per_task > 0 else "cpu")
    if out.pop("fast_path", False):
        out.update(fast_path(device))
    for key in ("train_size", "epochs", "batch_size", "lr", "stem", "curve_size", "test_size", "precision",
                "channels_last", "compile", "image_size", "crop_from"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if args.seeds is not None:
        out["seeds"] = list(args.seeds)
    return out


def seed_list(text: str) -> list[int]:
    """An `argparse` type: comma-separated whole-number seeds, each once (a seed given twice would be one run
    counted as two).

    Examples:
        >>> seed_list("0,1,2")
        [0, 1, 2]
        >>> seed_list("0,0")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: seed 0 is given twice: each seed is one run; give it once
    """
    parts = [part.strip() for part in text.split(",")]
    if not all(part.lstrip("-").isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}")
    seeds = [int(part) for part in parts]
    twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"seed {', '.join(map(str, twice))} is given twice: each seed is one run; "
                                         "give it once")
    return seeds


def recipe(preset: dict, *, seed: int, augshift: Optional[AugShiftConfig] = None, **changes) -> TrainConfig:
    """The TrainConfig of a preset (epochs, batch size, lr, flips, precision) for `seed`: AugShift with `augshift`,
    else the default shift augmentation (one shifted view); `changes` override.

    Args:
        preset: the benchmark's preset (after `overrides`); its `epochs`, `batch_size`, `lr`, `weight_decay`,
            `hflip`, `precision`, `channels_last` and `compile` are used, when present.
        seed: the run's seed.
        augshift: train with AugShift, with these options (e.g. from `parse_model`);
            `None`: one shifted view (the default `AugShiftConfig`'s shifts).
        **changes: `TrainConfig` fields set otherwise than the preset (e.g. `schedule="constant"`, `epochs=12`).

    Returns:
        The `TrainConfig`.

    Examples:
        >>> preset = {"epochs": 2, "batch_size": 64, "lr": 0.1, "hflip": True, "train_size": 500}
        >>> config = recipe(preset, seed=1)
        >>> config.epochs, config.batch_size, config.hflip, config.seed, config.augshift
        (2, 64, True, 1, False)
        >>> config = recipe(preset, seed=1, augshift=AugShiftConfig(distance="mse"), schedule="constant")
        >>> config.augshift, config.shift.distance, config.schedule
        (True, 'mse', 'constant')
    """
    keys = ("epochs", "batch_size", "lr", "weight_decay", "hflip", "precision", "channels_last", "compile")
    shift = dict(shift=augshift, augshift=True) if augshift is not None else dict(shift=AugShiftConfig())  # pad-4-crop
    return TrainConfig(seed=seed, **shift, **{**{k: preset[k] for k in keys if k in preset}, **changes})


def load_data(source: str, preset: dict, *, label_column: Optional[str] = None, cache: Optional[Path] = None,
              protocols: tuple[str, ...] = PROTOCOL_FAMILY, trace_protocols: tuple[str, ...] = ()) -> RunData:
    """Train subset and test set of `source` as in the preset, normalised with the training images' statistics.

    Args:
        source: the dataset: `shapes` (embedded, generated) or a Hugging Face dataset (hub id or local folder,
            `load_split`).
        preset: the benchmark's preset: `train_size` (the first N training images; `shapes` needs it),
            `test_size` (the first N test images; default all; `shapes` needs it) and `curve_size` (default
            1000); `image_size` (images larger or of several sizes: the shorter side resized to it, the centre
            square kept) and `crop_from` (the test images at this side instead, for the `crop` protocols; the
            models see their centre `image_size` crop).
        label_column: the dataset's label column (default: found by `load_split`).
        cache: a folder where decoded splits are kept.
        protocols: the consistency protocols the runs are evaluated with.
        trace_protocols: those of the per-epoch trace (`()`: the pair protocols of `protocols`).

    Returns:
        The `RunData`: `uint8` images (N, 3, H, W) and labels (N,) of both splits, the
        number of classes (the dataset's `ClassLabel`; for `shapes` the largest label + 1), the training
        images' `Normalization` and a description.

    Examples:
        >>> data = load_data("shapes", {"train_size": 8, "test_size": 4, "curve_size": 0}, protocols=("random",))
        >>> tuple(data.train[0].shape), tuple(data.test[0].shape), data.curve_size, data.protocols
        ((8, 3, 32, 32), (4, 3, 32, 32), 0, ('random',))
        >>> data.description
        'shapes: 8 train / 4 test images, ... classes'
    """
    size = preset.get("image_size")
    train = load_split(source, "train", limit=preset.get("train_size"), cache=cache, label_column=label_column,
                       size=size, centre_crop=size is not None)
    test = load_split(source, "test" if source == EMBEDDED else eval_split(source), limit=preset.get("test_size"),
                      cache=cache, label_column=label_column, size=preset.get("crop_from") or size,
                      centre_crop=size is not None)
    normalization = Normalization.of_images(train[0], source=f"the {len(train[0])} training images of {source}")
    # the dataset's ClassLabel says how many classes there are (a subset may lack some); plain integers: max + 1
    classes = int(max(train[1].max(), test[1].max())) + 1 if source == EMBEDDED else num_classes(
        open_split(source, "train"), label_column)
    description = f"{source}: {len(train[0])} train / {len(test[0])} test images, {classes} classes"
    return RunData(train, test, classes, normalization, curve_size=preset.get("curve_size", 1000),
                   description=description, protocols=protocols, trace_protocols=trace_protocols,
                   crop_size=size if preset.get("crop_from") else None)


def run_inputs(source: str, preset: dict, args: argparse.Namespace) -> dict:
    """What a run trains and is evaluated on, as the command asks (part of every run's identity, `RunSpec`): the
    source, the sample limits, the per-shift curve's size, the protocols of the tables and of the trace, and the
    package version.

    Args:
        source: the data source (`load_data`'s).
        preset: the preset after the command-line overrides (`train_size`, `test_size`, `curve_size`).
        args: the parsed options of `add_common_args` (`protocols`, `trace_protocols`).

    Examples:
        >>> args = argparse.Namespace(protocols=("random",), trace_protocols=())
        >>> identity = run_inputs("shapes", {"train_size": 8, "test_size": 4}, args)
        >>> identity["train_size"], identity["curve_size"], identity["protocols"]
        (8, 1000, ['random'])
    """
    import augshift

    return {"source": str(source), "train_size": preset.get("train_size"), "test_size": preset.get("test_size"),
            "curve_size": preset.get("curve_size", 1000), "protocols": list(args.protocols),
            "trace_protocols": list(args.trace_protocols), "augshift": augshift.__version__}


def run_or_collect(specs: Sequence[RunSpec], args: argparse.Namespace, work: Path, place: Dist, *,
                   load: Callable[[], RunData], inputs: dict, devices: Sequence[str] = ()) -> Optional[list[dict]]:
    """What `--collect` / `--shard` / `--launcher` ask for: the finished results (`--collect`), this shard's
    runs and `None` (`--shard`: the tables wait for `--collect`), the missing runs submitted as one job array
    (`--launcher submitit`: `sweep.launch.submit_runs`; then every result, or `None` with `--no-wait`), or every
    run here. `load` gives the data, only when something is trained here (it is not called for `--collect`; with
    submitit each job calls it). Every model is built once before anything is trained (an unknown one is refused
    first).

    Args:
        specs: the benchmark's runs, in order.
        args: the parsed options of `add_common_args` (`collect`, `shard`, `threads` are read).
        work: the sweep's folder (`--workdir`).
        place: this process's `Dist`.
        load: a function returning the `RunData` (e.g. `load_data` with its arguments
            bound), called only when runs are run.
        inputs: what the runs must train and be evaluated on (`run_inputs`), made part of every spec's identity:
            a run in `work` made on other data, limits or protocols is refused, not reported.
        devices: devices to spread the runs over (`run_sweep`).

    Returns:
        The results in the order of `specs` (`--collect`, or no `--shard`), or `None` for `--shard` and
        `--no-wait`; with submitit, when runs failed, those of the runs that finished (`sweep.shards.missing_runs`
        names the others).
    """
    specs = [replace(spec, inputs=inputs) for spec in specs]
    if args.collect:
        return collect(specs, work)
    for arch, stem in dict.fromkeys((spec.arch, spec.stem) for spec in specs if not spec.init):
        create_model(arch, 2, stem=stem)  # an unknown model is refused now, not after the runs before it trained
    if getattr(args, "launcher", "local") == "submitit":
        if args.shard is not None or args.devices:
            raise UsageError("--launcher submitit submits every missing run, one job each: drop --shard and "
                             "--devices (they spread runs over this machine's devices or your own job array)")
        try:
            submit_runs(specs, args, work, load=getattr(load, "__wrapped__", load))  # a job pickles it: no cache
        except RunsFailed as failed:  # named with their logs; the tables are made of the runs that finished
            print(failed, file=sys.stderr, flush=True)
            results = collect(specs, work, allow_missing=True)
            if not results:
                raise UsageError(f"every run of {work} failed (their logs are above): nothing to tabulate") from None
            return results
        return None if args.no_wait else collect(specs, work)
    data = load()
    small = sorted({spec.config.batch_size for spec in specs if spec.config.batch_size > len(data.train[0])})
    if small and place.main:  # said, not silent: the tables' "global batch" is not what a step holds
        print(f"note: the training set has {len(data.train[0])} images, fewer than the global batch of {small[-1]}: "
              f"every epoch is one step of {len(data.train[0])} images", file=sys.stderr)
    results = run_sweep(shard_of(specs, args.shard), data, work, place, devices=devices, threads=args.threads)
    return None if args.shard is not None else results
