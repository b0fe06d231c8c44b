"""How the project registers its models with timm: one helper, `register`, for every one of them.

A registered name builds through timm's own builder (`build_model_with_cfg`), so `timm.create_model(name, ...)`
and timm's `train.py --model name` build it like any timm model, with its `pretrained_cfg` (the data config timm
resolves) set by timm. None of the project's models has pretrained weights: `pretrained=True` raises one
`UsageError` with one message, whatever the model.
"""
from __future__ import annotations

from typing import Any, Callable

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, register_model
from torch import nn

from ..errors import UsageError

# timm's register_model reads the default config of an entry point from its module's `default_cfgs`: the entry
# points are made here, so their configs live here.
default_cfgs: dict[str, dict] = {}


def no_pretrained_weights(name: str) -> UsageError:
    """The one refusal of `pretrained=True` for the project's models."""
    return UsageError(f"{name} has no pretrained weights: it is trained from scratch; create it with pretrained=False "
                      "(and load your own weights with checkpoint_path=...)")


def register(name: str, build: Callable[..., nn.Module], *, doc: str, first_conv: str = "conv1",
             classifier: str = "fc", num_classes: int = 1000, **defaults: Any) -> Callable[..., nn.Module]:
    """Register `name` with timm: `timm.create_model(name, **kwargs)` returns `build(**defaults, **kwargs)`
    through `build_model_with_cfg`.

    Args:
        name: the model name.
        build: a class or function taking the model's keyword arguments.
        doc: the entry point's docstring (shown by `help`).
        first_conv: the name of the first conv, for timm's data config.
        classifier: the name of the classifier module, for timm's data config.
        num_classes: the default number of classes.
        **defaults: default keyword arguments of `build` for this name (e.g. `trunk="resnet18"`).

    Returns:
        The registered entry point.

    Examples:
        >>> import timm
        >>> timm.create_model("gapnet_resnet18").pretrained_cfg["num_classes"]
        9
    """
    default_cfgs[name] = dict(
        url="", num_classes=num_classes, input_size=(3, 224, 224), pool_size=None, crop_pct=0.875,
        interpolation="bilinear", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, first_conv=first_conv,
        classifier=classifier,
    )

    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise no_pretrained_weights(name)
        return build_model_with_cfg(build, name, pretrained=False, **{**defaults, **kwargs})

    entry.__name__ = entry.__qualname__ = name
    entry.__module__ = __name__
    entry.__doc__ = doc
    return register_model(entry)
