"""The GPU-hours a sweep will take, projected before it is submitted: each run's training FLOPs (its model's forward
and backward at the preset's image size, counted by torch's flop counter over one image on the CPU)
over the FLOP/s the engine achieved in the throughput benchmark (`benchmarks/results/throughput/cuda`)."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Sequence

import torch

from .spec import RunSpec


@cache
def flops_per_image(arch: str, *, image_size: int, num_classes: int, stem: str = "standard") -> float:
    """FLOPs of one training image through `arch` (forward and backward) at `image_size` px.

    Examples:
        >>> round(flops_per_image("resnet50", image_size=224, num_classes=1000) / 1e9, 1)  # ~3 x 2 x 4.1 G MACs
        24.3
    """
    from torch.utils.flop_counter import FlopCounterMode

    from augshift.models import create_model

    model, images = create_model(arch, num_classes, stem=stem), torch.zeros(2, 3, image_size, image_size)
    with FlopCounterMode(display=False) as counter:
        model(images).sum().backward()
    return float(counter.get_total_flops()) / len(images)


def achieved_flops(throughput: Path) -> float:
    """The FLOP/s of the engine's `fast` path, the mean over the models of a throughput `results.json`."""
    rows = [row for row in json.loads(throughput.read_text())["rows"] if row["path"] == "fast"]
    return sum(row["tflops"] for row in rows) / len(rows) * 1e12


def projected_gpu_hours(specs: Sequence[RunSpec], *, image_size: int, train_images: int, num_classes: int,
                        throughput: Path) -> float:
    """GPU-hours of training `specs` (evaluation adds about 1 %), at the throughput measured in `throughput`.

    Args:
        specs: the runs (epochs and AugShift's two views are read from each recipe).
        image_size: the training images' side.
        train_images: images per epoch.
        num_classes: the models' outputs.
        throughput: a `results.json` of `benchmarks/throughput.py` on the GPU the runs will use.

    Returns:
        The projected GPU-hours (image-passes x FLOPs per image / achieved FLOP/s).
    """
    rate = achieved_flops(throughput)
    seconds = sum(spec.config.epochs * train_images * (2 if spec.config.augshift else 1)
                  * flops_per_image(spec.arch, image_size=image_size, num_classes=num_classes, stem=spec.stem) / rate
                  for spec in specs)
    return seconds / 3600
