"""Image-classification data from Hugging Face ``datasets``: hub names, local parquet, image folders.

:func:`load_image_dataset` opens a split; :func:`to_tensors` decodes it into memory and :func:`with_tensors`
decodes it per batch (for a ``DataLoader``). Most callers use :func:`augshift.data.load_split` instead.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .stats import CIFAR_MEAN, CIFAR_STD, normalize

IMAGE_COLUMNS = ("img", "image", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label")
INDEX_COLUMN = "index"  # the row index added by with_tensors (keys evaluation shifts)


def _parquet_files(source: str, split: str) -> list[str]:
    if os.path.isfile(source):
        return [source]
    return sorted(glob.glob(os.path.join(source, f"{split}-*.parquet")) + glob.glob(os.path.join(source, split, "*.parquet")))


def load_image_dataset(source: str, split: str = "train"):
    """Return ``split`` of ``source`` as a ``datasets.Dataset``.

    ``source`` is a parquet file, a folder of ``{split}-*.parquet`` files (the hub CIFAR layout), an
    image folder (``{split}/<class>/<image>``, or ``<class>/<image>``), or a hub dataset name such as
    ``uoft-cs/cifar10`` (needs network, or a local cache).
    """
    import datasets

    if os.path.exists(source):
        files = _parquet_files(source, split)
        if files:
            return datasets.load_dataset("parquet", data_files={split: files}, split=split)
        if os.path.isdir(source):
            data_dir = os.path.join(source, split) if os.path.isdir(os.path.join(source, split)) else source
            return datasets.load_dataset("imagefolder", data_dir=data_dir, split="train")
        raise ValueError(f"{source!r} is neither a parquet file, a folder with {split}-*.parquet files, nor an image folder")
    return datasets.load_dataset(source, split=split)


def _pick_column(columns: list[str], given: Optional[str], known: tuple[str, ...], what: str) -> str:
    if given is not None:
        if given not in columns:
            raise ValueError(f"no {what} column {given!r} in this dataset; its columns are: {', '.join(columns)}")
        return given
    for name in known:
        if name in columns:
            return name
    raise ValueError(
        f"cannot find the {what} column (tried {', '.join(known)}); the dataset's columns are: "
        f"{', '.join(columns)}; name it with {what}_column="
    )


def resolve_columns(dataset, image_column: Optional[str] = None, label_column: Optional[str] = None) -> tuple[str, str]:
    """The image and label column names: the given ones (checked) or the first known name present."""
    columns = list(dataset.column_names)
    return _pick_column(columns, image_column, IMAGE_COLUMNS, "image"), _pick_column(
        columns, label_column, LABEL_COLUMNS, "label"
    )


def decode_images(images: Sequence, *, size: Optional[int] = None) -> Tensor:
    """Decode PIL images (a ``datasets`` ``Image`` column) into ``uint8`` (N, 3, H, W).

    ``size``: resize every image to ``size`` x ``size`` (bilinear) first; without it all images must
    already have one size (true of CIFAR).
    """
    arrays = []
    for image in images:
        if not hasattr(image, "convert"):
            raise TypeError(f"expected PIL images (a datasets Image column), got {type(image).__name__}")
        image = image.convert("RGB")
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), resample=Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image))
    if not arrays:
        raise ValueError("no images to decode")
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"images have different sizes {sorted(sizes)[:4]}...; pass size= to resize them")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def to_tensors(
    dataset,
    *,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    limit: Optional[int] = None,
    size: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Decode a (small) dataset into ``uint8`` images (N, 3, H, W) and ``long`` labels (N,).

    ``limit`` keeps the first ``limit`` rows; ``size`` resizes every image to ``size`` x ``size`` (without
    it all images must have one size, true of CIFAR).
    """
    image_column, label_column = resolve_columns(dataset, image_column, label_column)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    images = decode_images(dataset[image_column], size=size)
    labels = torch.tensor(dataset[label_column], dtype=torch.long)
    return images, labels


def num_classes(dataset, label_column: Optional[str] = None) -> int:
    """Number of classes: from the ``ClassLabel`` feature of the label column, else ``max(label) + 1``."""
    label_column = _pick_column(list(dataset.column_names), label_column, LABEL_COLUMNS, "label")
    found = getattr(dataset.features[label_column], "num_classes", None)
    return int(found) if found is not None else int(max(dataset.with_format(None)[label_column])) + 1


@dataclass(frozen=True)
class TensorTransform:
    """The ``with_transform`` function of :func:`with_tensors` (a class, so it pickles into workers)."""

    image_column: str
    label_column: str
    size: Optional[int] = None
    mean: tuple[float, ...] = CIFAR_MEAN
    std: tuple[float, ...] = CIFAR_STD

    def __call__(self, batch: dict) -> dict:
        images = decode_images(batch[self.image_column], size=self.size)
        return {
            "pixel_values": normalize(images, self.mean, self.std),
            "labels": torch.as_tensor(batch[self.label_column], dtype=torch.long),
            INDEX_COLUMN: torch.as_tensor(batch[INDEX_COLUMN], dtype=torch.long),
        }


def with_tensors(
    dataset,
    *,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    size: Optional[int] = None,
    mean: tuple[float, ...] = CIFAR_MEAN,
    std: tuple[float, ...] = CIFAR_STD,
):
    """Return ``dataset`` yielding tensors, decoded on the fly with ``with_transform``.

    Each row becomes ``{"pixel_values": float (3, H, W) normalised with mean/std, "labels": long,
    "index": long}``, so a ``DataLoader`` gives batches of (B, 3, H, W), (B,) and (B,). ``index`` is the
    row's index in ``dataset`` (an ``index`` column is added unless there is one), so it survives
    ``select`` / ``shuffle`` and keys the evaluation shifts of :class:`augshift.ShiftConsistency`.
    Image and label columns are found by name (``img``/``image``, ``label``/``fine_label``, ...) or given;
    a wrong name raises an error listing the dataset's columns. ``size`` resizes to ``size`` x ``size``.
    """
    image_column, label_column = resolve_columns(dataset, image_column, label_column)
    if INDEX_COLUMN not in dataset.column_names:
        dataset = dataset.add_column(INDEX_COLUMN, np.arange(len(dataset)))
    transform = TensorTransform(image_column, label_column, size, tuple(mean), tuple(std))
    return dataset.with_transform(transform, columns=[image_column, label_column, INDEX_COLUMN])
