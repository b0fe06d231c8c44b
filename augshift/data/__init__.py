"""Data: normalisation (:class:`Normalization`: the statistics and their source), the embedded default (generated
shapes), Hugging Face ``datasets`` sources, :func:`load_split`, the one loader every command, benchmark and example
uses, :func:`eval_split` (which split is evaluated), and :func:`load_segmentation_split` for images with masks
(:mod:`.masks`)."""
from .batches import iterate_batches
from .hub import (
    HELD_OUT_EVERY, IMAGE_COLUMNS, INDEX_COLUMN, LABEL_COLUMNS, describe_split, load_image_dataset, num_classes,
    resolve_columns, to_tensors, with_tensors,
)
from .masks import MASK_COLUMNS, load_segmentation_split
from .shapes import SHAPE_CLASSES, make_shapes
from .splits import (
    EMBEDDED, EVAL_SPLITS, HUB_NAMES, eval_split, load_split, load_split_dataset, open_split, split_statistics,
)
from .stats import Normalization, normalize

__all__ = [
    "EMBEDDED", "EVAL_SPLITS", "HELD_OUT_EVERY", "HUB_NAMES", "IMAGE_COLUMNS", "INDEX_COLUMN", "LABEL_COLUMNS",
    "MASK_COLUMNS", "SHAPE_CLASSES", "Normalization", "describe_split", "eval_split", "iterate_batches",
    "load_image_dataset", "load_segmentation_split", "load_split", "load_split_dataset", "make_shapes", "normalize",
    "num_classes", "open_split", "split_statistics", "to_tensors", "with_tensors",
]
