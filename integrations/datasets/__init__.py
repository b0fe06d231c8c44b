"""Image-classification data from Hugging Face ``datasets``: hub names, local parquet, image folders.

The one data module of the project: the CLI, the benchmarks and the Accelerate example all load data
through :func:`load_image_dataset`, and turn it into tensors with :func:`to_tensors` (all in memory) or
:func:`with_tensors` (decoded per batch, for a ``DataLoader``).
"""
from .images import (
    IMAGE_COLUMNS,
    INDEX_COLUMN,
    LABEL_COLUMNS,
    TensorTransform,
    decode_images,
    load_image_dataset,
    num_classes,
    resolve_columns,
    to_tensors,
    with_tensors,
)

__all__ = [
    "IMAGE_COLUMNS", "INDEX_COLUMN", "LABEL_COLUMNS", "TensorTransform", "decode_images", "load_image_dataset",
    "num_classes", "resolve_columns", "to_tensors", "with_tensors",
]
