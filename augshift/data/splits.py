"""The one way the project loads a split: :func:`load_split` (into memory) and :func:`load_split_dataset`
(decoded per batch, for a ``DataLoader``), both over :func:`open_split`.

A source is the embedded default ``"shapes"`` (generated, no download: :mod:`.shapes`), a hub name
(``uoft-cs/cifar10``, ``uoft-cs/cifar100``), a parquet file or folder in the hub layout, or an image folder.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import UsageError
from ..reporting.files import write_bytes_atomic
from .hub import load_image_dataset, to_tensors, with_tensors
from .shapes import make_shapes
from .stats import CIFAR_MEAN, CIFAR_STD

EMBEDDED = "shapes"
SHAPES_SPLIT_SEEDS = {"train": 1, "test": 1_000_003}  # seed offsets: the splits never share an image
HUB_NAMES = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100"}


def default_source(dataset: str, local: Optional[Path] = None) -> str:
    """Where ``dataset`` (``cifar10``/``cifar100``) comes from: ``local`` when it holds the hub parquet
    layout (``test-00000-of-00001.parquet``), else the hub name."""
    if dataset not in HUB_NAMES:
        raise UsageError(f"unknown dataset {dataset!r}; known: {', '.join(HUB_NAMES)} (or pass a source)")
    if local is not None and (Path(local) / "test-00000-of-00001.parquet").is_file():
        return str(local)
    return HUB_NAMES[dataset]


def open_split(source: str, split: str, *, limit: Optional[int] = None):
    """``split`` of ``source`` as a ``datasets.Dataset`` (first ``limit`` rows)."""
    dataset = load_image_dataset(source, split)
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset


def load_split(
    source: str, split: str, *, limit: Optional[int] = None, size: Optional[int] = None,
    image_column: Optional[str] = None, label_column: Optional[str] = None, seed: int = 0,
    cache: Optional[Path] = None,
) -> tuple[Tensor, Tensor]:
    """``uint8`` images (N, 3, H, W) and ``long`` labels (N,) of ``split`` of ``source``.

    ``limit``: the first N rows (the embedded ``"shapes"`` needs it: that many images are generated, from
    ``seed``); ``size``: resize to ``size`` x ``size``; ``cache``: a folder where decoded splits are kept.
    """
    if source == EMBEDDED:
        if limit is None or split not in SHAPES_SPLIT_SEEDS:
            raise UsageError(f"the embedded shapes need a limit (number of images) and a split in {tuple(SHAPES_SPLIT_SEEDS)}")
        return make_shapes(limit, size=size or 32, seed=seed + SHAPES_SPLIT_SEEDS[split])
    key = f"{source.replace('/', '_').strip('_.')}_{split}_{limit or 'all'}_{size or 'orig'}_{label_column or 'auto'}.pt"
    path = Path(cache) / key if cache is not None else None
    if path is not None and path.is_file():
        return torch.load(path)
    data = to_tensors(open_split(source, split, limit=limit), image_column=image_column, label_column=label_column,
                      size=size)
    if path is not None:
        buffer = io.BytesIO()
        torch.save(data, buffer)
        write_bytes_atomic(path, buffer.getvalue())
    return data


def load_split_dataset(
    source: str, split: str, *, limit: Optional[int] = None, size: Optional[int] = None,
    image_column: Optional[str] = None, label_column: Optional[str] = None,
    mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD,
):
    """``split`` of ``source`` decoded per row into ``{"pixel_values", "labels", "index"}`` tensors (see
    :func:`augshift.data.hub.with_tensors`), for a ``DataLoader``."""
    return with_tensors(open_split(source, split, limit=limit), image_column=image_column,
                        label_column=label_column, size=size, mean=mean, std=std)

