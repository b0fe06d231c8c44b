"""``create_segmentation_model``: torchvision's segmentation models (``deeplabv3_*``, ``fcn_*``, ``lraspp_*``) or
any timm-registered model returning per-pixel logits (N, K, H, W), e.g. the project's ``fcn_resnet18``.

torchvision's models return ``{"out": logits (N, K, H, W)}`` and their ``backbone`` returns ``{"out": features
(N, C, h, w)}`` (plus ``"aux"`` with ``aux_loss``): the position channels are ranked and ablated there, before the
head, as in Islam et al.'s position attack (:func:`feature_layer`).
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..errors import UsageError

TORCHVISION_PREFIX = "torchvision/"
BACKBONE = "backbone"  # the module whose output torchvision's segmentation heads read


def torchvision_segmentation_names() -> list[str]:
    """The segmentation models of the installed torchvision (``deeplabv3_mobilenet_v3_large``, ``fcn_resnet50``...)."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models.segmentation)


def is_torchvision_segmentation(name: str) -> bool:
    """Whether ``name`` (optionally ``torchvision/<name>``) is one of torchvision's segmentation models."""
    return name.removeprefix(TORCHVISION_PREFIX) in torchvision_segmentation_names()


def create_segmentation_model(
    name: str, num_classes: Optional[int] = None, *, pretrained: bool = False, aux_loss: bool = False,
) -> nn.Module:
    """A segmenter ``name`` with ``num_classes`` output channels.

    torchvision names (``deeplabv3_mobilenet_v3_large``, ``fcn_resnet50``, ``lraspp_mobilenet_v3_large``; a
    ``torchvision/`` prefix is accepted) are built with ``weights=None, weights_backbone=None`` (nothing is
    downloaded) unless ``pretrained``: then torchvision's hub weights (``weights="DEFAULT"``, COCO with the 21
    VOC classes, downloaded to ``$TORCH_HOME/hub/checkpoints`` or read from there) when ``num_classes`` is None
    or 21, else the ImageNet backbone (``weights_backbone="DEFAULT"``) under a new ``num_classes`` head.
    ``aux_loss`` adds torchvision's auxiliary head (its checkpoints may hold ``aux_classifier.*``).
    Any other name is a timm model (``timm.create_model(name, num_classes=...)``) that must return logits
    (N, K, H, W), such as ``fcn_resnet18``.
    """
    if num_classes is not None and num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    if is_torchvision_segmentation(name):
        import torchvision

        base = name.removeprefix(TORCHVISION_PREFIX)
        weights = backbone = None
        if pretrained and num_classes in (None, 21):
            weights, aux_loss = "DEFAULT", True  # the hub weights hold the auxiliary head
        elif pretrained:
            backbone = "DEFAULT"
        return torchvision.models.get_model(base, weights=weights, weights_backbone=backbone,
                                            num_classes=num_classes or (None if weights else 21), aux_loss=aux_loss)
    if name.startswith(TORCHVISION_PREFIX):
        raise UsageError(f"{name!r} is not a torchvision segmentation model; this torchvision has: "
                         f"{', '.join(torchvision_segmentation_names())} (or give a timm model returning (N, K, H, W))")
    import timm

    kwargs = {} if num_classes is None else dict(num_classes=num_classes)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as error:  # timm: "Unknown model (...)"
        raise UsageError(f"unknown segmentation model {name!r}: use a torchvision one "
                         f"({', '.join(torchvision_segmentation_names())}) or a timm model name ({error})") from None


def feature_layer(model: nn.Module) -> Optional[str]:
    """Where the position channels of a segmenter are ranked: ``"backbone"`` for torchvision's models (its
    ``{"out": (N, C, h, w)}`` output, before the head), the trunk's last stage for the project's FCN
    (``feature_module``); None when the model names none."""
    if hasattr(model, BACKBONE) and hasattr(model, "classifier"):
        return BACKBONE
    return getattr(model, "feature_module", None)
