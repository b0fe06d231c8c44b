"""The registry of model zoos: `ZOOS`, asked in order, `register_zoo`, `zoo_of` (the zoo of a name) and
`supported_models` (what the registered zoos build, for messages). Read at each call, so a zoo registered at run
time is dispatched to and named like the built-in ones."""
from __future__ import annotations

from typing import Optional

from ...errors import UsageError
from .base import Zoo

ZOOS: list[Zoo] = []  # asked in order; the first that claims a name builds it (timm, registered first, is asked last)


def register_zoo(zoo: Zoo) -> Zoo:
    """Add a zoo, asked before those already registered.

    Args:
        zoo: an instance of a `Zoo` subclass with `supported` set.

    Returns:
        `zoo`.

    Raises:
        UsageError: `zoo` is not a `Zoo` instance, has no `supported` text, or is registered already.

    Examples:
        >>> register_zoo("timm")
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: a zoo is an instance of a Zoo subclass (augshift.models.zoos.base), not str
    """
    if isinstance(zoo, type) and issubclass(zoo, Zoo):
        raise UsageError(f"{zoo.__name__} is a class: register an instance, register_zoo({zoo.__name__}())")
    if not isinstance(zoo, Zoo):
        raise UsageError(f"a zoo is an instance of a Zoo subclass (augshift.models.zoos.base), not {type(zoo).__name__}")
    if not isinstance(getattr(zoo, "supported", None), str) or not zoo.supported:
        raise UsageError(f"{type(zoo).__name__} has no 'supported' text (what it builds, for messages); set it")
    if zoo in ZOOS:
        raise UsageError(f"{type(zoo).__name__} is registered already; registered: {supported_models()}")
    ZOOS.insert(0, zoo)
    return zoo


def zoo_of(name: str, *, task: Optional[str] = None) -> Zoo:
    """The zoo of a model name: the first of `ZOOS` that claims it.

    Args:
        name: `resnet18` (timm), `torchvision/<name>` (also a bare segmenter name, e.g. `fcn_resnet50`, for
            `task="segmentation"`) or `hf:<hub id or save_pretrained folder>`.
        task: `"classification"` or `"segmentation"` when building; `None`: a name of any task.

    Returns:
        Its `Zoo` (timm for any name no other zoo claims).

    Examples:
        >>> from augshift.models import zoos
        >>> zoo_of("fcn_resnet50", task="segmentation") is zoos.torchvision.ZOO, zoo_of("resnet18") is zoos.timm.ZOO
        (True, True)
    """
    return next(zoo for zoo in ZOOS if zoo.claims(name, task=task))


def supported_models() -> str:
    """What the registered zoos build, the catch-all (timm) first, for messages.

    Examples:
        >>> supported_models().startswith("timm models")
        True
    """
    return ", ".join(zoo.supported for zoo in reversed(ZOOS))
