"""``augshift locate``, ``augshift channels``, ``augshift attack``: the paper's position-information experiments.

Examples::

    augshift locate --data ../shared/data/cifar10 --model gapnet --grid 3 --preset quick --out results/
    augshift locate --data ../shared/data/cifar10 --model permutenet --grid 7 --task class --preset paper --out results/
    augshift attack --data ../shared/data/cifar10 --preset quick --save-model fcn.pt --out results/
    augshift channels --checkpoint fcn.pt --data ../shared/data/cifar10 --region left --out results/

``locate`` trains GAPNet or PermuteNet on the location task (or on image classification on the canvases)
and writes overall and per-cell accuracy; ``attack`` trains (or loads) a mosaic segmentation FCN, ranks its
position channels and ablates the top-N against N random channels; ``channels`` ranks and plots the
position channels of a saved model. Each writes JSON (with the exact command), markdown and PNG files.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from ..data import load_split, normalize
from ..position import (
    PRESETS, REGIONS, SEGMENTATION_PRESETS, TASKS, TRANSFORMS, LocationCanvas, MosaicSegmentation, PositionConfig,
    attack_curve, evaluate_canvas, rank_position_channels, segmentation_scores, train_on_canvas, train_segmentation,
)
from ..reporting.tables import markdown_grid
from .common import choose_device, load_model, recorded_command, save_model, write_results

# Islam et al. 2021, Table 1: CIFAR-10 canvases, ResNet-18 (accuracy %)
PAPER_TABLE1 = {
    ("gapnet", "location", 3): 100.0, ("gapnet", "location", 7): 100.0,
    ("permutenet", "location", 3): 78.8, ("permutenet", "location", 7): 21.4,
    ("gapnet", "class", 3): 82.6, ("gapnet", "class", 7): 82.1,
    ("permutenet", "class", 3): 73.6, ("permutenet", "class", 7): 69.9,
}
NUM_CLASSES = 10  # CIFAR-10 (the canvases and mosaics keep the dataset's labels)


def _config(args: argparse.Namespace, presets: dict) -> PositionConfig:
    config = PositionConfig(**presets[args.preset].to_dict())
    for key in ("epochs", "batch_size", "train_limit", "test_limit"):
        if getattr(args, key, None) is not None:
            setattr(config, key, getattr(args, key))
    return config


def _load(args: argparse.Namespace, split: str, limit: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised float images (N, C, h, w) and labels of ``split`` (first ``limit`` rows)."""
    images, labels = load_split(args.data, split, image_column=args.image_column, label_column=args.label_column,
                                limit=limit)
    print(f"{len(images)} images from {args.data} [{split}]")
    return normalize(images), labels


# ----------------------------------------------------------------------------------------------- locate

def run_locate(args: argparse.Namespace) -> int:
    import timm

    config, device = _config(args, PRESETS), choose_device(args.device)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    num_classes = args.grid ** 2 if args.task == "location" else NUM_CLASSES
    name = f"{args.model}_{args.trunk}"
    kwargs = dict(num_classes=num_classes)
    if args.model == "permutenet":
        kwargs.update(where=args.where, seed=args.seed + 1)
    model = timm.create_model(name, **kwargs)
    train_x, train_y = _load(args, args.train_split, config.train_limit)
    test_x, test_y = _load(args, args.test_split, config.test_limit)
    start = time.time()
    history = train_on_canvas(model, LocationCanvas(train_x, train_y, grid=args.grid, generator=generator),
                              task=args.task, config=config, generator=generator, device=device)
    train_s = time.time() - start
    passes = args.passes or config.passes
    report = evaluate_canvas(model, LocationCanvas(test_x, test_y, grid=args.grid, generator=generator),
                             task=args.task, exhaustive=config.exhaustive and not args.passes, passes=passes,
                             generator=generator, device=device, progress=True)
    stem = f"locate-{args.model}-{args.trunk}-{args.task}-g{args.grid}"
    paper = PAPER_TABLE1.get((args.model, args.task, args.grid)) if args.trunk == "resnet18" else None
    data = dict(
        command=recorded_command(args), preset=args.preset, config=config.to_dict(), model=name, model_kwargs=kwargs,
        task=args.task, grid=args.grid, seed=args.seed, device=str(device), train_images=len(train_x),
        test_images=len(test_x), train_steps=sum(row["steps"] for row in history), train_seconds=round(train_s, 1),
        final_train_loss=history[-1]["loss"], results=report.to_dict(),
        paper_accuracy=paper,
    )
    title = f"{name} {args.task} {args.grid}x{args.grid}: {100 * report.accuracy:.2f}%"
    report.plot(str(Path(args.out) / f"{stem}.png"), title=title)
    summary = markdown_grid(
        ("model", "grid", "task", "accuracy (%)", "paper (%)", "train images x epochs", "test evaluations"),
        [(name, f"{args.grid}x{args.grid}", args.task, f"{100 * report.accuracy:.2f}",
          paper if paper is not None else "-", f"{len(train_x)} x {config.epochs}", sum(report.total))])
    cells = markdown_grid([f"col {c + 1}" for c in range(args.grid)],
                          [[f"{100 * v:.1f}" for v in row] for row in report.per_cell.tolist()])
    markdown = "\n".join([f"# {title}", "", f"`{data['command']}`", "", summary,
                          "Per-cell accuracy (%), rows top to bottom:", "", cells])
    write_results(args.out, stem, data, markdown)
    if args.save_model:
        save_model(args.save_model, model, name, kwargs, dict(task=args.task, grid=args.grid))
    return 0


# ----------------------------------------------------------------------------------------------- channels

def _test_set(
    args: argparse.Namespace, meta: dict, limit: Optional[int], device: torch.device, regions: str = "thirds"
) -> tuple[torch.Tensor, Callable[[torch.nn.Module], dict]]:
    """Test inputs as the saved model saw them (mosaics, or canvases in random cells) and its evaluation."""
    generator = torch.Generator().manual_seed(args.seed)
    images, labels = _load(args, args.test_split, limit)
    if meta["task"] == "segmentation":
        mosaics, masks = MosaicSegmentation(images, labels, grid=meta["grid"], generator=generator,
                                            layout_prior=meta.get("layout_prior", 0.0)).tensors()

        def scores(model: torch.nn.Module) -> dict:
            return segmentation_scores(model, mosaics, masks, num_classes=model.num_classes, regions=regions,
                                       device=device)
        return mosaics, scores
    canvas = LocationCanvas(images, labels, grid=meta["grid"], generator=generator)

    def accuracy(model: torch.nn.Module) -> dict:
        return {"accuracy": evaluate_canvas(model, canvas, task=meta["task"], exhaustive=True, device=device).accuracy}
    return canvas.batch(torch.arange(len(canvas)))[0], accuracy


def _layer(args: argparse.Namespace, model: torch.nn.Module) -> str:
    layer = args.layer or getattr(model, "feature_module", None)
    if layer is None:
        raise SystemExit("--layer is required for this model (a module name from model.named_modules())")
    return layer


def run_channels(args: argparse.Namespace) -> int:
    model, meta = load_model(args.checkpoint)
    device = choose_device(args.device)
    images, _ = _test_set(args, meta, args.limit, device)
    layer = _layer(args, model)
    ranking = rank_position_channels(model, layer, images, transform=args.transform, region=args.region,
                                     device=device)
    stem = f"channels-{layer.replace('.', '_')}-{args.transform}" + (f"-{args.region}" if args.region else "")
    ranking.plot(str(Path(args.out) / f"{stem}.png"), top=args.top)
    data = dict(command=recorded_command(args), checkpoint=args.checkpoint, meta=meta, ranking=ranking.to_dict())
    top = ", ".join(f"{c} ({ranking.scores[c]:.4f})" for c in ranking.top(args.top))
    markdown = (f"# Position channels of {layer} ({args.transform}{', ' + args.region if args.region else ''})\n\n"
                f"`{data['command']}`\n\n{len(images)} images; top {args.top} channels (score): {top}")
    write_results(args.out, stem, data, markdown)
    return 0


# ----------------------------------------------------------------------------------------------- attack

def _attack_model(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, dict, dict]:
    """Load ``--checkpoint`` or train ``fcn_<trunk>`` on CIFAR mosaics with the preset; returns (model, meta, info)."""
    if args.checkpoint:
        model, meta = load_model(args.checkpoint)
        return model, meta, dict(checkpoint=args.checkpoint)
    import timm

    config = _config(args, SEGMENTATION_PRESETS)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    name, kwargs = f"fcn_{args.trunk}", dict(num_classes=NUM_CLASSES)
    model = timm.create_model(name, **kwargs)
    images, labels = _load(args, args.train_split, config.train_limit)
    start = time.time()
    mosaics = MosaicSegmentation(images, labels, grid=args.grid, layout_prior=args.layout_prior, generator=generator)
    history = train_segmentation(model, mosaics, config=config, generator=generator, device=device)
    meta = dict(task="segmentation", grid=args.grid, layout_prior=args.layout_prior)
    if args.save_model:
        save_model(args.save_model, model, name, kwargs, meta)
    info = dict(model=name, config=config.to_dict(), train_images=len(images), train_steps=sum(row["steps"] for row in history),
                train_seconds=round(time.time() - start, 1), final_train_loss=history[-1]["loss"])
    return model, meta, info


def run_attack(args: argparse.Namespace) -> int:
    device = choose_device(args.device)
    model, meta, info = _attack_model(args, device)
    test_limit = args.test_limit or _config(args, SEGMENTATION_PRESETS).test_limit
    images, evaluate = _test_set(args, meta, test_limit, device, args.regions)
    layer = _layer(args, model)
    ranking = rank_position_channels(model, layer, images, transform=args.transform, region=args.region, device=device)
    counts = [int(c) for c in args.counts.split(",")]
    curve = attack_curve(model, layer, ranking, evaluate, counts=counts, draws=args.draws,
                         generator=torch.Generator().manual_seed(args.seed + 2))
    region = f"-{args.region}" if args.region else ""
    prior = f"-prior{meta['layout_prior']:g}" if meta.get("layout_prior") else ""
    stem = f"attack-{layer.replace('.', '_')}-{args.transform}{region}{prior}"
    curve.plot(str(Path(args.out) / f"{stem}.png"))
    ranking.plot(str(Path(args.out) / f"{stem}-ranking.png"), top=counts[0])
    data = dict(command=recorded_command(args), preset=args.preset, seed=args.seed, device=str(device), meta=meta, model=info,
                test_images=len(images), curve=curve.to_dict())
    markdown = "\n".join([
        f"# Position attack on {layer} ({args.transform}{', region ' + args.region if args.region else ''} ranking)",
        "", f"`{data['command']}`", "",
        f"{len(images)} test {'mosaics' if meta['task'] == 'segmentation' else 'canvases'}"
        f"{' (layout prior %g)' % meta['layout_prior'] if meta.get('layout_prior') else ''}; each random-N value: "
        f"{args.draws} draws of N random channels.", "", curve.markdown(),
    ])
    write_results(args.out, stem, data, markdown)
    return 0


# ----------------------------------------------------------------------------------------------- parser

def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="uoft-cs/cifar10",
                        help="parquet file/folder, image folder or hub name (default: uoft-cs/cifar10)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--test-split", default="test")
    parser.add_argument("--image-column", default=None)
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--out", default="results/position", help="folder for the JSON, markdown and PNG files")


def _train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick",
                        help="paper: Adam lr 1e-3 betas (0.5, 0.999), batch 48, 20 epochs, flips (GPU); "
                             "quick: a few minutes on 2 CPU cores")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset")
    parser.add_argument("--train-limit", type=int, default=None, help="use the first N training images")
    parser.add_argument("--test-limit", type=int, default=None, help="use the first N test images")
    parser.add_argument("--save-model", default=None, help="save the trained model here (for channels / attack)")


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    locate = subparsers.add_parser("locate", help="train and evaluate GAPNet / PermuteNet on the location task",
                                   formatter_class=fmt)
    locate.add_argument("--model", choices=("gapnet", "permutenet"), default="gapnet")
    locate.add_argument("--trunk", default="resnet18", help="registered trunk: resnet18 or resnet50")
    locate.add_argument("--grid", type=int, default=3, help="canvas of grid x grid cells of 32x32 images")
    locate.add_argument("--task", choices=TASKS, default="location",
                        help="location: predict the cell; class: classify the image on the canvas")
    locate.add_argument("--where", default="pool", help="PermuteNet: 'pool' or a stage name such as layer3")
    locate.add_argument("--passes", type=int, default=None,
                        help="evaluate with this many random-cell passes (default: preset; quick = every cell)")
    _data_args(locate)
    _train_args(locate)
    locate.set_defaults(run=run_locate)

    channels = subparsers.add_parser("channels", help="rank and plot the position channels of a saved model",
                                     formatter_class=fmt)
    channels.add_argument("--checkpoint", required=True, help="a model saved by locate/attack --save-model")
    channels.add_argument("--layer", default=None,
                          help="module name from model.named_modules() (default: the trunk's last stage)")
    channels.add_argument("--limit", type=int, default=1800, help="test images to rank with")
    channels.add_argument("--top", type=int, default=16, help="channels to highlight")
    _rank_args(channels)
    _data_args(channels)
    channels.set_defaults(run=run_channels)

    attack = subparsers.add_parser("attack", help="ablate top-N position channels vs N random ones (mIoU curves)",
                                   formatter_class=fmt)
    attack.add_argument("--checkpoint", default=None,
                        help="a model saved by locate/attack --save-model; default: train fcn_<trunk> on mosaics")
    attack.add_argument("--trunk", default="resnet18", help="trunk of the trained FCN")
    attack.add_argument("--grid", type=int, default=3, help="mosaics of grid x grid images")
    attack.add_argument("--layout-prior", type=float, default=0.0,
                        help="probability that a tile's class comes from its column's classes (class %% grid), "
                             "a scene layout like street scenes; 0: uniform mosaics")
    attack.add_argument("--layer", default=None, help="module to rank and ablate (default: the FCN's last stage)")
    attack.add_argument("--counts", default="8,16,32,64,128,256", help="comma-separated numbers of channels N")
    attack.add_argument("--draws", type=int, default=3, help="random draws of N channels per N")
    attack.add_argument("--regions", choices=("thirds", "halves"), default="thirds", help="mIoU per image region")
    _rank_args(attack)
    _data_args(attack)
    _train_args(attack)
    attack.set_defaults(run=run_attack)


def _rank_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transform", choices=TRANSFORMS, default="hflip")
    parser.add_argument("--region", choices=tuple(REGIONS), default=None,
                        help="signed, region-specific ranking: channels firing for content in this region")
