"""Segmentation data: images with per-pixel class masks, from image + mask folders or a Hugging Face dataset with
image / mask columns; `load_segmentation_split` decodes a split into memory.

A folder source holds `images/` and `masks/` (optionally under `<split>/`), files paired by name without
extension (`images/0001.jpg` with `masks/0001.png`). A dataset source is anything
`augshift.data.hub.load_image_dataset` opens (hub name, parquet) with an image column and a mask column
(an image of class indices). Masks hold class indices (PIL modes `L`, `P`, `I`); pixels equal to the
ignore index (255 by default) are not scored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..choices import DEFAULT_IGNORE_INDEX
from ..errors import UsageError, require
from .hub import DATA_PURPOSE, IMAGE_COLUMNS, as_image_column, load_image_dataset
from .images import decode_images

MASK_COLUMNS = ("mask", "annotation", "segmentation", "semantic_segmentation", "label")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def mask_folder(source: str, split: str) -> Optional[Path]:
    """The folder holding `images/` and `masks/` for `split` of `source` (`<source>/<split>` or
    `<source>`), or None when `source` has no such layout."""
    for root in (Path(source) / split, Path(source)):
        if (root / "images").is_dir() and (root / "masks").is_dir():
            return root
    return None


def _mask_column(dataset, given: Optional[str]) -> Optional[str]:
    """The column of `dataset` holding mask images: `given` (checked) or the first known name that is an
    image feature; None when there is none."""
    ImageFeature = require("datasets", purpose=DATA_PURPOSE).Image

    columns = list(dataset.column_names)
    if given is not None:
        if given not in columns:
            raise UsageError(f"no mask column {given!r} in this dataset; its columns are: {', '.join(columns)}")
        return given
    return next((c for c in MASK_COLUMNS if c in columns and isinstance(dataset.features[c], ImageFeature)), None)


def is_segmentation_source(source: str, split: str, *, mask_column: Optional[str] = None) -> bool:
    """Whether `split` of `source` holds masks (an image + mask folder, or a dataset with a mask column)."""
    if mask_folder(source, split) is not None:
        return True
    return _mask_column(load_image_dataset(source, split), mask_column) is not None


def decode_masks(masks: Sequence, *, size: Optional[int] = None) -> Tensor:
    """Class-index masks (N, H, W) `long` from PIL images (modes `L`, `P`, `I`), resized to `size` x
    `size` with nearest neighbours if given."""
    arrays = []
    for mask in masks:
        if mask.mode not in ("L", "P", "I", "I;16"):
            raise UsageError(f"masks must hold class indices (PIL mode L, P or I), got mode {mask.mode}: save them as "
                             f"single-channel PNGs whose pixel values are the classes")
        if size is not None and mask.size != (size, size):
            mask = mask.resize((size, size), resample=Image.Resampling.NEAREST)
        arrays.append(np.asarray(mask, dtype=np.int64))
    if len({a.shape for a in arrays}) != 1:
        raise UsageError("masks have different sizes: pass --image-size to resize images and masks to one size")
    return torch.from_numpy(np.stack(arrays))


def load_segmentation_split(
    source: str, split: str, *, limit: Optional[int] = None, size: Optional[int] = None,
    image_column: Optional[str] = None, mask_column: Optional[str] = None,
) -> tuple[Tensor, Tensor]:
    """`uint8` images (N, 3, H, W) and `long` masks (N, H, W) of `split` of `source` (first `limit`).

    Args:
        source: a folder holding `images/` and `masks/` (optionally under `<split>/`), or a dataset
            `load_image_dataset` opens with an image and a mask column.
        split: the split's name.
        limit: keep the first `limit` images (default: all).
        size: resize both to `size` x `size` (bilinear images, nearest masks); without it all must share a size.
        image_column: a dataset's image column (default: the first of `IMAGE_COLUMNS` there is).
        mask_column: a dataset's mask column (default: the first of `MASK_COLUMNS` that holds images).

    Returns:
        `(images, masks)`: `uint8` (N, 3, H, W) and `long` class indices (N, H, W).

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> root = Path(tmp.name)
        >>> (root / "images").mkdir(); (root / "masks").mkdir()
        >>> for i in range(2):
        ...     Image.new("RGB", (8, 8)).save(root / "images" / f"{i}.jpg")
        ...     Image.new("L", (8, 8), i).save(root / "masks" / f"{i}.png")  # every pixel of class i
        >>> images, masks = load_segmentation_split(tmp.name, "train", size=4)
        >>> images.shape, images.dtype, masks.shape, masks.dtype
        (torch.Size([2, 3, 4, 4]), torch.uint8, torch.Size([2, 4, 4]), torch.int64)
        >>> masks.unique().tolist()
        [0, 1]
        >>> tmp.cleanup()
    """
    folder = mask_folder(source, split)
    if folder is not None:
        masks = {p.stem: p for p in sorted((folder / "masks").iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        images = [p for p in sorted((folder / "images").iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        unpaired = [p.name for p in images if p.stem not in masks]
        if unpaired or not images:
            raise UsageError(f"{folder}/images has {len(images)} images, {len(unpaired)} without a mask of the same "
                             f"name in {folder}/masks (e.g. {', '.join(unpaired[:3])}): pair every image with a mask")
        images = images[:limit]
        return (decode_images(images, size=size),
                decode_masks([Image.open(masks[p.stem]) for p in images], size=size))
    dataset = load_image_dataset(source, split)
    column = _mask_column(dataset, mask_column)
    if column is None:
        raise UsageError(f"{source} [{split}] has no mask column (tried {', '.join(MASK_COLUMNS)}; columns: "
                         f"{', '.join(dataset.column_names)}): name it with --mask-column, or use image + mask folders")
    images_column = image_column or next((c for c in IMAGE_COLUMNS if c in dataset.column_names), None)
    if images_column is None:
        raise UsageError(f"{source} [{split}] has no image column (tried {', '.join(IMAGE_COLUMNS)}): name it with "
                         f"--image-column")
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    dataset = as_image_column(dataset, images_column)
    return decode_images(dataset[images_column], size=size), decode_masks(dataset[column], size=size)


def check_masks(masks: Tensor, num_classes: int, *, ignore_index: int = DEFAULT_IGNORE_INDEX) -> None:
    """Every value of `masks` (N, H, W) is a class in [0, `num_classes`) or `ignore_index`."""
    bad = masks[(masks != ignore_index) & ((masks < 0) | (masks >= num_classes))]
    if len(bad):
        raise UsageError(f"masks hold values {sorted(set(bad.unique().tolist()))[:8]} outside the model's "
                         f"{num_classes} classes and the ignore index {ignore_index}: pass --ignore-index for the "
                         f"value that marks unlabelled pixels")
