"""Image-classification data from Hugging Face `datasets`: hub names, local parquet, image folders.

`load_image_dataset` opens a split; `to_tensors` decodes it into memory and `with_tensors`
decodes it per batch (for a `DataLoader`). Most callers use `augshift.data.load_split` instead.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError, require
from .images import decode_images
from .stats import Normalization, normalize

DATA_PURPOSE = "reading a data set (hub name, parquet or image folder)"

IMAGE_COLUMNS = ("img", "image", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label")
INDEX_COLUMN = "index"  # the row index added by with_tensors (keys evaluation shifts)
HELD_OUT_EVERY = 5  # a source without named splits: 'test' is every 5th row (0, 5, 10, ...), 'train' the others
UNSPLIT_ROWS = {"train": f"the {HELD_OUT_EVERY - 1} of every {HELD_OUT_EVERY} rows that 'test' leaves",
                "test": f"every {HELD_OUT_EVERY}th row: 0, {HELD_OUT_EVERY}, {2 * HELD_OUT_EVERY}, ..."}
HOW_TO_NAME_SPLITS = ("name the splits: <split>-*.parquet files or <split>/*.parquet folders, or image folders "
                      "<split>/<class>/<image> (e.g. train/ and test/)")


def local_splits(source: str) -> tuple[str, dict[Optional[str], list[str]]]:
    """`(builder, {split: paths})` of a local `source` for `datasets.load_dataset`: `"parquet"` with the
    files of each split, or `"imagefolder"` with each split's folder. A source without named splits (one
    parquet file, a folder of parquet files without split names, an image folder of class folders) has the
    single key `None`."""
    if os.path.isfile(source):
        return "parquet", {None: [source]}
    splits: dict[Optional[str], list[str]] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(source), "*-*.parquet"))):
        splits.setdefault(os.path.basename(path).split("-", 1)[0], []).append(path)
    for path in sorted(glob.glob(os.path.join(glob.escape(source), "*", "*.parquet"))):
        splits.setdefault(os.path.basename(os.path.dirname(path)), []).append(path)
    if splits:
        return "parquet", splits
    loose = sorted(glob.glob(os.path.join(glob.escape(source), "*.parquet")))
    if loose:
        return "parquet", {None: loose}
    folders = sorted(entry.path for entry in os.scandir(source) if entry.is_dir() and not entry.name.startswith("."))
    nested = [folder for folder in folders if any(entry.is_dir() for entry in os.scandir(folder))]
    if nested:  # <split>/<class>/<image>
        return "imagefolder", {os.path.basename(folder): [folder] for folder in nested}
    return "imagefolder", {None: [source]}  # <class>/<image>


def split_names(source: str) -> Optional[list[str]]:
    """The splits of `source`: a local source's (`train` and `test` for one without named splits), a hub
    dataset's where `datasets` can tell (from its cache when offline); None where it cannot."""
    if os.path.exists(source):
        _, splits = local_splits(source)
        return list(UNSPLIT_ROWS) if None in splits else sorted(splits)
    datasets = require("datasets", purpose=DATA_PURPOSE)

    try:
        return list(datasets.get_dataset_split_names(source))
    except Exception:  # noqa: BLE001 -- offline without a cache, or not a dataset: loading it will say which
        return None


def held_out_rows(count: int, split: str) -> range | list[int]:
    """The rows of `split` (`train` or `test`) of a source without named splits of `count` rows."""
    if split == "test":
        return range(0, count, HELD_OUT_EVERY)
    return [row for row in range(count) if row % HELD_OUT_EVERY]


def describe_split(source: str, split: str) -> str:
    """Which images `split` of `source` holds, in words (for result files).

    Args:
        source: a hub dataset name, a parquet file or folder, or an image folder (see `load_image_dataset`).
        split: the split's name.

    Returns:
        A sentence naming the split and, for a local source without named splits, which of its rows it is.

    Examples:
        >>> describe_split("uoft-cs/cifar10", "test")
        "split 'test' of the Hugging Face dataset uoft-cs/cifar10"
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> os.makedirs(os.path.join(tmp.name, "cat"))  # <class>/<image>: no named splits
        >>> describe_split(tmp.name, "test")
        "split 'test' of ..., which has no named splits: every 5th row: 0, 5, 10, ..."
        >>> tmp.cleanup()
    """
    if not os.path.exists(source):
        return f"split {split!r} of the Hugging Face dataset {source}"
    builder, splits = local_splits(source)
    if None not in splits:
        return f"split {split!r} of {source} ({len(splits.get(split, []))} {'files' if builder == 'parquet' else 'folder'})"
    return f"split {split!r} of {source}, which has no named splits: {UNSPLIT_ROWS[split]}"


def _load_local(builder: str, paths: list[str]):
    datasets = require("datasets", purpose=DATA_PURPOSE)

    try:
        if builder == "parquet":
            return datasets.load_dataset("parquet", data_files={"train": paths}, split="train")
        return datasets.load_dataset("imagefolder", data_dir=paths[0], split="train")
    except datasets.data_files.EmptyDatasetError:
        raise UsageError(f"no images found in {paths[0]}: give an image folder (<class>/<image> or "
                         f"<split>/<class>/<image>), a parquet file or a folder of parquet files") from None


def _load_hub(source: str, split: str):
    datasets = require("datasets", purpose=DATA_PURPOSE)

    try:
        return datasets.load_dataset(source, split=split)
    except (ConnectionError, FileNotFoundError) as error:
        raise UsageError(f"{source!r} is not a file or folder here, and no Hugging Face dataset of that name could be "
                         f"loaded ({type(error).__name__}: {error}); give an existing path, or a hub name (needs the "
                         f"network or a cached copy)") from None
    except ValueError as error:  # datasets: 'Unknown split "x". Should be one of [...]'
        if "split" not in str(error).lower():
            raise
        raise UsageError(f"{source}: {error}; name one of those splits") from None


def load_image_dataset(source: str, split: str = "train"):
    """Return `split` of `source` as a `datasets.Dataset`.

    A local source without named splits is split deterministically: `test` is every `HELD_OUT_EVERY`-th
    row, `train` the others, so the two never share an image; other split names are refused. A split the source
    lacks raises `UsageError` naming the splits it has.

    Args:
        source: a parquet file, a folder of `{split}-*.parquet` files (the hub CIFAR layout) or of
            `{split}/*.parquet`, an image folder (`{split}/<class>/<image>`, or `<class>/<image>`), or a hub
            dataset name such as `uoft-cs/cifar10` (needs network, or a local cache).
        split: the split's name (`train`, `test`, ...).

    Returns:
        The split, a `datasets.Dataset` (images not decoded yet).

    Examples:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for i, label in enumerate(["cat", "cat", "dog", "dog"]):
        ...     os.makedirs(os.path.join(tmp.name, "train", label), exist_ok=True)
        ...     Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(os.path.join(tmp.name, "train", label, f"{i}.png"))
        >>> dataset = load_image_dataset(tmp.name, "train")
        >>> len(dataset), dataset.column_names
        (4, ['image', 'label'])
        >>> tmp.cleanup()
    """
    if not os.path.exists(source):
        return _load_hub(source, split)
    builder, splits = local_splits(source)
    if None in splits:
        if split not in UNSPLIT_ROWS:
            raise UsageError(f"{source} has no named splits, so only 'train' and 'test' exist (test: "
                             f"{UNSPLIT_ROWS['test']}; train: the others), not {split!r}; use one of them, or "
                             f"{HOW_TO_NAME_SPLITS}")
        dataset = _load_local(builder, splits[None])
        return dataset.select(held_out_rows(len(dataset), split))
    if split not in splits:
        raise UsageError(f"{source} has no split {split!r}; its splits are: {', '.join(sorted(splits))}. Name one of "
                         f"them, or {HOW_TO_NAME_SPLITS}")
    return _load_local(builder, splits[split])


def _pick_column(columns: list[str], given: Optional[str], known: tuple[str, ...], what: str) -> str:
    if given is not None:
        if given not in columns:
            raise UsageError(f"no {what} column {given!r} in this dataset; its columns are: {', '.join(columns)}")
        return given
    for name in known:
        if name in columns:
            return name
    raise UsageError(
        f"cannot find the {what} column (tried {', '.join(known)}); the dataset's columns are: "
        f"{', '.join(columns)}; name it with --{what}-column (in Python: {what}_column=)"
    )


def as_image_column(dataset, column: str):
    """`dataset` with `column` as undecoded image records (`{bytes, path}`), which
    `decode_images` decodes faithfully or refuses naming the file (parquet written without
    Hugging Face metadata stores them so already); a column of anything else is a `UsageError`."""
    datasets = require("datasets", purpose=DATA_PURPOSE)

    feature = dataset.features[column]
    if isinstance(feature, datasets.Image) or (isinstance(feature, dict) and "bytes" in feature):
        return dataset.cast_column(column, datasets.Image(decode=False))
    raise UsageError(f"column {column!r} holds {feature}, not images; name the image column with --image-column "
                     f"(in Python: image_column=)")


def resolve_columns(dataset, image_column: Optional[str] = None, label_column: Optional[str] = None) -> tuple[str, str]:
    """The image and label column names: the given ones (checked) or the first known name present."""
    columns = list(dataset.column_names)
    return _pick_column(columns, image_column, IMAGE_COLUMNS, "image"), _pick_column(
        columns, label_column, LABEL_COLUMNS, "label"
    )


def to_tensors(
    dataset,
    *,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    limit: Optional[int] = None,
    size: Optional[int] = None,
    centre_crop: bool = False,
) -> tuple[Tensor, Tensor]:
    """Decode a (small) dataset into `uint8` images (N, 3, H, W) and `long` labels (N,).

    Args:
        dataset: a `datasets.Dataset` with an image column and a label column.
        image_column: the image column's name (default: the first of `IMAGE_COLUMNS` there is).
        label_column: the label column's name (default: the first of `LABEL_COLUMNS` there is).
        limit: keep the first `limit` rows.
        size: resize every image to `size` x `size` (see `decode_images`; without `size` all images
            must have one size, true of CIFAR).
        centre_crop: with `size`, resize the shorter side to `size`, then take the centre square.

    Returns:
        `(images, labels)`: `uint8` (N, 3, H, W) and `long` (N,).

    Examples:
        >>> import datasets
        >>> dataset = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8))] * 4, "label": [0, 1, 2, 1]})
        >>> images, labels = to_tensors(dataset, size=4)
        >>> images.shape, images.dtype, labels.tolist()
        (torch.Size([4, 3, 4, 4]), torch.uint8, [0, 1, 2, 1])
        >>> to_tensors(dataset, limit=2)[0].shape
        torch.Size([2, 3, 8, 8])
    """
    image_column, label_column = resolve_columns(dataset, image_column, label_column)
    dataset = as_image_column(dataset, image_column)
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    if len(dataset) == 0:
        raise UsageError("the split is empty: it holds no images")
    images = decode_images(dataset[image_column], size=size, centre_crop=centre_crop)
    return images, class_labels(dataset[label_column], label_column)


def class_labels(values: Sequence, column: str) -> Tensor:
    """`values` as `long` class indices (N,), refusing what is not a whole number (strings, 1.5): a cast would
    truncate them into wrong classes. Range checks (`-1`, `>= K`) are the metric's
    (`check_labels`)."""
    if any(isinstance(value, str) for value in values):
        raise UsageError(f"the label column {column!r} holds strings ({next(v for v in values if isinstance(v, str))!r}"
                         "...), not class indices: give the dataset a ClassLabel column (dataset.class_encode_column, "
                         "in the class order the model was trained with) or name another with --label-column")
    labels = torch.as_tensor(np.asarray(values, dtype=np.float64))
    if not bool((labels == labels.round()).all()):
        raise UsageError(f"the label column {column!r} holds values that are not whole numbers (e.g. "
                         f"{labels[labels != labels.round()][0].item():g}): labels must be class indices")
    return labels.long()


def num_classes(dataset, label_column: Optional[str] = None) -> int:
    """Number of classes: from the `ClassLabel` feature of the label column, else `max(label) + 1`.

    Args:
        dataset: a `datasets.Dataset`.
        label_column: the label column's name (default: the first of `LABEL_COLUMNS` there is).

    Returns:
        The number of classes, an int.

    Examples:
        >>> import datasets
        >>> num_classes(datasets.Dataset.from_dict({"label": [0, 3, 1]}))
        4
        >>> features = datasets.Features({"fine_label": datasets.ClassLabel(names=["a", "b", "c", "d", "e"])})
        >>> num_classes(datasets.Dataset.from_dict({"fine_label": [0, 1]}, features=features))
        5
    """
    label_column = _pick_column(list(dataset.column_names), label_column, LABEL_COLUMNS, "label")
    found = getattr(dataset.features[label_column], "num_classes", None)
    return int(found) if found is not None else int(max(dataset.with_format(None)[label_column])) + 1


@dataclass(frozen=True)
class TensorTransform:
    """The `with_transform` function of `with_tensors` (a class, so it pickles into workers)."""

    image_column: str
    label_column: str
    normalization: Normalization
    size: Optional[int] = None
    centre_crop: bool = False

    def __call__(self, batch: dict) -> dict:
        images = decode_images(batch[self.image_column], size=self.size, centre_crop=self.centre_crop)
        return {
            "pixel_values": normalize(images, self.normalization),
            "labels": class_labels(batch[self.label_column], self.label_column),
            INDEX_COLUMN: torch.as_tensor(batch[INDEX_COLUMN], dtype=torch.long),
        }


def with_tensors(
    dataset,
    *,
    normalization: Normalization,
    image_column: Optional[str] = None,
    label_column: Optional[str] = None,
    size: Optional[int] = None,
    centre_crop: bool = False,
):
    """Return `dataset` yielding tensors, decoded on the fly with `with_transform`.

    Each row becomes `{"pixel_values": ..., "labels": ..., "index": ...}`: the image, float (3, H, W) normalised
    with `normalization`, its label and its index, long scalars; so a `DataLoader` gives batches of (B, 3, H, W),
    (B,) and (B,). `index` is the row's index in `dataset` (an `index` column is added unless there is one), so it survives
    `select` / `shuffle` and keys the evaluation shifts of `augshift.ShiftConsistency`.

    Args:
        dataset: a `datasets.Dataset` with an image column and a label column.
        normalization: the `Normalization` the images are normalised with.
        image_column: the image column's name; by default found by name (`img`/`image`, ...). A wrong name
            raises an error listing the dataset's columns.
        label_column: the label column's name; by default found by name (`label`/`fine_label`, ...).
        size: resize every image to `size` x `size`.
        centre_crop: with `size`, resize the shorter side to `size` and keep the centre square instead
            (`decode_images`).

    Returns:
        The dataset, transformed (a `datasets.Dataset`).

    Examples:
        >>> import datasets
        >>> dataset = datasets.Dataset.from_dict({"image": [Image.new("RGB", (8, 8))] * 4, "label": [0, 1, 2, 1]})
        >>> rows = with_tensors(dataset, normalization=Normalization((0.5,) * 3, (0.25,) * 3, "given"), size=4)
        >>> sorted(rows[1]), rows[1]["pixel_values"].shape, int(rows[1]["index"])
        (['index', 'labels', 'pixel_values'], torch.Size([3, 4, 4]), 1)
        >>> batch = next(iter(torch.utils.data.DataLoader(rows, batch_size=2)))
        >>> batch["pixel_values"].shape, batch["labels"].tolist()
        (torch.Size([2, 3, 4, 4]), [0, 1])
    """
    image_column, label_column = resolve_columns(dataset, image_column, label_column)
    dataset = as_image_column(dataset, image_column)
    if INDEX_COLUMN not in dataset.column_names:
        dataset = dataset.add_column(INDEX_COLUMN, np.arange(len(dataset)))
    transform = TensorTransform(image_column, label_column, normalization, size, centre_crop)
    return dataset.with_transform(transform, columns=[image_column, label_column, INDEX_COLUMN])
