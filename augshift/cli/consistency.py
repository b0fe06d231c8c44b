"""``augshift consistency``: accuracy and shift consistency of any timm model on a labelled image set.

Examples::

    augshift consistency --model resnet18 --pretrained --data ./imagenet-val-folder --image-size 224
    augshift consistency --model resnet18 --num-classes 10 --checkpoint run/model_best.pth.tar --data ../cifar10
"""
from __future__ import annotations

import argparse
from pathlib import Path


from ..data import iterate_batches, load_split
from ..metrics import evaluate_shift_consistency
from ..reporting.files import write_json_atomic, write_text_atomic
from ..reporting.plots import plot_consistency_curves
from ..reporting.tables import markdown_table
from ..shift import SHIFT_MODES
from .common import choose_device, load_weights, recorded_command


def run(args: argparse.Namespace) -> int:
    import timm

    kwargs = {"num_classes": args.num_classes} if args.num_classes else {}
    model = timm.create_model(args.model, pretrained=args.pretrained, **kwargs)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    config = timm.data.resolve_data_config({}, model=model)
    mean = args.mean or config["mean"]
    std = args.std or config["std"]
    images, labels = load_split(args.data, args.split, limit=args.limit, size=args.image_size)
    print(f"{args.model}: {len(images)} images from {args.data} [{args.split}], normalised with mean {mean} std {std}")
    report = evaluate_shift_consistency(
        model, iterate_batches(images, labels, args.batch_size, mean=mean, std=std), device=choose_device(args.device),
        progress=True, max_shift=args.max_shift, mode=args.mode, seed=args.seed, curve_max_shift=args.curve_max_shift,
    ).to_dict()
    table = markdown_table({args.model: report})
    print(table)
    if args.out:
        out = Path(args.out)
        write_json_atomic(out / "consistency.json", {"args": vars(args) | {"run": None}, "command": recorded_command(args), "results": report})
        write_text_atomic(out / "consistency.md", table)
        if args.curve_max_shift is not None:
            plot_consistency_curves({args.model: report}, out / "consistency_vs_shift.png", title=args.model)
        print(f"wrote {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("consistency", help="measure a timm model's accuracy and shift consistency",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="timm model name")
    parser.add_argument("--pretrained", action="store_true", help="load timm's pretrained weights (needs network or cache)")
    parser.add_argument("--checkpoint", default=None, help="a checkpoint file (plain or timm train.py format)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--data", required=True, help="image folder, parquet file/folder (hub schema) or hub dataset name")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images")
    parser.add_argument("--image-size", type=int, default=None, help="resize images to this size first")
    parser.add_argument("--mean", type=float, nargs=3, default=None)
    parser.add_argument("--std", type=float, nargs=3, default=None)
    parser.add_argument("--max-shift", type=int, default=4)
    parser.add_argument("--mode", default="zeros", choices=SHIFT_MODES)
    parser.add_argument("--curve-max-shift", type=int, default=None, help="also the per-shift curve up to this shift")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for consistency.json / .md / .png")
    parser.set_defaults(run=run)
