"""`augshift locate`: GAPNet or PermuteNet on the paper's location task (a CIFAR image in one cell of a g x g canvas),
or on image classification on the same canvases; overall and per-cell accuracy, last and best epoch.

Examples:

    augshift locate --data ../shared/data/cifar10 --model gapnet --grid 3 --preset quick --out results/
    augshift locate --data ../shared/data/cifar10 --model permutenet --grid 7 --task class --preset paper --out results/
"""
from __future__ import annotations

import argparse
import time

import torch

from ..seeding import Stream, stream_seed
from ..data.stats import normalize
from ..engine.best_epoch import BestEpoch
from ..models import create_model
from ..position import LocationCanvas, evaluate_canvas, train_on_canvas
from ..position.canvas import LocationReport
from ..position.recipes import PRESETS, canvas_scorer
from ..reporting.plots import plot_training_curve
from ..reporting.tables import markdown_grid
from .common import choose_device, choose_normalization, recorded_command, save_model, write_results
from .position_options import NUM_CLASSES, evaluated_split, load_images, preset_config, training_statistics

# Islam et al. 2021, Table 1: CIFAR-10 canvases, ResNet-18 (accuracy %)
PAPER_TABLE1 = {
    ("gapnet", "location", 3): 100.0, ("gapnet", "location", 7): 100.0,
    ("permutenet", "location", 3): 78.8, ("permutenet", "location", 7): 21.4,
    ("gapnet", "class", 3): 82.6, ("gapnet", "class", 7): 82.1,
    ("permutenet", "class", 3): 73.6, ("permutenet", "class", 7): 69.9,
}
PAPER_TRUNKS = ("resnet18", "resnet18_stride16")  # trunks whose numbers sit beside the paper's ResNet-18


def run_locate(args: argparse.Namespace) -> int:
    config, device = preset_config(args, PRESETS), choose_device(args.device)
    torch.manual_seed(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)  # canvases drawn where they are trained
    num_classes = args.grid ** 2 if args.task == "location" else NUM_CLASSES
    trunk = config.trunk = args.trunk or config.trunk
    name = f"{args.model}_{trunk}"
    kwargs = dict(num_classes=num_classes)
    if args.model == "permutenet":
        kwargs.update(where=args.where, seed=stream_seed(args.seed, Stream.PERMUTENET))
    model = create_model(name, **kwargs)
    train_raw, train_y = load_images(args, args.train_split, config.train_limit)
    split = evaluated_split(args)
    test_raw, test_y = load_images(args, split, config.test_limit)
    normalization = choose_normalization(args, None, lambda: training_statistics(train_raw, args))
    # the images stay on the training device: canvases are built there, nothing waits for the host in an epoch
    train_x, test_x = normalize(train_raw.to(device), normalization), normalize(test_raw.to(device), normalization)
    train_y, test_y = train_y.to(device), test_y.to(device)
    start = time.time()
    test_canvas = LocationCanvas(test_x, test_y, grid=args.grid)
    best = BestEpoch(model, canvas_scorer(train_x, test_canvas, task=args.task, config=config, seed=args.seed,
                                          device=device))
    history = train_on_canvas(model, LocationCanvas(train_x, train_y, grid=args.grid, generator=generator),
                              task=args.task, config=config, generator=generator, device=device, after_epoch=best)
    train_s = time.time() - start
    passes = args.passes or config.passes

    def evaluate() -> LocationReport:  # the same cells for the last and the best epoch
        return evaluate_canvas(model, test_canvas, task=args.task, exhaustive=config.exhaustive and not args.passes,
                               passes=passes, generator=torch.Generator().manual_seed(args.seed), device=device,
                               progress=True)

    report, best_epoch = evaluate(), best.best_epoch(history)
    best_report = report
    if best_epoch != history[-1]["epoch"]:
        last_state = {k: v.clone() for k, v in model.state_dict().items()}
        best.load_best()
        best_report = evaluate()
        model.load_state_dict(last_state)
    stem = f"locate-{args.model}-{trunk}-{args.task}-g{args.grid}"
    paper = PAPER_TABLE1.get((args.model, args.task, args.grid)) if trunk in PAPER_TRUNKS else None
    data = dict(
        command=recorded_command(args), preset=args.preset, config=config.to_dict(), model=name, model_kwargs=kwargs,
        task=args.task, grid=args.grid, seed=args.seed, device=str(device), eval_split=split,
        normalization=normalization.to_dict(), train_images=len(train_x),
        test_images=len(test_x), train_steps=sum(row["steps"] for row in history), train_seconds=round(train_s, 1),
        final_train_loss=history[-1]["loss"], results=report.to_dict(), history=history,
        best={"epoch": best_epoch, "results": best_report.to_dict()}, paper_accuracy=paper,
    )
    title = f"{name} {args.task} {args.grid}x{args.grid}: {100 * report.accuracy:.2f}%"
    summary = markdown_grid(
        ("model", "grid", "task", "accuracy (%), last epoch", "accuracy (%), best epoch", "paper (%)",
         "train images x epochs", "test evaluations"),
        [(name, f"{args.grid}x{args.grid}", args.task, f"{100 * report.accuracy:.2f}",
          f"{100 * best_report.accuracy:.2f} (epoch {best_epoch})", paper if paper is not None else "-",
          f"{len(train_x)} x {config.epochs}", sum(report.total))])
    cells = markdown_grid([f"col {c + 1}" for c in range(args.grid)],
                          [[f"{100 * v:.1f}" for v in row] for row in report.per_cell.tolist()])
    markdown = "\n".join([f"# {title}", "", f"Command: `{data['command']}`", "", summary,
                          "Per-cell accuracy (%), rows top to bottom:", "", cells])
    figures = {f"{stem}.png": lambda path: report.plot(str(path), title=title),
               f"{stem}-curve.png": lambda path: plot_training_curve(
                   history, path, score="test_accuracy", title=f"{name} {args.task} {args.grid}x{args.grid}: per epoch")}
    write_results(args.out, stem, data, markdown, figures=figures)
    if args.save_model:
        save_model(args.save_model, model, name, kwargs, dict(task=args.task, grid=args.grid,
                                                              normalization=normalization.to_dict()))
    return 0
