"""Fine-tuning benchmark: make an already trained model shift-consistent without retraining it from scratch.
From a trained checkpoint, k epochs of AugShift against k epochs of plain fine-tuning and 2k epochs of plain
fine-tuning (the image-passes of k AugShift epochs: the same compute), each seed from the same weights.

    python benchmarks/finetune.py --checkpoint runs/resnet18_seed0/best.pt --model resnet18   # a plain state_dict
    python benchmarks/finetune.py --checkpoint output/train/20261203-resnet18/model_best.pth.tar  # timm train.py
    python benchmarks/finetune.py --checkpoint my-model.pt                # a file written by --save-model
    python benchmarks/finetune.py --checkpoint ./vit-cifar10 --epochs 1   # a transformers save_pretrained folder

The checkpoint is anything `augshift.models.load_model` reads; its recorded normalisation is used (else the
training images' statistics). Every row is evaluated before training (the starting point, shared) and after
every epoch, so the tables give each row's consistency gained over the start per unit of extra compute
(points per epoch-equivalent of plain training: one pass of the training set), consistency at matched accuracy
along the fine-tuning traces, and paired intervals for AugShift against both plain rows. Writes `results.json`,
`results.md` and `consistency_at_accuracy_<dataset>.png` under `--out`; runs resume from `--workdir`.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from paths import RESULTS, WORK, source_of

from augshift.arguments import Parser
from augshift.config import AugShiftConfig
from augshift.distributed import init_distributed
from augshift.errors import UsageError, run_command
from augshift import logits_of
from augshift.data.stats import normalize
from augshift.models import load_model
from augshift.reporting.files import write_json_atomic
from augshift.reporting.plots import plot_consistency_at_accuracy
from augshift.reporting.provenance import command_line
from augshift.reporting.results import write_results
from sweep import (
    RunSpec, add_common_args, check_common_args, comparison_table, load_data, overrides, paired_differences,
    parse_model, recipe, run_inputs, run_or_collect, summarize, summary_table,
)
from sweep.shards import check_identity
from sweep.matched import matched_comparisons, matched_table, row_traces
from sweep.runs import epoch_trace

PRESETS = {
    # 2 CPU cores: the quick invariance preset's data (20k CIFAR-10 training images, the whole test set), k = 2
    "quick": dict(datasets=["cifar10"], seeds=[0, 1], train_size=20_000, test_size=None, epochs=2, batch_size=128,
                  lr=0.01, hflip=True, curve_size=0),
    # GPUs: the full training set, k = 10 epochs from a model trained with the paper preset
    "paper": dict(datasets=["cifar10"], seeds=[0, 1, 2], train_size=None, test_size=None, epochs=10,
                  batch_size=128, lr=0.01, hflip=True, curve_size=0, fast_path=True),
}


def rows_for(k: int) -> dict[str, tuple[bool, int]]:
    """The rows: label -> (AugShift, epochs)."""
    def epochs(n: int) -> str:
        return f"{n} epoch{'s' if n != 1 else ''}"

    return {f"plain, {epochs(k)}": (False, k), f"plain, {epochs(2 * k)} (same compute)": (False, 2 * k),
            f"augshift, {epochs(k)}": (True, k)}


def specs_for(arch: str, checkpoint: str, preset: dict, augshift: AugShiftConfig) -> list[RunSpec]:
    specs = []
    for seed in preset["seeds"]:
        for label, (with_augshift, epochs) in rows_for(preset["epochs"]).items():
            config = recipe(preset, seed=seed, augshift=augshift if with_augshift else None, epochs=epochs)
            name = f"{'augshift' if with_augshift else 'plain'}_{epochs}ep_seed{seed}"
            specs.append(RunSpec(name, arch, config, label=label, init=checkpoint))
    return specs


def start_point(checkpoint: str, arch: str, data, place, path: Path, *, identity: dict) -> dict:
    """The checkpoint's own evaluation (the start every row shares), kept in `path` with the identity of what was
    evaluated (the checkpoint's content and the data): a start of another checkpoint or data is refused."""
    spec = RunSpec("start", arch, recipe({}, seed=0), init=checkpoint, inputs=identity)
    if path.is_file():
        point = json.loads(path.read_text())
        check_identity(spec, point.get("identity", {}), path)
        return point
    model = spec.create(data.num_classes).to(place.device)
    point = {**epoch_trace(model, data, place), "identity": spec.to_dict()}
    if place.main:
        write_json_atomic(path, point)
    return point


def gains(summary: dict, start: dict, train_images: int, protocols: tuple[str, ...]) -> str:
    """Markdown: each row's consistency gained over the start, and per epoch-equivalent of plain compute."""
    lines = ["| row | image-passes (M) | plain-epoch equivalents | " + " | ".join(
        f"Δ cons. {p} vs start (points) | per plain-epoch" for p in protocols) + " | Δ top-1 vs start |",
             "|---|---|---|" + "---|---|" * len(protocols) + "---|"]
    for label, row in summary.items():
        epochs = row["image_passes"] / train_images
        cells = []
        for p in protocols:
            gained = row[f"consistency_{p}"] - start[f"test_consistency_{p}"]
            cells += [f"{gained:+.2f}", f"{gained / epochs:+.2f}"]
        lines.append(f"| {label} | {row['image_passes'] / 1e6:.2f} | {epochs:.1f} | " + " | ".join(cells)
                     + f" | {row['accuracy'] - start['test_accuracy']:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help="the trained model: a --save-model file, a timm train.py checkpoint or folder, a "
                             "save_pretrained folder, or a plain state_dict (with --model)")
    parser.add_argument("--model", default=None, help="the architecture, for a plain state_dict (e.g. resnet18)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick")
    parser.add_argument("--data", default=None, help="hub name, parquet file/folder or image folder (default: the "
                                                      "shared local CIFAR-10 when present, else uoft-cs/cifar10)")
    parser.add_argument("--augshift", default="", metavar="DISTANCE[@WEIGHT]",
                        help="AugShift's loss for the fine-tuning (default: the library's, e.g. mse@3)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    command, began = command_line(), time.time()
    place = init_distributed(args.device)
    preset = overrides(args, PRESETS[args.preset], device=place.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.checkpoint, model=args.model)
    arch = loaded.name
    _, augshift = parse_model(f"{arch}+augshift" + (f":{args.augshift}" if args.augshift else ""))
    source = args.data or source_of(preset["datasets"][0])
    out = Path(args.out) if args.out else RESULTS / "finetune" / args.preset
    work = Path(args.workdir) if args.workdir else WORK / "finetune" / args.preset
    check_common_args(args, out, preset)
    data = load_data(source, preset, cache=work / "cache", protocols=args.protocols,
                     trace_protocols=args.trace_protocols)
    if loaded.normalization is not None:
        data = replace(data, normalization=loaded.normalization)
    pair_protocols = data.traced()
    with torch.no_grad():
        classes = logits_of(loaded.model(normalize(data.test[0][:1], data.normalization))).shape[1]
    if classes != data.num_classes:
        raise UsageError(f"{args.checkpoint} has {classes} classes and {source} has {data.num_classes}: fine-tune a "
                         "checkpoint trained on this data (or pass the --data it was trained on)")
    identity = run_inputs(source, preset, args)
    start = start_point(args.checkpoint, arch, data, place, work / "start.json", identity=identity)
    specs = specs_for(arch, args.checkpoint, preset, augshift)
    results = run_or_collect(specs, args, work, place, load=lambda: data, inputs=identity)
    if results is None or not place.main:
        return 0
    plain, plain2, tuned = rows_for(preset["epochs"])
    pairs = [(tuned, plain2), (tuned, plain), (plain2, plain)]
    starts = {seed: start["outcomes"] for seed in preset["seeds"]}
    summary = summarize(results)
    compared = {"paired": paired_differences(results, pairs),
                "matched": matched_comparisons(results, pairs, pair_protocols, starts=starts)}
    traces = {p: {row: [t.rates().tolist() for t in ts] for row, ts in row_traces(results, p, starts=starts).items()}
              for p in pair_protocols}
    start_row = " · ".join([f"top-1 {start['test_accuracy']:.2f}%"] + [
        f"consistency {p} {start[f'test_consistency_{p}']:.2f}%" for p in pair_protocols])
    md = [f"# Fine-tuning benchmark — preset `{args.preset}`\n", f"Command: `{command}`\n",
          f"From `{args.checkpoint}` ({arch}, {loaded.weights}); data: {data.description}. Recipe: SGD (nesterov, "
          f"momentum 0.9, wd 5e-4), one-cycle lr peak {preset['lr']}, global batch {preset['batch_size']}, shifts "
          f"up to 4 px and{'' if preset.get('hflip') else ' no'} horizontal flips; AugShift: "
          f"{augshift.distance} distance, weight {augshift.weight}. Seeds {preset['seeds']} (each from the same "
          f"weights). This invocation: {(time.time() - began) / 60:.1f} min.\n",
          f"**Start** (the checkpoint, before fine-tuning): {start_row}.\n",
          "## After fine-tuning\n", summary_table(summary),
          "\n## Consistency gained per unit of extra compute\n",
          "A plain-epoch equivalent is one pass of the training set (an AugShift epoch is two).\n",
          gains(summary, start, len(data.train[0]), pair_protocols),
          "\n## Differences (points) with paired 95% intervals\n", comparison_table(summary, pairs,
                                                                                  paired=compared["paired"]),
          "\n## Consistency at matched accuracy\n",
          "Each run's trace starts at the checkpoint's own evaluation; compared where both rows reach the same top-1; "
          "intervals: bootstrap over the test images.\n", matched_table(compared["matched"]),
          f"\n![consistency at matched accuracy](consistency_at_accuracy_{preset['datasets'][0]}.png)\n"]
    figures = {f"consistency_at_accuracy_{preset['datasets'][0]}.png": partial(
        plot_consistency_at_accuracy, traces, title=f"fine-tuning {arch}, preset {args.preset}")}
    write_results(out, "results", {"command": command, "preset": args.preset, "recipe": preset,
                                   "checkpoint": args.checkpoint, "arch": arch,
                                   "start": {k: v for k, v in start.items() if k != "outcomes"},
                                   "summary": summary, "compared": compared, "runs": results}, "\n".join(md),
                  figures=figures)
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="runs resume from their last finished epoch when the same command runs again; result files already written are whole"))
