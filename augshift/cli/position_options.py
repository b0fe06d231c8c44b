"""What the position commands (``locate``, ``channels``, ``attack``) share: their data and training options, the
preset with its command-line overrides, and the normalised images they load."""
from __future__ import annotations

import argparse
from typing import Optional

import torch

from ..data import Normalization, eval_split, load_split
from ..position import PositionConfig
from .options import add_limit_arguments, add_split_arguments, whole

NUM_CLASSES = 10  # CIFAR-10 (the canvases and mosaics keep the dataset's labels)


def preset_config(args: argparse.Namespace, presets: dict) -> PositionConfig:
    """The ``--preset`` of ``presets`` with ``--epochs``, ``--batch-size``, ``--train-limit``, ``--test-limit`` applied."""
    config = PositionConfig(**presets[args.preset].to_dict())
    for key in ("epochs", "batch_size", "train_limit", "test_limit"):
        if getattr(args, key, None) is not None:
            setattr(config, key, getattr(args, key))
    return config


def load_images(args: argparse.Namespace, split: str, limit: Optional[int], *,
                size: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``uint8`` images (N, C, h, w) of ``split`` (first ``limit`` rows, resized to ``size``) and labels."""
    images, labels = load_split(args.data, split, image_column=args.image_column, label_column=args.label_column,
                                limit=limit, size=size)
    print(f"{len(images)} images from {args.data} [{split}]")
    return images, labels


def evaluated_split(args: argparse.Namespace) -> str:
    """The split the command evaluates: ``--eval-split``, else the source's test / validation split."""
    return eval_split(args.data, args.eval_split)


def training_statistics(images: torch.Tensor, args: argparse.Namespace) -> Normalization:
    """The normalisation of a model trained here from scratch: its training images' own statistics."""
    return Normalization.of_images(images, source=f"the {len(images)} training images of {args.data} "
                                                  f"[{args.train_split}]")


def add_data_args(parser: argparse.ArgumentParser, *, train: bool) -> None:
    """``--data``, its splits (`add_split_arguments`) and columns, ``--seed``, ``--device``, ``--out``."""
    parser.add_argument("--data", default="uoft-cs/cifar10",
                        help="parquet file/folder, image folder or hub name (default: uoft-cs/cifar10)")
    add_split_arguments(parser, train=train)
    parser.add_argument("--image-column", default=None)
    parser.add_argument("--label-column", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--out", default="results/position", help="folder for the JSON, markdown and PNG files")


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """``--preset`` and its overrides, ``--save-model``."""
    parser.add_argument("--preset", choices=("quick", "paper"), default="quick",
                        help="paper: Adam lr 1e-3 betas (0.5, 0.999), batch 48, 20 epochs, flips (GPU); "
                             "quick: a few minutes on 2 CPU cores")
    parser.add_argument("--epochs", type=whole(1), default=None, help="override the preset")
    parser.add_argument("--batch-size", type=whole(1), default=None, help="override the preset")
    add_limit_arguments(parser, train=("train_limit", None), evaluate=("test_limit", None))
    parser.add_argument("--save-model", default=None, help="save the trained model here (for channels / attack)")
