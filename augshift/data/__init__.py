"""Data: normalisation (`Normalization`: the statistics and their source), the embedded default (generated
shapes), Hugging Face ``datasets`` sources, `load_split`, the one loader every command, benchmark and example
uses, `eval_split` (which split is evaluated), and `load_segmentation_split` for images with masks
(`.masks`)."""
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
from .stats import Normalization, normalization_policy, normalize

__all__ = [
    "Normalization",
    "eval_split",
    "load_segmentation_split",
    "load_split",
    "load_split_dataset",
]
