"""The CIFAR stem: a ResNet's first layers replaced by a 3x3 stride-1 conv and no max-pool (32 px images)."""
from __future__ import annotations

from torch import nn

from ..errors import UsageError

STEMS = ("standard", "cifar")


def cifar_stem(model: nn.Module) -> nn.Module:
    """Replace a ResNet's stem (`conv1` + `maxpool`) by the usual CIFAR stem, in place: `conv1` a 3x3
    stride-1 conv with the same output channels and padding mode, `maxpool` an identity.

    `conv1` may be a `Conv2d` or a `Sequential` starting with one (stems that downsample after the conv,
    e.g. the APS ResNets).

    Args:
        model: a ResNet with `conv1` and `maxpool` (timm's, torchvision's, `ApsResNet`);
            anything else is a `UsageError`.

    Returns:
        `model` itself, changed.

    Examples:
        >>> import timm
        >>> model = cifar_stem(timm.create_model("resnet18", num_classes=3))
        >>> model.conv1, model.maxpool
        (Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False), Identity())
    """
    conv = model.conv1[0] if isinstance(getattr(model, "conv1", None), nn.Sequential) else getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise UsageError(f"the CIFAR stem needs a ResNet with a single-conv stem (conv1, maxpool); "
                         f"{type(model).__name__} has none: use stem='standard'")
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=False, padding_mode=conv.padding_mode)
    model.maxpool = nn.Identity()
    return model
