"""Load image-classification datasets and turn them into tensors."""
from __future__ import annotations

import glob
import os
from typing import Optional

import numpy as np
import torch
from torch import Tensor

IMAGE_COLUMNS = ("img", "image", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label")


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


def resolve_columns(dataset, image_column: Optional[str] = None, label_column: Optional[str] = None) -> tuple[str, str]:
    """The image and label column names: the given ones (checked) or the first known name present."""
    columns = list(dataset.column_names)

    def pick(given: Optional[str], known: tuple[str, ...], what: str) -> str:
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

    return pick(image_column, IMAGE_COLUMNS, "image"), pick(label_column, LABEL_COLUMNS, "label")


def to_tensors(
    dataset,
    *,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    limit: Optional[int] = None,
) -> tuple[Tensor, Tensor]:
    """Decode a (small) dataset into ``uint8`` images (N, 3, H, W) and ``long`` labels (N,).

    All images must have one size (true of CIFAR); ``limit`` keeps the first ``limit`` rows.
    """
    image_column, label_column = resolve_columns(dataset, image_column, label_column)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    arrays = [np.asarray(image.convert("RGB")) for image in dataset[image_column]]
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"images have different sizes {sorted(sizes)[:4]}...; resize them first")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(dataset[label_column], dtype=torch.long)
    return images, labels
