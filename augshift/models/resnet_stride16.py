"""The ResNet-18 of the official PermuteNet code (github islamamirul/PermuteNet, `models/resnet.py`): a 7x7
stride-2 first conv and **no max-pool**, so the last stage has a total stride of 16 (timm's `resnet18`: 32).

Registered with timm as `resnet18_stride16` (and, in `.position_nets`, `gapnet_resnet18_stride16` /
`permutenet_resnet18_stride16`): `timm.create_model("resnet18_stride16")` and timm's `train.py --model`
build it. Its `state_dict` keys are those of timm's `resnet18` (the max-pool has no weights).
"""
from __future__ import annotations

from typing import Any

import timm
from timm.models.resnet import ResNet
from torch import nn

from ..errors import UsageError
from .registry import register


def without_maxpool(model: ResNet) -> ResNet:
    """`model` with its stem max-pool replaced by an identity; `feature_info` reductions halved after the stem."""
    if not isinstance(getattr(model, "maxpool", None), nn.MaxPool2d):
        raise UsageError(f"{type(model).__name__} has no stem max-pool to remove; pass a timm ResNet")
    model.maxpool = nn.Identity()
    for info in model.feature_info[1:]:
        info["reduction"] //= 2
    return model


def resnet18_without_maxpool(**kwargs: Any) -> ResNet:
    """timm's `resnet18` (random init) without its stem max-pool."""
    return without_maxpool(timm.create_model("resnet18", pretrained=False, **kwargs))


register("resnet18_stride16", resnet18_without_maxpool,
         doc="ResNet-18 without the stem max-pool (total stride 16), trained from scratch as in the official code.")
