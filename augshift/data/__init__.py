"""Data: dataset statistics and normalisation, the embedded default (generated shapes), Hugging Face
``datasets`` sources, :func:`load_split`, the one loader every command, benchmark and example uses, and
:func:`load_segmentation_split` for images with masks (:mod:`.masks`)."""
from .batches import iterate_batches
from .hub import (
    HELD_OUT_EVERY, IMAGE_COLUMNS, INDEX_COLUMN, LABEL_COLUMNS, TensorTransform, as_image_column, decode_images,
    describe_split, load_image_dataset, num_classes, resolve_columns, to_tensors, with_tensors,
)
from .masks import MASK_COLUMNS, check_masks, is_segmentation_source, load_segmentation_split
from .shapes import SHAPE_CLASSES, make_shapes
from .splits import EMBEDDED, HUB_NAMES, default_source, load_split, load_split_dataset, open_split
from .stats import CIFAR_MEAN, CIFAR_STD, normalize

__all__ = [
    "CIFAR_MEAN", "CIFAR_STD", "EMBEDDED", "HELD_OUT_EVERY", "HUB_NAMES", "IMAGE_COLUMNS", "INDEX_COLUMN",
    "LABEL_COLUMNS", "MASK_COLUMNS", "SHAPE_CLASSES", "TensorTransform", "as_image_column", "check_masks",
    "decode_images", "default_source", "describe_split", "is_segmentation_source", "iterate_batches",
    "load_image_dataset", "load_segmentation_split", "load_split", "load_split_dataset", "make_shapes", "normalize", "num_classes", "open_split", "resolve_columns",
    "to_tensors", "with_tensors",
]
