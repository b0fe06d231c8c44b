"""What the training benchmarks share on the command line: presets with overrides, the recipe they turn into,
and the data they load."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..config import AugShiftConfig
from ..data import EMBEDDED, load_split, num_classes, open_split
from ..engine import PRECISIONS, Dist, TrainConfig
from ..models import STEMS
from .runs import RunData, RunSpec, collect, parse_shard, run_sweep, shard_of


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by the training benchmarks (``--workdir``, ``--out``, devices, preset overrides)."""
    add = parser.add_argument
    add("--workdir", default=None, help="checkpoints and per-run results (default benchmarks/runs/...)")
    add("--out", default=None, help="results folder (default benchmarks/results/<benchmark>/<preset>)")
    add("--devices", default="", help="spread independent runs over these devices, e.g. cuda:0,cuda:1 or cpu,cpu; "
                                      "repeat a GPU to run several runs on it at once (cuda:0,cuda:0)")
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
    add("--precision", choices=PRECISIONS, default=None,
        help="fp32, or bf16 autocast (default: the preset's; presets with the fast path use bf16 on CUDA)")
    add("--channels-last", action=argparse.BooleanOptionalAction, default=None,
        help="channels-last memory format (default: the preset's; on with the fast path on CUDA)")
    add("--shard", type=parse_shard, default=None, metavar="I/N",
        help="run only shard I of N of the runs (e.g. one SLURM array task each), into the shared --workdir; "
             "then --collect writes the tables")
    add("--collect", action="store_true", help="train nothing: write the tables from the finished runs in --workdir")


def overrides(args: argparse.Namespace, preset: dict, *, device: str = "cpu") -> dict:
    """The preset with the command-line overrides applied; a preset with ``fast_path`` trains in bf16 and
    channels-last on CUDA (fp32 stays the CPU default)."""
    out = dict(preset)
    if out.pop("fast_path", False) and device.startswith("cuda"):
        out.update(precision="bf16", channels_last=True)
    for key in ("train_size", "epochs", "batch_size", "lr", "stem", "curve_size", "test_size", "precision",
                "channels_last"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if args.seeds is not None:
        out["seeds"] = [int(s) for s in args.seeds.split(",")]
    return out


def recipe(preset: dict, *, seed: int, augshift: Optional[AugShiftConfig] = None, **changes) -> TrainConfig:
    """The TrainConfig of a preset (epochs, batch size, lr, flips, precision) for ``seed``, with ``changes``."""
    keys = ("epochs", "batch_size", "lr", "hflip", "precision", "channels_last")
    return TrainConfig(seed=seed, augshift=augshift, **{k: preset[k] for k in keys if k in preset}, **changes)


def load_data(source: str, preset: dict, *, label_column: Optional[str] = None, cache: Optional[Path] = None) -> RunData:
    """Train subset and test set of ``source`` as in the preset."""
    train = load_split(source, "train", limit=preset.get("train_size"), cache=cache, label_column=label_column)
    test = load_split(source, "test", limit=preset.get("test_size"), cache=cache, label_column=label_column)
    # the dataset's ClassLabel says how many classes there are (a subset may lack some); plain integers: max + 1
    classes = int(max(train[1].max(), test[1].max())) + 1 if source == EMBEDDED else num_classes(
        open_split(source, "train"), label_column)
    description = f"{source}: {len(train[0])} train / {len(test[0])} test images, {classes} classes"
    return RunData(train, test, classes, curve_size=preset.get("curve_size", 1000), description=description)


def run_or_collect(specs: Sequence[RunSpec], args: argparse.Namespace, work: Path, place: Dist, *,
                   load: Callable[[], RunData], devices: Sequence[str] = ()) -> Optional[list[dict]]:
    """What ``--collect`` / ``--shard`` ask for: the finished results (``--collect``), this shard's runs and
    ``None`` (``--shard``: the tables wait for ``--collect``), or every run. ``load`` gives the data, only when
    something is trained."""
    if args.collect:
        return collect(specs, work)
    results = run_sweep(shard_of(specs, args.shard), load(), work, place, devices=devices, threads=args.threads)
    return None if args.shard is not None else results
