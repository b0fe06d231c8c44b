"""The model zoos, one file each (`.timm`, `.torchvision`, `.transformers`), each a `Zoo`,
and their registry: `ZOOS`, asked in order, and `zoo_of`, the zoo of a name.

Adding a zoo: a file here with a `Zoo` subclass and its instance ``ZOO``, and its ``ZOO`` in
`ZOOS` (before timm, which takes every name the others leave).
"""
from __future__ import annotations

from typing import Optional

from . import timm, torchvision, transformers
from .base import Zoo

ZOOS: tuple[Zoo, ...] = (transformers.ZOO, torchvision.ZOO, timm.ZOO)  # asked in order; the first that claims builds


def zoo_of(name: str, *, task: Optional[str] = None) -> Zoo:
    """The zoo of a model name: the first of `ZOOS` that claims it.

    Args:
        name: ``resnet18`` (timm), ``torchvision/<name>`` (also a bare segmenter name, e.g. ``fcn_resnet50``, for
            ``task="segmentation"``) or ``hf:<hub id or save_pretrained folder>``.
        task: ``"classification"`` or ``"segmentation"`` when building; ``None``: a name of any task.

    Returns:
        Its `Zoo` (timm for any name no other zoo claims).

    Examples:
        >>> zoo_of("fcn_resnet50", task="segmentation") is torchvision.ZOO, zoo_of("resnet18") is timm.ZOO
        (True, True)
    """
    return next(zoo for zoo in ZOOS if zoo.claims(name, task=task))

