"""``augshift consistency``: accuracy and shift consistency of any timm model on a labelled image set.

Examples::

    augshift consistency --model resnet18 --pretrained --data ./imagenet-val-folder --image-size 224
    augshift consistency --model resnet18 --num-classes 10 --checkpoint run/model_best.pth.tar --data ../cifar10
"""
from __future__ import annotations

import argparse
import functools

import torch

from ..data import describe_split, iterate_batches, load_split, open_split, resolve_columns
from ..errors import UsageError
from ..metrics import PROTOCOL_FAMILY, PROTOCOLS, evaluate_shift_consistency
from ..reporting.plots import plot_consistency_curves
from ..reporting.tables import markdown_table
from ..shift import SHIFT_MODES
from .common import choose_device, create_named_model, load_weights, recorded_command, write_results
from .options import whole


def check_classes(model: torch.nn.Module, args: argparse.Namespace) -> None:
    """Refuse a model whose number of classes is not the data's (declared by its label feature) or is too small
    for its labels: accuracy would be meaningless."""
    classes = getattr(model, "num_classes", None)
    dataset = open_split(args.data, args.split)
    _, label_column = resolve_columns(dataset, args.image_column, args.label_column)
    declared = getattr(dataset.features[label_column], "num_classes", None)
    found = declared if declared is not None else int(max(dataset.with_format(None)[label_column])) + 1
    if classes is not None and (found != classes if declared is not None else found > classes):
        raise UsageError(f"{args.model} has {classes} classes but {args.data} [{args.split}] has {found}: pass "
                         f"--num-classes {found} (with the --checkpoint of a model trained on this data)")


def protocol_list(text: str) -> tuple[str, ...]:
    """An ``argparse`` type: comma-separated names of :data:`~augshift.metrics.PROTOCOLS`."""
    names = tuple(text.split(","))
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown protocol(s) {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}")
    return names


def run(args: argparse.Namespace) -> int:
    import timm

    device = choose_device(args.device)
    kwargs = {"num_classes": args.num_classes} if args.num_classes else {}
    model = create_named_model(args.model, pretrained=args.pretrained, **kwargs)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    check_classes(model, args)
    config = timm.data.resolve_data_config({}, model=model)
    mean = args.mean or config["mean"]
    std = args.std or config["std"]
    images, labels = load_split(args.data, args.split, limit=args.limit, size=args.image_size,
                                image_column=args.image_column, label_column=args.label_column)
    data = f"first {len(images)} images of {describe_split(args.data, args.split)}"
    print(f"{args.model}: {data}, normalised with mean {mean} std {std}")
    report = evaluate_shift_consistency(
        model, iterate_batches(images, labels, args.batch_size, mean=mean, std=std), device=device,
        progress=True, max_shift=args.max_shift, mode=args.mode, seed=args.seed, curve_max_shift=args.curve_max_shift,
        protocols=args.protocols,
    ).to_dict()
    table = markdown_table({args.model: report})
    if not args.out:
        print(table)
        return 0
    figures = {}
    if args.curve_max_shift is not None:
        figures["consistency_vs_shift.png"] = functools.partial(plot_consistency_curves, {args.model: report},
                                                                title=args.model)
    summary = {"args": vars(args) | {"run": None}, "command": recorded_command(args), "data": data, "results": report}
    markdown = f"# augshift consistency: {args.model}\n\nCommand: `{summary['command']}`\n\n{table}"
    write_results(args.out, "consistency", summary, markdown, figures=figures)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("consistency", help="measure a timm model's accuracy and shift consistency",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="timm model name")
    parser.add_argument("--pretrained", action="store_true", help="load timm's pretrained weights (needs network or cache)")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint file (plain or timm train.py format)")
    parser.add_argument("--num-classes", type=whole(1), default=None, help="default: the model's (timm: 1000)")
    parser.add_argument("--data", required=True,
                        help="image folder (<split>/<class>/<image>, or <class>/<image>), parquet folder in the hub "
                             "layout (<split>-*.parquet) or file, or hub dataset name")
    parser.add_argument("--split", default="test",
                        help="split of --data (default: %(default)s; a source without named splits has 'train' and "
                             "'test' = every 5th image)")
    parser.add_argument("--image-column", default=None, help="image column of --data (default: img, image, ...)")
    parser.add_argument("--label-column", default=None, help="label column of --data (default: label, labels, ...)")
    parser.add_argument("--limit", type=whole(1), default=None, help="use the first N images")
    parser.add_argument("--image-size", type=whole(1), default=None, help="resize images to this size first")
    parser.add_argument("--mean", type=float, nargs=3, default=None)
    parser.add_argument("--std", type=float, nargs=3, default=None)
    parser.add_argument("--max-shift", type=whole(0), default=4)
    parser.add_argument("--mode", default="zeros", choices=SHIFT_MODES)
    parser.add_argument("--protocols", type=protocol_list, default=PROTOCOL_FAMILY,
                        help=f"comma-separated consistency protocols (default: all of {','.join(PROTOCOL_FAMILY)}; "
                             "random16 needs images of more than 16 px)")
    parser.add_argument("--curve-max-shift", type=whole(0), default=None, help="also the per-shift curve up to this shift")
    parser.add_argument("--batch-size", type=whole(1), default=256)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for consistency.json / .md / .png")
    parser.set_defaults(run=run)
