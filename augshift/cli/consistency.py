"""``augshift consistency``: accuracy and shift consistency of any model on a labelled image set.

Any timm model (``resnet18``), torchvision classifier (``torchvision/resnet50``) or Hugging Face ``transformers`` image
model (``hf:<hub id or save_pretrained folder>``), with random, pretrained (``--pretrained``) or a checkpoint's
weights, under the protocols of `augshift.protocols` (``--protocols``). Images are normalised as the weights
were trained (what the checkpoint or the pretrained weights record), else with the evaluated images' own statistics;
the result says which.

Examples::

    augshift consistency --model resnet18 --pretrained --data ./imagenet-val-folder --crop-from 256 --image-size 224 \\
        --protocols crop,random,circular,fractional
    augshift consistency --checkpoint run/model_best.pth.tar --data ../cifar10 --protocols random,circular_worst
    augshift consistency --model hf:./my-vit --pretrained --data ./flowers --image-size 224
"""
from __future__ import annotations

import argparse
import functools

import torch
from torchvision.transforms.functional import center_crop

from ..config import SHIFT_MODES
from ..data import (
    Normalization, describe_split, eval_split, iterate_batches, load_split, normalize, open_split, resolve_columns,
)
from ..errors import UsageError
from ..metrics import evaluate_shift_consistency
from ..models import load_model, logits_of
from ..protocols import PROTOCOL_FAMILY, add_protocols_argument, check_crop_options
from ..reporting.plots import plot_consistency_curves
from ..reporting.tables import markdown_table
from .common import choose_device, choose_normalization, recorded_command, write_results
from .options import add_limit_arguments, add_normalization_arguments, add_split_arguments, whole


def check_labels_and_classes(model: torch.nn.Module, image: torch.Tensor, labels: torch.Tensor,
                             args: argparse.Namespace, split: str) -> None:
    """Before any evaluation: refuse labels that cannot be scored (``-1`` marks hidden labels), a model that does not
    take the images' size, and a model whose number of outputs is not the data's (declared by its label feature) or
    is too small for its labels: accuracy would be meaningless."""
    where = f"{args.data} [{split}]"
    unlabelled = int((labels < 0).sum())
    if unlabelled:
        which = "has no labels" if unlabelled == len(labels) else f"has {unlabelled} of {len(labels)} images unlabelled"
        raise UsageError(f"{where} {which} (label {int(labels.min())}, as hub datasets mark hidden test labels): "
                         "evaluate a labelled split, e.g. --eval-split validation")
    try:
        with torch.no_grad():
            outputs = logits_of(model(image)).shape[-1]
    except (AssertionError, RuntimeError, ValueError) as error:  # a fixed-size model's own check of its input
        raise UsageError(f"the model does not take {image.shape[-2]}x{image.shape[-1]} images ({str(error).strip()}): "
                         "pass --image-size with its input size (and --crop-from for larger crop-protocol images)") from None
    dataset = open_split(args.data, split)
    _, label_column = resolve_columns(dataset, args.image_column, args.label_column)
    declared = getattr(dataset.features[label_column], "num_classes", None)
    found = declared if declared is not None else int(max(dataset.with_format(None)[label_column])) + 1
    if found != outputs if declared is not None else found > outputs:
        raise UsageError(f"the model has {outputs} classes but {where} has {found}: pass --num-classes "
                         f"{found} (with the --checkpoint of a model trained on this data)")
    if int(labels.max()) >= outputs:
        raise UsageError(f"{where} has label {int(labels.max())}, outside the model's {outputs} classes: pass "
                         f"--num-classes (with the --checkpoint of a model trained on this data)")


def run(args: argparse.Namespace) -> int:
    check_crop_options(args.protocols, args.crop_from, args.image_size)
    device = choose_device(args.device)
    loaded = load_model(args.checkpoint, model=args.model, num_classes=args.num_classes, pretrained=args.pretrained)
    split = eval_split(args.data, args.eval_split)
    images, labels = load_split(args.data, split, limit=args.limit, size=args.crop_from or args.image_size,
                                centre_crop=args.crop_from is not None, image_column=args.image_column,
                                label_column=args.label_column)
    data = f"first {len(images)} images of {describe_split(args.data, split)}"
    print(f"{loaded.name} ({loaded.weights}): {data}")
    normalization = choose_normalization(args, loaded.normalization, lambda: Normalization.of_images(
        images, source=f"the evaluated images' own statistics ({loaded.weights} records none)"))
    model = loaded.model.to(device)
    first = normalize(images[:1], normalization)  # what the model sees: the centre crop, with the crop protocol
    first = center_crop(first, [args.image_size]) if args.crop_from else first
    check_labels_and_classes(model, first.to(device), labels, args, split)
    report = evaluate_shift_consistency(
        model, iterate_batches(images, labels, args.batch_size, normalization=normalization), device=device,
        progress=True, max_shift=args.max_shift, mode=args.mode, seed=args.seed, curve_max_shift=args.curve_max_shift,
        protocols=args.protocols, crop_size=args.image_size if args.crop_from else None,
    ).to_dict()
    table = markdown_table({loaded.name: report})
    if not args.out:
        print(table)
        return 0
    figures = {}
    if args.curve_max_shift is not None:
        figures["consistency.png"] = functools.partial(plot_consistency_curves, {loaded.name: report},
                                                                title=loaded.name)
    summary = {"args": vars(args) | {"run": None}, "command": recorded_command(args), "model": loaded.name,
               "weights": loaded.weights, "data": data, "eval_split": split,
               "normalization": normalization.to_dict(), "results": report}
    markdown = (f"# augshift consistency: {loaded.name}\n\nCommand: `{summary['command']}`\n\nData: {data}. Normalised "
                f"with mean {list(normalization.mean)}, std {list(normalization.std)} ({normalization.source}).\n\n"
                f"{table}")
    write_results(args.out, "consistency", summary, markdown, figures=figures)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("consistency", help="measure any model's accuracy and shift consistency",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.set_defaults(run=run)
