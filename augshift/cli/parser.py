"""The `augshift` command line's parser, built without importing torch: `augshift --help` and every subcommand's
`--help` answer at once. Each subcommand's `args.run` is a `Command`: the function that runs it, named
`"<module>:<function>"` (a module of `augshift.cli`) and imported only when it is called, after parsing."""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Optional

from ..choices import CANVAS_TASKS, DEFAULT_IGNORE_INDEX, REGION_SETS, REGIONS, TRANSFORMS
from ..config import SHIFT_MODES, AugShiftConfig, add_augshift_arguments
from ..protocols import PROTOCOL_FAMILY, add_protocols_argument
from ..arguments import (
    Parser, add_limit_arguments, add_normalization_arguments, add_split_arguments, positive_float, whole,
)

DEMO_DESCRIPTION = """augshift demo: train a small CNN three ways and compare accuracy and shift consistency.

plain (no shift augmentation), shift-aug (one randomly shifted view per image: the usual
pad-and-crop augmentation) and augshift (two shifted views + the consistency loss), same recipe
and seed otherwise.

With no --data it runs on the embedded default (generated shapes, augshift.data.shapes), so it
needs no download. --data takes a local image folder, a parquet file/folder in the hub CIFAR schema
or a hub dataset name; it trains on --train-split and tests on --eval-split (default: test, else
validation / val). A source without named splits (one parquet file, an image folder of class folders) is split
deterministically: test = every 5th image, train = the others. Images are normalised with the training images'
own statistics. Writes demo.json (naming the images of each split and the normalisation), demo.md and
consistency_vs_shift.png to --out, as one unit.
"""
CONSISTENCY_DESCRIPTION = """augshift consistency: accuracy and shift consistency of any model on a labelled image set.

Any timm model (resnet18), torchvision classifier (torchvision/resnet50) or Hugging Face transformers image
model (hf:<hub id or save_pretrained folder>), with random, pretrained (--pretrained) or a checkpoint's
weights, under the protocols of augshift.protocols (--protocols). Images are normalised as the weights
were trained (what the checkpoint or the pretrained weights record), else with the evaluated images' own statistics;
the result says which.

Examples:

    augshift consistency --model resnet18 --pretrained --data ./imagenet-val-folder --crop-from 256 --image-size 224 \\
        --protocols crop,random,circular,fractional
    augshift consistency --checkpoint run/model_best.pth.tar --data ../cifar10 --protocols random,circular_worst
    augshift consistency --model hf:./my-vit --pretrained --data ./flowers --image-size 224
"""
# The demo's consistency distance: mse measured best on the generated shapes (cosine: 91.5 vs 93.55 % random
# consistency, README "Defaults"); the library default, cosine, is the one measured best on CIFAR-10.
DEMO = AugShiftConfig(distance="mse")


@dataclass(frozen=True)
class Command:
    """The function that runs a subcommand, named `"<module>:<function>"` (a module of `augshift.cli`, e.g.
    `"demo:run"`) and imported when called, so that the parser imports none of the commands' code (nor torch)."""

    name: str

    def __call__(self, args: argparse.Namespace) -> Optional[int]:
        module, _, function = self.name.partition(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), function)(args)


def build_parser() -> argparse.ArgumentParser:
    """The `augshift` parser: `demo`, `consistency`, `locate`, `channels`, `attack`."""
    parser = Parser(prog="augshift", description="The augshift command line: augshift demo, "
                                                 "augshift consistency and the position commands")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_demo, add_consistency, add_locate, add_position_commands):
        add(subparsers)
    return parser


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    """`augshift demo` (`augshift.cli.demo`)."""
    parser = subparsers.add_parser("demo", help="train a small CNN with and without AugShift, compare shift consistency",
                                   description=DEMO_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="image folder (<split>/<class>/<image>, or <class>/<image>), parquet folder in the hub "
                             "layout (<split>-*.parquet) or file, or hub name; a source without named splits is "
                             "split: test = every 5th image, train = the others. Default: the embedded generated shapes")
    add_split_arguments(parser, train=True)
    parser.add_argument("--image-column", default=None, help="image column of --data (default: img, image, ...)")
    parser.add_argument("--label-column", default=None, help="label column of --data (default: label, labels, ...)")
    parser.add_argument("--out", default="augshift-demo", help="output folder (default: %(default)s)")
    add_limit_arguments(parser, train=("train_size", 8000), evaluate=("test_size", 2000))
    parser.add_argument("--curve-size", type=whole(1), default=500, help="test images for the per-shift curve")
    parser.add_argument("--epochs", type=whole(1), default=8)
    parser.add_argument("--batch-size", type=whole(1), default=128)
    parser.add_argument("--lr", type=positive_float, default=0.05)
    parser.add_argument("--width", type=whole(1), default=16, help="SmallCNN base width")
    add_augshift_arguments(parser, defaults=DEMO)  # distance mse: measured best on the demo data
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=whole(0), default=0, help="torch threads (default: torch's choice)")
    parser.set_defaults(run=Command("demo:run"))


def add_consistency(subparsers: argparse._SubParsersAction) -> None:
    """`augshift consistency` (`augshift.cli.consistency`)."""
    parser = subparsers.add_parser("consistency", help="measure any model's accuracy and shift consistency",
                                   description=CONSISTENCY_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="a timm name, torchvision/<name> or hf:<hub id or folder>; if not given: what the "
                             "checkpoint names")
    parser.add_argument("--pretrained", action="store_true", help="the zoo's weights (needs network or cache)")
    parser.add_argument("--checkpoint", default=None,
                        help="a checkpoint: plain state_dict, timm train.py file or folder, the Accelerate example's or "
                             "a save_pretrained folder, a --save-model file")
    parser.add_argument("--num-classes", type=whole(1), default=None,
                        help="the head's classes (default: the checkpoint's, else the zoo's, e.g. 1000)")
    parser.add_argument("--data", required=True,
                        help="image folder (<split>/<class>/<image>, or <class>/<image>), parquet folder in the hub "
                             "layout (<split>-*.parquet) or file, or hub dataset name")
    add_split_arguments(parser, train=False)
    parser.add_argument("--image-column", default=None, help="image column of --data (default: img, image, ...)")
    parser.add_argument("--label-column", default=None, help="label column of --data (default: label, labels, ...)")
    add_limit_arguments(parser, evaluate=("limit", None))
    parser.add_argument("--image-size", type=whole(1), default=None,
                        help="resize images to this size (with --crop-from: the model's input size, the crop)")
    parser.add_argument("--crop-from", type=whole(2), default=None, metavar="N",
                        help="resize the shorter side to N and keep the centre N x N: the larger images the crop "
                             "protocol crops --image-size squares from (Zhang 2019: 256 for 224); accuracy and the "
                             "other protocols use the centre crop")
    add_normalization_arguments(parser)
    parser.add_argument("--max-shift", type=whole(0), default=4, help="range of random, circular, reflect, fractional (px)")
    parser.add_argument("--mode", default="zeros", choices=SHIFT_MODES, help="border of the random protocols")
    add_protocols_argument(parser, default=PROTOCOL_FAMILY)
    parser.add_argument("--curve-max-shift", type=whole(0), default=None, help="also the per-shift curve up to this shift")
    parser.add_argument("--batch-size", type=whole(1), default=256)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for consistency.json / .md / .png")
    parser.set_defaults(run=Command("consistency:run"))


def add_locate(subparsers: argparse._SubParsersAction) -> None:
    """`augshift locate` (`augshift.cli.locate`)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    locate = subparsers.add_parser("locate", help="train and evaluate GAPNet / PermuteNet on the location task",
                                   formatter_class=fmt)
    locate.add_argument("--model", choices=("gapnet", "permutenet"), default="gapnet")
    locate.add_argument("--trunk", default=None,
                        help="registered trunk: resnet18_stride16 (the official code's, no max-pool), resnet18 or "
                             "resnet50 (default: the preset's: paper resnet18_stride16, quick resnet18)")
    locate.add_argument("--grid", type=whole(2), default=3, help="canvas of grid x grid cells of 32x32 images")
    locate.add_argument("--task", choices=CANVAS_TASKS, default="location",
                        help="location: predict the cell; class: classify the image on the canvas")
    locate.add_argument("--where", default="pool", help="PermuteNet: 'pool' or a stage name such as layer3")
    locate.add_argument("--passes", type=whole(1), default=None,
                        help="evaluate with this many random-cell passes (default: preset; quick = every cell)")
    add_data_args(locate, train=True)
    add_normalization_arguments(locate)
    add_train_args(locate)
    locate.set_defaults(run=Command("locate:run_locate"))


def add_position_commands(subparsers: argparse._SubParsersAction) -> None:
    """`augshift channels` and `augshift attack` (`augshift.cli.position`)."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    channels = subparsers.add_parser(
        "channels", formatter_class=fmt,
        help="rank and plot the position channels of any classifier (timm or torchvision) or saved model")
    _model_args(channels, fallback="the one the checkpoint names (a plain state_dict names none)")
    channels.add_argument("--layer", default=None,
                          help="module name from model.named_modules(); if not given: the last stage")
    add_limit_arguments(channels, evaluate=("limit", 1800), help_eval="rank with the first N evaluation images")
    channels.add_argument("--top", type=whole(1), default=16, help="channels to tabulate and map")
    _rank_args(channels)
    _segmentation_args(channels)
    add_data_args(channels, train=False)
    channels.set_defaults(run=Command("position:run_channels"))

    attack = subparsers.add_parser("attack", help="ablate top-N position channels vs N random ones (mIoU curves)",
                                   formatter_class=fmt)
    _model_args(attack, fallback="fcn_resnet18 when training, the one the checkpoint names when loading",
                models="a segmenter: one of torchvision's segmentation models (fcn_resnet50, fcn_resnet101, "
                       "deeplabv3_*, lraspp_mobilenet_v3_large), a transformers "
                       "AutoModelForSemanticSegmentation (hf:<id or folder>), or a timm model returning (N, K, H, W) "
                       "logits such as fcn_resnet18")
    attack.add_argument("--layer", default=None,
                        help="module to rank and ablate; if not given: torchvision's 'backbone' output before the "
                             "head, the FCN's last stage")
    attack.add_argument("--counts", default="8,16,32,64,100,128,256",
                        help="comma-separated numbers of channels N (100: the paper's)")
    attack.add_argument("--draws", type=whole(1), default=3, help="random draws of N channels per N")
    _rank_args(attack)
    _segmentation_args(attack)
    add_data_args(attack, train=True)
    add_train_args(attack)
    attack.set_defaults(run=Command("position:run_attack"))


def _model_args(parser: argparse.ArgumentParser, *, fallback: str,
                models: str = "a timm name, torchvision/<name> or hf:<hub id or save_pretrained folder>") -> None:
    parser.add_argument("--model", default=None, help=f"architecture: {models}; if not given: {fallback}")
    parser.add_argument("--checkpoint", default=None,
                        help="weights: a file saved by locate/attack --save-model, a timm checkpoint or plain "
                             "state_dict (.pth/.pt/.safetensors), or a timm train.py / Accelerate / save_pretrained "
                             "output folder")
    parser.add_argument("--pretrained", action="store_true",
                        help="the hub weights of --model instead of a checkpoint (needs network or a filled cache)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the model's head; if not given: what the checkpoint records, or its head's size")
    add_normalization_arguments(parser)
    parser.add_argument("--image-size", type=int, default=None, help="resize the images (and masks) to this square size")


def _segmentation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mask-column", default=None,
                        help="masks of a dataset (if not given: found by name; an images/ + masks/ folder needs none); "
                             "without masks, --data's images are tiled into mosaics (the test bed)")
    parser.add_argument("--ignore-index", type=int, default=DEFAULT_IGNORE_INDEX, help="mask value of unlabelled pixels")
    parser.add_argument("--regions", choices=REGION_SETS, default="paper",
                        help="mIoU per region, the other pixels ignored; paper: left half, right half, centre "
                             "(middle half of the columns)")
    parser.add_argument("--grid", type=int, default=3, help="mosaics of grid x grid images")
    parser.add_argument("--layout-prior", type=float, default=0.0,
                        help="probability that a tile's class comes from its column's classes (class %% grid), "
                             "a scene layout like street scenes; 0: uniform mosaics")


def _rank_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transform", choices=TRANSFORMS, default="hflip")
    parser.add_argument("--region", choices=tuple(REGIONS), default=None,
                        help="signed, region-specific ranking: channels firing for content in this region")


def add_data_args(parser: argparse.ArgumentParser, *, train: bool) -> None:
    """`--data`, its splits (`add_split_arguments`) and columns, `--seed`, `--device`, `--out`."""
    parser.add_argument("--data", default="uoft-cs/cifar10",
                        help="parquet file/folder, image folder or hub name (default: uoft-cs/cifar10)")
    add_split_arguments(parser, train=train)
    parser.add_argument("--image-column", default=None)
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--out", default="results/position", help="folder for the JSON, markdown and PNG files")


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """`--preset` and its overrides, `--save-model`."""
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick",
                        help="paper: Adam lr 1e-3 betas (0.5, 0.999), batch 48, 20 epochs, flips (GPU); "
                             "quick: a few minutes on 2 CPU cores")
    parser.add_argument("--epochs", type=whole(1), default=None, help="override the preset")
    parser.add_argument("--batch-size", type=whole(1), default=None, help="override the preset")
    add_limit_arguments(parser, train=("train_limit", None), evaluate=("test_limit", None))
    parser.add_argument("--save-model", default=None, help="save the trained model here (for channels / attack)")
