"""What the core needs to know about any model: where its logits are and which module receives its pooled features.

Any `nn.Module` -- a timm model, a torchvision classifier or segmenter, a Hugging Face `transformers` image
model, the project's own or a user's -- is read here by convention, without knowing its zoo:

* `logits_of` -- the logits in its output: a tensor, a mapping with `"logits"` (a `transformers`
  `ModelOutput`) or `"out"` (torchvision's segmenters), or the first element of a tuple;
* `classifier_of` -- the module whose input is the pooled feature: timm's `get_classifier()`, else an attribute
  `fc` / `classifier` / `head` / `heads`, else the module named by the caller;
* `evaluating` -- the model run in eval mode without gradients, its own mode restored after.

A model none of this fits raises `UnsupportedModelError`. What differs from zoo to zoo beyond this (building by name,
stages, normalisation) is `augshift.models`' business; this module imports only torch.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Optional

import torch
from torch import Tensor, nn

from .errors import UsageError

CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "head", "heads")  # looked up in this order after get_classifier()
LOGITS_KEYS = ("logits", "out")  # where a mapping output holds the logits: ModelOutput's, torchvision segmenters'
MODEL_CONTRACT = ("any nn.Module whose output is its logits (a tensor, a mapping with 'logits' or 'out', or a tuple "
                  "that starts with them) and whose pooled features enter get_classifier(), an attribute "
                  f"{', '.join(CLASSIFIER_ATTRIBUTES)}, or the module named with classifier='<module name>'")


class UnsupportedModelError(UsageError):
    """A model augshift cannot use; the message says what is wrong with it and what is supported.

    Args:
        what: what is wrong with the model, put into the message before what is supported.
        supported: what is supported; by default what the core takes (`MODEL_CONTRACT`); the model builder
            passes the zoos it knows when a name is unknown.

    Examples:
        >>> raise UnsupportedModelError("its output is a str")
        Traceback (most recent call last):
        ...
        augshift.outputs.UnsupportedModelError: cannot use this model: its output is a str; supported: any nn.Module ...
    """

    def __init__(self, what: str, *, supported: str = MODEL_CONTRACT) -> None:
        super().__init__(f"cannot use this model: {what}; supported: {supported}")


def logits_of(output: Any) -> Tensor:
    """The logits in a model's output: (N, K) for a classifier, (N, K, h, w) for a segmenter.

    Args:
        output: what the model returned -- a tensor, a mapping with a key of the logits (`LOGITS_KEYS`:
            `"logits"` of `transformers`' `ModelOutput`, `"out"` of torchvision's segmenters), or a tuple /
            list whose first element is the logits.

    Returns:
        The logits tensor.

    Examples:
        >>> import torch
        >>> logits_of({"out": torch.zeros(2, 5, 4, 4)}).shape
        torch.Size([2, 5, 4, 4])
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        for key in LOGITS_KEYS:
            if isinstance(output.get(key), Tensor):
                return output[key]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    keys = f" with keys {', '.join(map(str, output))}" if isinstance(output, Mapping) else ""
    raise UnsupportedModelError(f"its output is a {type(output).__name__}{keys}, with no logits tensor")


def classifier_of(model: nn.Module, name: Optional[str] = None) -> nn.Module:
    """The module whose input is `model`'s pooled feature (N, D).

    Args:
        model: the unwrapped model (not its DDP / Accelerate / compiled wrapper).
        name: a module name of `model.named_modules()` to use instead of looking it up.

    Returns:
        `name`'s module; else timm's `model.get_classifier()`; else the first of the attributes
        `CLASSIFIER_ATTRIBUTES` that is a module (torchvision, `transformers`, most hand-written models).

    Examples:
        >>> classifier_of(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), "1")
        Linear(in_features=12, out_features=3, bias=True)
    """
    if name is not None:
        modules = dict(model.named_modules())
        if name not in modules or name == "":
            raise UnsupportedModelError(f"{type(model).__name__} has no module named {name!r}")
        return modules[name]
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        found = get_classifier()
        if isinstance(found, nn.Module):
            return found
    for attribute in CLASSIFIER_ATTRIBUTES:
        found = getattr(model, attribute, None)
        if isinstance(found, nn.Module):
            return found
    raise UnsupportedModelError(f"cannot find the pooled features of {type(model).__name__} (it has no "
                                f"get_classifier() and none of the attributes {', '.join(CLASSIFIER_ATTRIBUTES)}): "
                                "name the module whose input is the pooled feature with classifier='<module name>'")


@contextmanager
def evaluating(model: Callable) -> Iterator[Callable]:
    """`model.eval()` and `torch.no_grad()` inside the block; every submodule's training flag is restored after
    (so its BatchNorm statistics never change, and a frozen BatchNorm of a training model stays frozen). A callable
    that is no module is only run without gradients.

    Args:
        model: the module to evaluate; the block receives it (`with evaluating(model) as net`).

    Examples:
        >>> import torch
        >>> model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
        >>> with evaluating(model) as net:
        ...     out = net(torch.ones(1, 3))
        ...     print(net.training, torch.is_grad_enabled())
        False False
        >>> model.training, out.requires_grad
        (True, False)
    """
    previous = [(module, module.training) for module in model.modules()] if isinstance(model, nn.Module) else []
    if previous:
        model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, training in previous:  # parents first: a parent's train() resets children restored after it
            if module.training != training:
                module.train(training)
