"""The one way the project loads a split: `load_split` (into memory) and `load_split_dataset`
(decoded per batch, for a `DataLoader`), both over `open_split`.

A source is the embedded default `"shapes"` (generated, no download: `.shapes`), a hub name
(`uoft-cs/cifar10`, `uoft-cs/cifar100`), a parquet file or folder in the hub layout, or an image folder.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..errors import UsageError
from ..reporting.files import write_bytes_atomic
from .hub import load_image_dataset, split_names, to_tensors, with_tensors
from .shapes import make_shapes
from .stats import Normalization

EMBEDDED = "shapes"
SHAPES_SPLIT_SEEDS = {"train": 1, "test": 1_000_003}  # seed offsets: the splits never share an image
HUB_NAMES = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100"}
EVAL_SPLITS = ("test", "validation", "val")  # the split evaluated when none is named: the first of these there is


def eval_split(source: str, split: Optional[str] = None) -> str:
    """The split of `source` to evaluate: `split` when named, else `test` if the source has one, else
    `validation` or `val` (the first that exists); a source with none of them is a `UsageError` asking
    for `--eval-split`.

    Examples:
        >>> eval_split("shapes")
        'test'
    """
    if split is not None:
        return split
    names = list(SHAPES_SPLIT_SEEDS) if source == EMBEDDED else split_names(source)
    if names is None:  # a hub dataset offline without a cache: loading 'test' says what is wrong
        return EVAL_SPLITS[0]
    found = next((name for name in EVAL_SPLITS if name in names), None)
    if found is None:
        raise UsageError(f"{source} has no split to evaluate on (none of {', '.join(EVAL_SPLITS)}; its splits: "
                         f"{', '.join(names)}): name one with --eval-split")
    return found


def default_source(dataset: str, local: Optional[Path] = None) -> str:
    """Where `dataset` (`cifar10`/`cifar100`) comes from: `local` when it holds the hub parquet
    layout (`test-00000-of-00001.parquet`), else the hub name."""
    if dataset not in HUB_NAMES:
        raise UsageError(f"unknown dataset {dataset!r}; known: {', '.join(HUB_NAMES)} (or pass a source)")
    if local is not None and (Path(local) / "test-00000-of-00001.parquet").is_file():
        return str(local)
    return HUB_NAMES[dataset]


def open_split(source: str, split: str, *, limit: Optional[int] = None):
    """`split` of `source` as a `datasets.Dataset` (first `limit` rows).

    Args:
        source: a hub name, a parquet file or folder, or an image folder (see
            `load_image_dataset`; not the embedded `"shapes"`, which is no dataset).
        split: the split's name.
        limit: keep the first `limit` rows (default: all).

    Returns:
        A `datasets.Dataset` (images not decoded yet).

    Examples:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for i, label in enumerate(["cat", "cat", "dog", "dog"]):
        ...     os.makedirs(os.path.join(tmp.name, "train", label), exist_ok=True)
        ...     Image.new("RGB", (8, 8)).save(os.path.join(tmp.name, "train", label, f"{i}.png"))
        >>> len(open_split(tmp.name, "train", limit=3))
        3
        >>> tmp.cleanup()
    """
    dataset = load_image_dataset(source, split)
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset


def load_split(
    source: str, split: str, *, limit: Optional[int] = None, size: Optional[int] = None, centre_crop: bool = False,
    image_column: Optional[str] = None, label_column: Optional[str] = None, seed: int = 0,
    cache: Optional[Path] = None,
) -> tuple[Tensor, Tensor]:
    """`uint8` images (N, 3, H, W) and `long` labels (N,) of `split` of `source`.

    Args:
        source: the embedded `"shapes"` (generated, no download), a hub name (`uoft-cs/cifar10`), a parquet
            file or folder in the hub layout, or an image folder.
        split: the split's name (`train` or `test` for `"shapes"`).
        limit: the first N rows (the embedded `"shapes"` needs it: that many images are generated).
        size: resize to `size` x `size`.
        centre_crop: with `size`, resize the shorter side to `size`, then take the centre square.
        image_column: the image column's name (default: found by name).
        label_column: the label column's name (default: found by name).
        seed: the seed the `"shapes"` images are generated from (other sources ignore it).
        cache: a folder where decoded splits are kept (and read back on the next call).

    Returns:
        `(images, labels)`: `uint8` (N, 3, H, W) and `long` (N,).

    Examples:
        >>> images, labels = load_split("shapes", "train", limit=4)
        >>> images.shape, images.dtype, labels.shape, labels.dtype
        (torch.Size([4, 3, 32, 32]), torch.uint8, torch.Size([4]), torch.int64)
        >>> load_split("shapes", "test", limit=2, size=16)[0].shape
        torch.Size([2, 3, 16, 16])
    """
    if source == EMBEDDED:
        if limit is None or split not in SHAPES_SPLIT_SEEDS:
            raise UsageError(f"the embedded shapes need a limit (number of images) and a split in {tuple(SHAPES_SPLIT_SEEDS)}")
        return make_shapes(limit, size=size or 32, seed=seed + SHAPES_SPLIT_SEEDS[split])
    fit = "crop" if centre_crop else ""
    key = (f"{source.replace('/', '_').strip('_.')}_{split}_{limit or 'all'}_{size or 'orig'}{fit}_"
           f"{image_column or 'auto'}_{label_column or 'auto'}.pt")
    path = Path(cache) / key if cache is not None else None
    if path is not None and path.is_file():
        return torch.load(path)
    data = to_tensors(open_split(source, split, limit=limit), image_column=image_column, label_column=label_column,
                      size=size, centre_crop=centre_crop)
    if path is not None:
        buffer = io.BytesIO()
        torch.save(data, buffer)
        write_bytes_atomic(path, buffer.getvalue())
    return data


def load_split_dataset(
    source: str, split: str, *, normalization: Normalization, limit: Optional[int] = None, size: Optional[int] = None,
    centre_crop: bool = False, image_column: Optional[str] = None, label_column: Optional[str] = None,
):
    """`split` of `source` decoded per row into `{"pixel_values", "labels", "index"}` tensors normalised with
    `normalization` (see `augshift.data.hub.with_tensors`), for a `DataLoader`.

    Args:
        source: a hub name, a parquet file or folder, or an image folder (not the embedded `"shapes"`: use
            `load_split` for it).
        split: the split's name.
        normalization: the `Normalization` the images are normalised with.
        limit: keep the first `limit` rows (default: all).
        size: resize every image to `size` x `size`.
        centre_crop: with `size`, resize the shorter side to `size` and keep the centre square instead.
        image_column: the image column's name (default: found by name).
        label_column: the label column's name (default: found by name).

    Returns:
        A `datasets.Dataset` whose rows are `{"pixel_values": float (3, H, W), "labels": long, "index": long}`.

    Examples:
        >>> import os, tempfile
        >>> from PIL import Image
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for i, label in enumerate(["cat", "cat", "dog", "dog"]):
        ...     os.makedirs(os.path.join(tmp.name, "train", label), exist_ok=True)
        ...     Image.new("RGB", (8, 8)).save(os.path.join(tmp.name, "train", label, f"{i}.png"))
        >>> rows = load_split_dataset(tmp.name, "train", normalization=Normalization((0.5,) * 3, (0.25,) * 3, "given"))
        >>> len(rows), rows[0]["pixel_values"].shape
        (4, torch.Size([3, 8, 8]))
        >>> tmp.cleanup()
    """
    return with_tensors(open_split(source, split, limit=limit), normalization=normalization, image_column=image_column,
                        label_column=label_column, size=size, centre_crop=centre_crop)


def split_statistics(
    source: str, split: str, *, limit: Optional[int] = None, size: Optional[int] = None,
    image_column: Optional[str] = None, label_column: Optional[str] = None,
) -> Normalization:
    """The statistics a model trained from scratch on `split` of `source` is normalised with: those of the
    split's first `limit` images (`Normalization.of_images`), named as such.

    Args:
        source: the source (see `load_split`).
        split: the training split's name.
        limit: how many of its first images (default: all).
        size: resize to `size` x `size` first (as the model sees them).
        image_column: the image column's name (default: found by name).
        label_column: the label column's name (default: found by name).

    Returns:
        The `Normalization`, its `source` naming the images.

    Examples:
        >>> split_statistics("shapes", "train", limit=8).source
        'the first 8 training images of shapes'
    """
    images, _ = load_split(source, split, limit=limit, size=size, image_column=image_column, label_column=label_column)
    return Normalization.of_images(images, source=f"the first {len(images)} training images of {source}")
