"""AugShift in a plain Accelerate training loop: copy this file and change what you need.

    python -m augshift.integrations.accelerate.train --data uoft-cs/cifar10 --model resnet18 --output runs/r18
    accelerate launch --multi_gpu --num_processes 2 -m augshift.integrations.accelerate.train --data DIR --output OUT
    accelerate launch --multi_gpu --cpu --num_processes 2 -m augshift.integrations.accelerate.train --cpu --data DIR ...

(`accelerate launch --cpu --num_processes 2` without `--multi_gpu` starts one process; `torchrun
--nproc_per_node 2 -m augshift.integrations.accelerate.train --cpu ...` works too.) Logged losses are the means over
processes; accuracy and consistency count every evaluation image once.

Any timm model name, `torchvision/<name>` or Hugging Face `transformers` image model (`hf:<hub id or
save_pretrained folder>`), any Hugging Face image-classification dataset (hub name, parquet, image folder). Images
are normalised as the pretrained weights expect (`--pretrained`: timm's `pretrained_cfg`, torchvision's weights,
the `transformers` image processor), else with the training images' own statistics; `metrics.json` records which.
Each epoch: train (AugShift on unless `--no-augshift`), evaluate accuracy and shift consistency over all processes,
save a checkpoint with the metrics so far (`--resume` continues from the last one) and `metrics.json`; the plain
model's weights go to `model.safetensors` (a `transformers` model: `save_pretrained`, with its image processor
when it has one). A user mistake (a bad path, option or data set) prints one line and exits with 2.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

from augshift.errors import exit_unless_installed

# the optional packages, checked before they are imported: a missing one is a line naming its extra, not a traceback
exit_unless_installed("augshift.integrations.accelerate.train", "accelerate", "datasets", purpose="the Accelerate example")

from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from torch import nn
from torch.utils.data import DataLoader

from augshift import AugShift, AugShiftConfig, RandomShift, ShiftConsistency, add_augshift_arguments
from augshift import logits_of, loss_parts
from augshift.arguments import add_limit_arguments
from augshift.data import Normalization, eval_split, load_split_dataset
from augshift.data.hub import num_classes
from augshift.data.splits import open_split, split_statistics
from augshift.data.stats import normalization_policy
from augshift.distributed import average_buffers
from augshift.errors import UsageError, run_command
from augshift.integrations.accelerate.checkpoints import (
    last_checkpoint, save_checkpoint, save_final_model, weights_digest,
)
from augshift.models import create_model, pretrained_normalization
from augshift.progress import progress_bar
from augshift.protocols import add_protocols_argument, check_crop_options
from augshift.reporting.files import check_output_folder, write_json_atomic
from augshift.seeding import epoch_seed, seed_generator

METRICS = "metrics.json"  # in --output, and in every checkpoint (the metrics up to its epoch)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--data", default="uoft-cs/cifar10", help="hub name, parquet file/folder or image folder")
    add("--train-split", default="train")
    add("--eval-split", default=None, help="default: test if the data has one, else validation or val")
    add("--image-column", default=None)
    add("--label-column", default=None)
    add("--image-size", type=int, default=None, help="resize to this square size (with --crop-from: the crop)")
    add("--crop-from", type=int, default=None, metavar="N",
        help="evaluation images: resize the shorter side to N and keep the centre N x N, for the crop protocol's "
             "--image-size crops (Zhang 2019: 256 for 224)")
    add_limit_arguments(p, train=("train_samples", None), evaluate=("eval_samples", None))
    add("--model", default="resnet18", help="timm model name, torchvision/<name> or hf:<hub id or folder>")
    add("--pretrained", action="store_true", help="the zoo's weights, normalised as they expect")
    add("--stats-samples", type=int, default=5000,
        help="a model from scratch is normalised with the statistics of this many training images")
    add("--epochs", type=int, default=30)
    add("--batch-size", type=int, default=128, help="per process")
    add("--eval-batch-size", type=int, default=256, help="per process")
    add("--lr", type=float, default=0.1)
    add("--weight-decay", type=float, default=5e-4)
    add("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    add("--mixed-precision", choices=("no", "fp16", "bf16"), default=None)
    add("--no-augshift", dest="augshift", action="store_false", help="baseline: one shifted view, CE only")
    add_augshift_arguments(p)
    add_protocols_argument(p)
    add("--workers", type=int, default=0)
    add("--seed", type=int, default=0)
    add("--output", required=True)
    add("--resume", action="store_true", help="continue from the last checkpoint in --output")
    add("--cpu", action="store_true", help="run on CPU (with --multi_gpu: several CPU processes)")
    args = p.parse_args(argv)
    changed = AugShiftConfig.from_args(args).loss_options_changed()
    if not args.augshift and changed:
        p.error(f"{', '.join('--' + name for name in changed)} act only with AugShift: drop them or --no-augshift")
    return args


def tensor_split(args, split: str, samples, normalization: Normalization, *, evaluation: bool = False):
    """The split as tensors; evaluation images at `--crop-from` (centre square) when the crop protocol asks."""
    larger = evaluation and args.crop_from is not None
    return load_split_dataset(args.data, split, normalization=normalization, limit=samples,
                              size=args.crop_from if larger else args.image_size, centre_crop=larger,
                              image_column=args.image_column, label_column=args.label_column)


def normalization_for(args, model: nn.Module) -> Normalization:
    """The pretrained weights' statistics, else the training images' own."""
    limit = min(args.stats_samples, args.train_samples or args.stats_samples)  # of the images it trains on
    return normalization_policy(
        given=None, recorded=pretrained_normalization(args.model, model) if args.pretrained else None,
        data=lambda: split_statistics(args.data, args.train_split, limit=limit, size=args.image_size,
                                      image_column=args.image_column, label_column=args.label_column))


def evaluate(accelerator, model: nn.Module, loader, args) -> dict:
    """Accuracy and shift consistency (shifts in the range AugShift trains with), every sample of every process
    counted once (keyed by its dataset index)."""
    metric = ShiftConsistency(protocols=args.protocols, max_shift=AugShiftConfig.from_args(args).reach,
                              crop_size=args.image_size if args.crop_from else None)
    model.eval()
    for batch in progress_bar(loader, desc="eval"):  # drawn by the main process
        metric.update(model, batch["pixel_values"], batch["labels"], batch["index"])
    model.train()
    return metric.compute().to_dict()


def resume_point(args) -> tuple:
    """`(checkpoint, epoch, history)` to continue from (`(None, 0, [])` for a new run); refuses an `--output`
    with checkpoints without `--resume`, and `--resume` without checkpoints."""
    check_output_folder(args.output, option="--output")
    checkpoint, start = last_checkpoint(os.path.join(args.output, "checkpoints"))
    if checkpoint and not args.resume:
        raise UsageError(f"{args.output} has checkpoints: pass --resume, or another --output")
    if args.resume and not checkpoint:
        raise UsageError(f"--resume: {args.output} has no checkpoints (checkpoints/epoch_<n>) to resume from; check "
                         "--output, or leave out --resume to start a new run")
    if not checkpoint:
        return None, 0, []
    path = os.path.join(checkpoint, METRICS)
    if not os.path.isfile(path):
        raise UsageError(f"{checkpoint} has no {METRICS} (written by an older train.py?); start a new --output")
    with open(path) as f:
        return checkpoint, start, json.load(f)["epochs"]


def main(argv=None) -> None:
    args = parse_args(argv)
    check_crop_options(args.protocols, args.crop_from, args.image_size)
    checkpoint, start, history = resume_point(args)
    accelerator = Accelerator(cpu=args.cpu, mixed_precision=args.mixed_precision,
                              gradient_accumulation_steps=args.grad_accum)
    split = eval_split(args.data, args.eval_split)
    set_seed(args.seed)  # the model's initial weights
    with accelerator.main_process_first():  # the first process builds the datasets cache and reads the weights
        classes = num_classes(open_split(args.data, args.train_split), args.label_column)
        model = create_model(args.model, classes, pretrained=args.pretrained)
        normalization = normalization_for(args, model)
        train_set = tensor_split(args, args.train_split, args.train_samples, normalization)
        eval_set = tensor_split(args, split, args.eval_samples, normalization, evaluation=True)
    accelerator.print(f"normalisation: {normalization.to_dict()}; evaluating split {split!r}")
    shifts, order = torch.Generator(), torch.Generator()  # re-seeded every epoch: resumable
    config = AugShiftConfig.from_args(args)
    net = (AugShift(model, config=config, generator=shifts) if args.augshift
           else nn.Sequential(RandomShift(config.max_shift, mode=config.mode, generator=shifts), model))  # baseline: 1 shifted view
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)  # stepped per epoch
    train_loader = DataLoader(train_set, args.batch_size, shuffle=True, generator=order, num_workers=args.workers)
    eval_loader = DataLoader(eval_set, args.eval_batch_size, num_workers=args.workers)
    net, optimizer, train_loader, eval_loader = accelerator.prepare(net, optimizer, train_loader, eval_loader)
    accelerator.register_for_checkpointing(scheduler)

    if checkpoint:
        accelerator.load_state(checkpoint)

    for epoch in range(start, args.epochs):
        order.manual_seed(epoch_seed(args.seed, epoch, -1))  # the same data order on every process
        seed_generator(shifts, seed=args.seed, epoch=epoch, rank=accelerator.process_index)
        totals = {}
        bar = progress_bar(train_loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=True)  # main process only
        for batch in bar:
            images, labels = batch["pixel_values"], batch["labels"]
            with accelerator.accumulate(net):
                if args.augshift:
                    result = net(images, labels)  # CE on two shifted views + pooled-feature consistency
                    loss, parts = result["loss"], loss_parts(result)
                else:
                    loss = F.cross_entropy(logits_of(net(images)), labels)
                    parts = {"loss": loss.item()}
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
            totals = {key: totals.get(key, 0.0) + value / len(bar) for key, value in parts.items()}
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
        scheduler.step()
        average_buffers(model)  # BatchNorm statistics: the same on every process
        train = accelerator.reduce(torch.tensor(list(totals.values()), device=accelerator.device), reduction="mean")
        history.append({"epoch": epoch + 1, "train": dict(zip(totals, train.tolist())),
                        "eval": evaluate(accelerator, model, eval_loader, args),
                        "rank_weight_digests": gather_object([weights_digest(model)])})
        accelerator.print(json.dumps({"epoch": epoch + 1, **history[-1]["train"], **history[-1]["eval"]}))
        metrics = {"args": vars(args), "eval_split": split, "normalization": normalization.to_dict(), "epochs": history}
        save_checkpoint(accelerator, os.path.join(args.output, "checkpoints", f"epoch_{epoch + 1}"), files={METRICS: metrics})
        if accelerator.is_main_process:
            write_json_atomic(os.path.join(args.output, METRICS), metrics)
    save_final_model(accelerator, model, args.output, normalization)
    accelerator.end_training()


if __name__ == "__main__":
    sys.exit(run_command("train.py", main, sys.argv[1:]))
