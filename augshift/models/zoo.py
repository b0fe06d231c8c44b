"""Building and loading models by name, from every zoo: the other half of the model adapter (`.adapter`).

`create_model` builds `resnet18` (timm, also the project's registered models), `torchvision/resnet50`
(torchvision's classifiers and, as segmenters, `deeplabv3_*` / `fcn_*` / `lraspp_*`) or
`hf:<hub id or save_pretrained folder>` (Hugging Face `transformers`), through the zoo that claims the name
(`zoo_of`; each zoo is one file of `.zoos`); `load_model` loads any checkpoint
`read_checkpoint` reads, with the normalisation its weights were trained with where it says.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from torch import nn

from ..data.stats import Normalization
from ..errors import UsageError
from .adapter import pretrained_normalization
from .zoos.registry import zoo_of

TASKS = ("classification", "segmentation")


def create_model(name: str, num_classes: Optional[int] = None, *, pretrained: bool = False, stem: str = "standard",
                 task: str = "classification", **kwargs: Any) -> nn.Module:
    """A model by name, from any zoo.

    Args:
        name: a timm name (`resnet18`, also the project's `gapnet_resnet18`, `aps_resnet18`...),
            `torchvision/<name>` (`torchvision/resnet50`; for `task="segmentation"` also `deeplabv3_*`,
            `fcn_*`, `lraspp_*` without the prefix) or `hf:<hub id or save_pretrained folder>`.
        num_classes: outputs of the head (`None`: the zoo's default, e.g. 1000 or the config's labels); with
            `pretrained`, a different number gets a new head.
        pretrained: load the zoo's weights (timm / torchvision hub, the `transformers` folder or hub id); needs the
            network or a filled cache.
        stem: `"cifar"` replaces a ResNet's stem by the CIFAR stem (`cifar_stem`).
        task: `"classification"` or `"segmentation"` (torchvision's segmenters, `transformers`'
            `AutoModelForSemanticSegmentation`, or a timm model returning (N, K, H, W)).
        **kwargs: a timm model's own options (e.g. `where=`, `seed=` of `permutenet_resnet18`).

    Returns:
        The model, in train mode.

    Examples:
        >>> create_model("torchvision/resnet18", 10).fc.out_features
        10
    """
    from .stem import STEMS, cifar_stem

    if stem not in STEMS:
        raise UsageError(f"unknown stem {stem!r}; supported: {', '.join(STEMS)}")
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r}; supported: {', '.join(TASKS)}")
    if num_classes is not None and num_classes < 1:
        raise UsageError(f"num_classes must be >= 1, got {num_classes}")
    zoo = zoo_of(name, task=task)
    try:
        model = zoo.create(name, num_classes, pretrained=pretrained, task=task, **kwargs)
    except OSError as error:  # the hub download: offline, or a cache without these weights
        if not pretrained:
            raise
        raise UsageError(f"cannot get the pretrained weights of {name} ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:160]}): connect to the network once to cache them (HF_HOME "
                         "for timm, TORCH_HOME for torchvision), or pass --checkpoint with a saved copy") from None
    return cifar_stem(model) if stem == "cifar" else model


@dataclass
class LoadedModel:
    """A model ready to evaluate (what `load_model` returns).

    Args:
        model: the model, in eval mode.
        name: its architecture's name (timm / `torchvision/` / `hf:`).
        normalization: the `Normalization` its weights were trained with when known
            (`None`: a model from scratch or a checkpoint that records none).
        weights: what the weights are: a checkpoint path, `"pretrained"` or `"random"`.
        meta: for models saved by the `augshift` commands, what they record (`task`, `grid`...); else empty.

    Examples:
        >>> loaded = LoadedModel(nn.Linear(4, 3).eval(), "linear", None, "random")
        >>> loaded.weights, loaded.meta
        ('random', {})
    """

    model: nn.Module
    name: str
    normalization: Optional[Normalization]
    weights: str
    meta: dict = field(default_factory=dict)


def load_model(checkpoint: Optional[str] = None, *, model: Optional[str] = None, num_classes: Optional[int] = None,
               pretrained: bool = False, task: str = "classification") -> LoadedModel:
    """The model of `checkpoint`, or `model` by name (its hub weights with `pretrained`, else random init).

    Args:
        checkpoint: any layout `read_checkpoint` reads (a `--save-model` file,
            a timm `train.py` checkpoint or folder, the Accelerate example's folder, a `save_pretrained` folder,
            a plain state_dict).
        model: the architecture (needed for a plain state_dict; else what the checkpoint records).
        num_classes: the head's size (default: what the checkpoint records, or its head's size).
        pretrained: the hub weights of `model` instead of a checkpoint.
        task: `"classification"` or `"segmentation"`.

    Returns:
        A `LoadedModel`; its `normalization` is what the checkpoint records (`--save-model` files, timm's
        `args.yaml`, the Accelerate example's `metrics.json`, a `transformers` image processor) or the
        pretrained weights' (`pretrained_normalization`).

    Examples:
        >>> loaded = load_model(model="resnet18", num_classes=3)
        >>> loaded.weights, loaded.normalization
        ('random', None)
    """
    from .checkpoints import fitted_state, infer_num_classes, load_state, read_checkpoint

    if checkpoint is None:
        if model is None:
            raise UsageError("no model to load: pass --checkpoint PATH (with --model NAME for a plain state_dict), or "
                             "--model NAME (with --pretrained for the hub weights)")
        net = create_model(model, num_classes, pretrained=pretrained, task=task)
        normalization = pretrained_normalization(model, net) if pretrained else None
        return LoadedModel(net.eval(), model, normalization, "pretrained" if pretrained else "random")
    if pretrained:
        raise UsageError("--pretrained and --checkpoint both give the weights: pass one of them")
    saved = read_checkpoint(checkpoint)
    name = model or saved.name
    if name is None:
        raise UsageError(f"{checkpoint} is a plain state_dict that does not name its architecture: pass --model NAME "
                         f"(e.g. --model resnet18, --model torchvision/resnet50, --model hf:<folder>)")
    if saved.state_dict is None:  # a folder its zoo reads itself (save_pretrained's), as the architecture it names
        if model is not None and model != saved.name:
            raise UsageError(f"{checkpoint} is {zoo_of(saved.name).folder_kind} of its own architecture: leave out "
                             f"--model {model} (or pass --model {saved.name})")
        if num_classes is not None and num_classes != saved.num_classes:
            raise UsageError(f"{checkpoint} has {saved.num_classes} classes, not --num-classes {num_classes}: a head "
                             f"of {num_classes} would be initialised at random; leave out --num-classes")
        net = create_model(saved.name, pretrained=True, task=task)
    elif saved.kwargs:  # saved by an augshift command, with the options it was built with
        kind = "segmentation" if saved.meta.get("task") == "segmentation" else "classification"
        net = load_state(create_model(name, task=kind, **saved.kwargs), saved, name)
    else:
        options = zoo_of(name, task=task).checkpoint_options(fitted_state(saved.state_dict))
        net = create_model(name, num_classes or saved.num_classes, task=task, **options)
        found = None if num_classes or saved.num_classes else infer_num_classes(net, saved.state_dict)
        if found is not None:
            net = create_model(name, found, task=task, **options)
        net = load_state(net, saved, name)
    normalization = saved.normalization
    if normalization is None and saved.state_dict is None:  # a folder its zoo reads: the zoo's (an image processor's)
        normalization = pretrained_normalization(saved.name, net)
    elif normalization is None and saved.uses_model_config:
        normalization = pretrained_normalization(name, net)
        normalization = Normalization(normalization.mean, normalization.std,
                                      f"{normalization.source}, which timm's train.py used ({saved.source} names no "
                                      f"--mean / --std)")
    return LoadedModel(net.eval(), name, normalization, saved.source, saved.meta)

