"""``create_model``: any timm model (or ``torchvision/<name>``), optionally with the CIFAR stem."""
from __future__ import annotations

from torch import nn

from ..errors import UsageError

STEMS = ("standard", "cifar")
TORCHVISION_PREFIX = "torchvision/"


def cifar_stem(model: nn.Module) -> nn.Module:
    """Replace a ResNet's stem (``conv1`` + ``maxpool``) by the usual CIFAR stem, in place: ``conv1`` a 3x3
    stride-1 conv with the same output channels and padding mode, ``maxpool`` an identity.

    ``conv1`` may be a ``Conv2d`` or a ``Sequential`` starting with one (stems that downsample after the conv,
    e.g. the APS ResNets).
    """
    conv = model.conv1[0] if isinstance(getattr(model, "conv1", None), nn.Sequential) else getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise UsageError(f"the CIFAR stem needs a ResNet with a single-conv stem (conv1, maxpool); "
                         f"{type(model).__name__} has none: use stem='standard'")
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=False, padding_mode=conv.padding_mode)
    model.maxpool = nn.Identity()
    return model


def create_model(name: str, num_classes: int, *, stem: str = "standard", pretrained: bool = False) -> nn.Module:
    """A timm model ``name`` (or torchvision's, as ``torchvision/<name>``) with ``num_classes`` outputs.

    ``stem="cifar"`` applies :func:`cifar_stem` (the same way to every ResNet: plain, blur, APS).
    """
    if stem not in STEMS:
        raise UsageError(f"unknown stem {stem!r}; supported: {', '.join(STEMS)}")
    if num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    if name.startswith(TORCHVISION_PREFIX):
        import torchvision

        weights = "DEFAULT" if pretrained else None
        model = torchvision.models.get_model(name[len(TORCHVISION_PREFIX):], weights=weights, num_classes=num_classes)
    else:
        import timm

        model = timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    return cifar_stem(model) if stem == "cifar" else model
