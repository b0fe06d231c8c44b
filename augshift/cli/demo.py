"""`augshift demo`: a small CNN trained three ways (plain, shift augmentation, AugShift), then accuracy and shift
consistency compared (what it does and its options: `augshift.cli.parser`)."""
from __future__ import annotations

import argparse
import functools
import time

import torch

from ..config import AugShiftConfig
from ..data import Normalization, eval_split, load_split
from ..data.hub import describe_split
from ..data.splits import EMBEDDED
from ..engine import TensorBatches, TrainConfig, Trainer, evaluate_classifier, fit
from ..errors import UsageError
from ..models.small_cnn import create_small_cnn
from ..reporting.plots import plot_consistency_curves
from ..reporting.tables import markdown_table
from ..shifts import RandomShift
from .common import recorded_command, write_results

SHAPES_DESCRIPTION = "embedded default: generated shapes (augshift.data.shapes), 10 classes, 32x32"


def load_data(args: argparse.Namespace) -> tuple[tuple, tuple, str]:
    """`((train images, labels), (test images, labels), description)`; uint8 tensors. Refuses a test split
    that is the training split, or whose images all are training images."""
    if args.data is None:
        train = load_split(EMBEDDED, "train", limit=args.train_size, seed=args.seed)
        return train, load_split(EMBEDDED, "test", limit=args.test_size, seed=args.seed), SHAPES_DESCRIPTION
    split = eval_split(args.data, args.eval_split)
    if args.train_split == split:
        raise UsageError(f"--train-split and --eval-split are both {split!r}: the demo would test on its training "
                         "images; name two different splits")
    columns = dict(image_column=args.image_column, label_column=args.label_column)
    train = load_split(args.data, args.train_split, limit=args.train_size, seed=args.seed, **columns)
    test = load_split(args.data, split, limit=args.test_size, seed=args.seed, **columns)
    seen = {image.numpy().tobytes() for image in train[0]}
    if all(image.numpy().tobytes() in seen for image in test[0]):
        raise UsageError(f"every test image of {args.data} [{split}] is also a training image [{args.train_split}]: "
                         "the demo would report accuracy on training images; name a split with other images "
                         "(--eval-split)")
    return train, test, (f"{args.data}: train = first {len(train[0])} images of {describe_split(args.data, args.train_split)}; "
                         f"test = first {len(test[0])} images of {describe_split(args.data, split)}")


def train(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig, *,
          normalization: Normalization, desc: str) -> list[dict]:
    """Train `model` on `uint8` images with the engine; returns per-epoch mean losses."""
    batches = TensorBatches(images, labels, batch_size=config.batch_size, seed=config.seed, normalization=normalization)
    trainer = Trainer(model, config, steps_per_epoch=batches.steps)
    return fit(trainer, batches.source(), desc=desc)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    start = time.time()
    augshift = AugShiftConfig.from_args(args)
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    (x_train, y_train), (x_test, y_test), data_description = load_data(args)
    RandomShift(augshift.max_shift).check_size(*x_test.shape[-2:])
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    normalization = Normalization.of_images(x_train, source=f"the {len(x_train)} training images")
    print(f"data: {data_description}; {len(x_train)} train, {len(x_test)} test, {num_classes} classes")
    results, configs = {}, {}
    variants = (("plain", dict(shift=None)), ("shift-aug", dict(shift=augshift.shift_only())),
                ("augshift", dict(shift=augshift, augshift=True)))
    for name, variant in variants:
        config = base.replace(**variant)
        torch.manual_seed(args.seed)
        model = create_small_cnn(num_classes, width=args.width)
        history = train(model, x_train, y_train, config, normalization=normalization, desc=f"train {name}")
        options = dict(max_shift=args.max_shift, mode=args.mode, seed=args.seed, normalization=normalization)
        report = evaluate_classifier(model, x_test, y_test, **options).to_dict()
        curve = evaluate_classifier(
            model, x_test[: args.curve_size], y_test[: args.curve_size], protocols=(), curve_max_shift=args.max_shift,
            **options,
        ).to_dict()
        report.update({k: curve[k] for k in ("curve_consistency", "curve_accuracy")}, curve_samples=curve["samples"])
        report["final_train_loss"] = history[-1]
        results[name], configs[name] = report, config.to_dict()
        print(f"{name}: accuracy {report['accuracy']:.2f}%, consistency random {report['consistency_random']:.2f}% "
              f"/ circular {report['consistency_circular']:.2f}%")
    table = markdown_table(results)
    gain = {
        baseline: {p: results["augshift"][f"consistency_{p}"] - results[baseline][f"consistency_{p}"] for p in ("random", "circular")}
        for baseline in ("plain", "shift-aug")
    }
    summary = {
        "data": data_description, "normalization": normalization.to_dict(), "model": f"SmallCNN(width={args.width})",
        "configs": configs, "results": results,
        "consistency_gain": gain, "seconds": round(time.time() - start, 1),
    }
    markdown = (
        f"# augshift demo\n\nCommand: `{recorded_command(args)}`\n\nData: {data_description}. Model: SmallCNN(width={args.width}), {args.epochs} epochs, "
        f"shifts up to {args.max_shift} px ({args.mode} padding). Values in % with 95% Wilson intervals; "
        f"consistency = same class for two random shifts (random: {args.mode} padding, circular: torch.roll).\n\n"
        f"{table}\n"
        + "".join(f"AugShift - {b} consistency: random {g['random']:+.2f}, circular {g['circular']:+.2f} points.\n" for b, g in gain.items())
    )
    figures = {"consistency_vs_shift.png": functools.partial(plot_consistency_curves, results,
                                                             title=f"augshift demo: {data_description}")}
    write_results(args.out, "demo", summary, markdown.rstrip("\n"), figures=figures)
    print(f"({summary['seconds']:.0f} s)")
    return 0
