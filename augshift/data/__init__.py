"""Data: normalisation (`Normalization`: the statistics and their source), the embedded default (generated
shapes), Hugging Face `datasets` sources, `load_split`, the one loader every command, benchmark and example
uses, `eval_split` (which split is evaluated), and `load_segmentation_split` for images with masks
(`.masks`)."""
from .masks import load_segmentation_split
from .splits import eval_split, load_split, load_split_dataset
from .stats import Normalization

__all__ = [
    "Normalization",
    "eval_split",
    "load_segmentation_split",
    "load_split",
    "load_split_dataset",
]
