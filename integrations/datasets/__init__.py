"""Former home of the data loading helpers; they live in :mod:`augshift.data` (this path keeps old imports working)."""
from augshift.data.hub import (
    IMAGE_COLUMNS, INDEX_COLUMN, LABEL_COLUMNS, TensorTransform, decode_images, load_image_dataset, num_classes,
    resolve_columns, to_tensors, with_tensors,
)

__all__ = [
    "IMAGE_COLUMNS", "INDEX_COLUMN", "LABEL_COLUMNS", "TensorTransform", "decode_images", "load_image_dataset",
    "num_classes", "resolve_columns", "to_tensors", "with_tensors",
]
