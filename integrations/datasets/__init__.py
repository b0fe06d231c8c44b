"""Image-classification data from Hugging Face ``datasets``: hub names, local parquet, image folders.

The one data module of the project: the CLI, the benchmarks and the Accelerate example all load data
through :func:`load_image_dataset` and :func:`to_tensors`.
"""
from .images import (
    IMAGE_COLUMNS,
    LABEL_COLUMNS,
    load_image_dataset,
    resolve_columns,
    to_tensors,
)

__all__ = ["IMAGE_COLUMNS", "LABEL_COLUMNS", "load_image_dataset", "resolve_columns", "to_tensors"]
