"""What the position commands (`locate`, `channels`, `attack`) share: their data and training options, the
preset with its command-line overrides, and the normalised images they load."""
from __future__ import annotations

import argparse
from typing import Optional

import torch

from ..data import Normalization, eval_split, load_split
from ..position import PositionConfig

NUM_CLASSES = 10  # CIFAR-10 (the canvases and mosaics keep the dataset's labels)


def preset_config(args: argparse.Namespace, presets: dict) -> PositionConfig:
    """The `--preset` of `presets` with `--epochs`, `--batch-size`, `--train-limit`, `--test-limit` applied."""
    config = PositionConfig(**presets[args.preset].to_dict())
    for key in ("epochs", "batch_size", "train_limit", "test_limit"):
        if getattr(args, key, None) is not None:
            setattr(config, key, getattr(args, key))
    return config


def load_images(args: argparse.Namespace, split: str, limit: Optional[int], *,
                size: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`uint8` images (N, C, h, w) of `split` (first `limit` rows, resized to `size`) and labels."""
    images, labels = load_split(args.data, split, image_column=args.image_column, label_column=args.label_column,
                                limit=limit, size=size)
    print(f"{len(images)} images from {args.data} [{split}]")
    return images, labels


def evaluated_split(args: argparse.Namespace) -> str:
    """The split the command evaluates: `--eval-split`, else the source's test / validation split."""
    return eval_split(args.data, args.eval_split)


def training_statistics(images: torch.Tensor, args: argparse.Namespace) -> Normalization:
    """The normalisation of a model trained here from scratch: its training images' own statistics."""
    return Normalization.of_images(images, source=f"the {len(images)} training images of {args.data} "
                                                  f"[{args.train_split}]")
