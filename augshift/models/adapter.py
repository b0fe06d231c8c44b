"""The model adapter: what augshift needs to know about a model, answered in one place for every zoo.

Any `nn.Module` -- a timm model, a torchvision classifier or segmenter, a Hugging Face `transformers` image model,
the project's own or a user's -- is asked here, and only here:

* its logits and the module that receives its pooled features are read by convention in the core
  (`augshift.outputs`: `logits_of`, `classifier_of`), which needs no zoo;
* `default_layer` -- where its position channels are ranked: the last stage whose maps still have a spatial
  extent on the given images (and why, when that is not the last stage); `feature_map` /
  `map_channels` read and change a layer's output channel-first, also for `transformers`' token sequences;
* `Normalization` -- the per-channel statistics its inputs are normalised with, and where they come from
  (`pretrained_normalization`: timm's `pretrained_cfg`, torchvision's weights transforms, a
  `transformers` image processor; a model trained from scratch takes the data's own statistics);
* building by name (`resnet18` for timm, `torchvision/resnet50`, `hf:<hub id or save_pretrained folder>`) and
  loading any checkpoint is its other half, `augshift.models.zoo` (`create_model`,
  `load_model`).

What differs from zoo to zoo (a zoo's stages and base model, the normalisation of its weights) is asked of the zoos,
`augshift.models.zoos`, one file each; the rest here is generic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar

import torch
from torch import Tensor, nn

from ..data.stats import Normalization
from ..errors import UsageError
from ..outputs import UnsupportedModelError, classifier_of
from .zoos import ZOOS, zoo_of

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- feature maps

def _token_grid(tokens: int) -> Optional[tuple[int, int]]:
    """`(side, skipped)` when `tokens` (or `tokens - 1`: a leading class token) form a square grid."""
    for skipped in (0, 1):
        side = math.isqrt(tokens - skipped)
        if side > 0 and side * side == tokens - skipped:
            return side, skipped
    return None


def feature_map(output: Any, layer: str = "") -> Tensor:
    """The channel-first features of a module's output, as ranking reads them.

    Args:
        output: the module's output -- a tensor (N, C, h, w) or (N, C); a token sequence (N, L, D) of a
            `transformers` / timm vision transformer, read as (N, D, s, s) when L (or L - 1, after a leading class
            token) is a square s * s, else as (N, D, L); a mapping (torchvision segmentation backbones:
            `"out"`, else its last entry); or a tuple whose first element is the features.
        layer: the module's name, for the error message.

    Returns:
        (N, C, ...) features.

    Examples:
        >>> feature_map(torch.zeros(2, 1 + 16, 8)).shape  # a class token and a 4 x 4 grid of 8-dim tokens
        torch.Size([2, 8, 4, 4])
    """
    if isinstance(output, Mapping) and output:
        output = output["out"] if "out" in output else list(output.values())[-1]
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    if not isinstance(output, Tensor) or output.dim() < 2:
        raise UsageError(f"module {layer!r} outputs {type(output).__name__}, not (N, C, ...) features; pick a layer "
                         "whose output is a feature map (e.g. layer4, backbone, or a transformer block)")
    if output.dim() != 3:
        return output
    n, tokens, dim = output.shape
    channels = output.transpose(1, 2)
    grid = _token_grid(tokens)
    if grid is None:
        return channels
    side, skipped = grid
    return channels[:, :, skipped:].reshape(n, dim, side, side)


def map_channels(output: Any, change: Callable[[Tensor], Tensor]) -> Any:
    """`output` with `change` applied to its channel-first features (N, C, ...) (see `feature_map`), in
    the output's own structure: a tensor, a token sequence (N, L, D) (changed as (N, D, L), class token included),
    a mapping (its `"out"` or last entry replaced) or a tuple (its first element replaced).

    Examples:
        >>> map_channels(torch.ones(1, 3, 2, 2), lambda x: x.index_fill(1, torch.tensor([0]), 0))[0, :, 0, 0]
        tensor([0., 1., 1.])
    """
    if isinstance(output, Mapping) and output:
        key = "out" if "out" in output else list(output)[-1]
        return {**output, key: map_channels(output[key], change)}
    if isinstance(output, tuple) and output:
        return (map_channels(output[0], change), *output[1:])
    if isinstance(output, Tensor) and output.dim() == 3:
        return change(output.transpose(1, 2)).transpose(1, 2)
    return change(output)


@dataclass(frozen=True)
class LayerChoice:
    """The layer whose channels are ranked (what `default_layer` returns).

    Args:
        name: the layer's module name in `model.named_modules()`.
        size: the spatial size of its maps, e.g. `(h, w)`, on the images it was chosen for.
        note: why it is not the model's last stage (empty when it is).

    Examples:
        >>> LayerChoice("layer3", (2, 2)).has_extent
        True
        >>> LayerChoice("layer4", (1, 1), "its maps are 1 x 1").has_extent  # says nothing about position
        False
    """

    name: str
    size: tuple[int, ...]
    note: str = ""

    @property
    def has_extent(self) -> bool:
        """Whether its maps have more than one position (a 1 x 1 map says nothing about where a channel fires)."""
        return math.prod(self.size) > 1


def _stages(model: nn.Module) -> Optional[list[str]]:
    """The model's own list of stages, shallow to deep, when it names them: the project's `feature_module`, else
    what a zoo says (torchvision segmenters' `backbone`, timm's `feature_info`); None for other models."""
    if isinstance(getattr(model, "feature_module", None), str):
        return [model.feature_module]
    return _first(zoo.stages(model) for zoo in ZOOS)


def layer_sizes(model: nn.Module, images: Tensor, names: Sequence[str], *,
                tensors_only: bool = False) -> dict[str, tuple[int, ...]]:
    """The spatial size of the feature maps (`feature_map`) of the modules `names` (with `tensors_only`, only
    those returning a tensor or a torchvision-style `{"out": ...}`, whose output ablation can rewrite) for
    `images[:1]` (1, C, H, W), in the order the modules finish."""
    sizes: dict[str, tuple[int, ...]] = {}
    wanted = set(names)

    def record(name: str, module: nn.Module, args: tuple, output: Any) -> None:
        if tensors_only and not (isinstance(output, Tensor) or isinstance(output, Mapping) and "out" in output):
            return
        try:
            maps = feature_map(output, name)
        except UsageError:
            return
        sizes.pop(name, None)
        sizes[name] = tuple(maps.shape[2:])

    hooks = [module.register_forward_hook(lambda m, a, o, name=name: record(name, m, a, o))
             for name, module in model.named_modules() if name in wanted]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images[:1].to(next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return sizes


def default_layer(model: nn.Module, images: Tensor) -> LayerChoice:
    """Where `model`'s position channels are ranked, for inputs like `images` (N, C, H, W).

    The model's last stage (a torchvision segmenter's `backbone`, timm's last `feature_info` module, else the last
    module to finish whose output is a feature map -- inside the base model of a `transformers` model, e.g. its last
    stage or final layer norm, never a head after it) -- unless its
    maps are 1 x 1 at this input size: then the last earlier stage whose maps still have a spatial extent, and
    `note` says so (when no stage has one, the last stage, noted).

    Examples:
        >>> import timm
        >>> choice = default_layer(timm.create_model("resnet18"), torch.zeros(1, 3, 32, 32))
        >>> choice.name, choice.size
        ('layer3', (2, 2))
    """
    stages = _stages(model)
    if stages is None:  # every module that is not the classifier or a pooling layer, in the order they finish
        head = _classifier_or_none(model)
        head_name = next((n for n, m in model.named_modules() if n and m is head), None)
        # only inside the model's body when a zoo names one (a transformers model's base model, not the heads after it)
        body = _first(zoo.body(model) for zoo in ZOOS)
        stages = [name for name, module in model.named_modules() if name and not _inside(name, head_name)
                  and (body is None or _inside(name, body))
                  and "pool" not in type(module).__name__.lower() and not name.rsplit(".", 1)[-1].startswith("pool")]
        candidates = [(name, size) for name, size in layer_sizes(model, images, stages, tensors_only=True).items()
                      if size]
    else:
        sizes = layer_sizes(model, images, stages)
        candidates = [(name, sizes[name]) for name in stages if sizes.get(name)]
    if not candidates:
        raise UsageError(f"{type(model).__name__} has no module with (N, C, h, w) maps or token outputs: name one "
                         "with --layer")
    last, last_size = candidates[-1]
    spatial = [(name, size) for name, size in candidates
               if math.prod(size) > 1 and (name == last or not _inside(name, last))]
    if not spatial:  # ranked all the same (a channel's pooled value still moves), but no map shows where it fires
        return LayerChoice(last, last_size, f"every stage has 1 x 1 maps for {images.shape[-2]}x{images.shape[-1]} "
                                            f"inputs: {last} is ranked; larger images (--image-size) give maps")
    name, size = spatial[-1]
    if last != name:
        side = "x".join(map(str, last_size))
        return LayerChoice(name, size, f"{last}'s maps are {side} for {images.shape[-2]}x{images.shape[-1]} inputs, so "
                                       f"the last stage with a spatial extent, {name} ({'x'.join(map(str, size))}), is "
                                       "ranked")
    return LayerChoice(name, size)


def _classifier_or_none(model: nn.Module) -> Optional[nn.Module]:
    try:
        return classifier_of(model)
    except UnsupportedModelError:
        return None


def _inside(name: str, parent: Optional[str]) -> bool:
    return parent is not None and (name == parent or name.startswith(parent + "."))


def _first(answers: Iterable[Optional[T]]) -> Optional[T]:
    """The first answer that is not `None` (the zoos', asked in order), else `None`."""
    return next((answer for answer in answers if answer is not None), None)


# --------------------------------------------------------------------------------------------- normalisation

def pretrained_normalization(name: str, model: nn.Module) -> Optional[Normalization]:
    """The statistics the pretrained weights of `name` (as built by `create_model`) expect, or `None` when
    they name none (a `transformers` folder without an image processor).

    Args:
        name: `hf:<id or folder>` (its image processor's `image_mean` / `image_std`), `torchvision/<name>`
            or one of torchvision's segmenters (the default weights' transforms), or a timm name (the model's
            `pretrained_cfg`).
        model: the model built from `name`.

    Returns:
        What the zoo of `name` (`zoo_of`) says: a `Normalization` naming its
        source, or `None`.

    Examples:
        >>> import timm
        >>> pretrained_normalization("resnet18", timm.create_model("resnet18")).mean
        (0.485, 0.456, 0.406)
    """
    return zoo_of(name).normalization(name, model)
