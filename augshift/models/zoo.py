"""Building and loading models by name, from every zoo: the other half of the model adapter (:mod:`.adapter`).

:func:`create_model` builds ``resnet18`` (timm, also the project's registered models), ``torchvision/resnet50``
(torchvision's classifiers and, as segmenters, ``deeplabv3_*`` / ``fcn_*`` / ``lraspp_*``) or
``hf:<hub id or save_pretrained folder>`` (Hugging Face ``transformers``); :func:`load_model` loads any checkpoint
:func:`~.checkpoints.read_checkpoint` reads, with the normalisation its weights were trained with where it says.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from torch import nn

from ..data.stats import Normalization
from ..errors import UsageError
from .adapter import (
    HF_PREFIX, TORCHVISION_PREFIX, UnsupportedModelError, classifier_of, pretrained_normalization,
    torchvision_segmenters, transformers_module,
)

TASKS = ("classification", "segmentation")
SEGMENTATION_SUFFIXES = ("ForSemanticSegmentation", "ForUniversalSegmentation", "ForInstanceSegmentation")


def create_model(name: str, num_classes: Optional[int] = None, *, pretrained: bool = False, stem: str = "standard",
                 task: str = "classification", **kwargs: Any) -> nn.Module:
    """A model by name, from any zoo.

    Args:
        name: a timm name (``resnet18``, also the project's ``gapnet_resnet18``, ``aps_resnet18``...),
            ``torchvision/<name>`` (``torchvision/resnet50``; for ``task="segmentation"`` also ``deeplabv3_*``,
            ``fcn_*``, ``lraspp_*`` without the prefix) or ``hf:<hub id or save_pretrained folder>``.
        num_classes: outputs of the head (``None``: the zoo's default, e.g. 1000 or the config's labels); with
            ``pretrained``, a different number gets a new head.
        pretrained: load the zoo's weights (timm / torchvision hub, the ``transformers`` folder or hub id); needs the
            network or a filled cache.
        stem: ``"cifar"`` replaces a ResNet's stem by the CIFAR stem (:func:`~augshift.models.stem.cifar_stem`).
        task: ``"classification"`` or ``"segmentation"`` (torchvision's segmenters, ``transformers``'
            ``AutoModelForSemanticSegmentation``, or a timm model returning (N, K, H, W)).
        **kwargs: a timm model's own options (e.g. ``where=``, ``seed=`` of ``permutenet_resnet18``).

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
    if kwargs and name.startswith(HF_PREFIX):
        raise TypeError(f"options {', '.join(kwargs)} are for timm and torchvision models; set a transformers model's "
                        "options in its config")
    if name.startswith(HF_PREFIX):
        model = _create_transformers(name[len(HF_PREFIX):], num_classes, pretrained=pretrained, task=task)
        return cifar_stem(model) if stem == "cifar" else model
    try:
        if name.startswith(TORCHVISION_PREFIX) or (task == "segmentation" and name in torchvision_segmenters()):
            model = _create_torchvision(name.removeprefix(TORCHVISION_PREFIX), num_classes, pretrained=pretrained,
                                        task=task, **kwargs)
        else:
            import timm

            if not timm.is_model(name):
                raise UnsupportedModelError(f"timm has no model {name!r} (for torchvision write torchvision/{name}, "
                                            f"for transformers hf:<id or folder>)")
            model = timm.create_model(name, pretrained=pretrained, **kwargs,
                                      **({} if num_classes is None else {"num_classes": num_classes}))
    except OSError as error:  # the hub download: offline, or a cache without these weights
        if not pretrained:
            raise
        raise UsageError(f"cannot get the pretrained weights of {name} ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:160]}): connect to the network once to cache them (HF_HOME "
                         "for timm, TORCH_HOME for torchvision), or pass --checkpoint with a saved copy") from None
    return cifar_stem(model) if stem == "cifar" else model


def _create_torchvision(name: str, num_classes: Optional[int], *, pretrained: bool, task: str,
                        **kwargs: Any) -> nn.Module:
    import torchvision

    if task == "segmentation":
        if name not in torchvision_segmenters():
            raise UnsupportedModelError(f"torchvision has no segmenter {name!r}; it has "
                                        f"{', '.join(torchvision_segmenters())}")
        # the hub weights are COCO with the 21 VOC classes (and hold the auxiliary head); another count keeps the
        # ImageNet backbone under a new head
        whole = pretrained and num_classes in (None, 21)
        if whole:
            kwargs["aux_loss"] = True
        return torchvision.models.get_model(name, weights="DEFAULT" if whole else None,
                                            weights_backbone="DEFAULT" if pretrained and not whole else None,
                                            num_classes=num_classes or (None if whole else 21), **kwargs)
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UnsupportedModelError(f"torchvision has no classifier {name!r}")
    if not pretrained:
        return torchvision.models.get_model(name, **kwargs, **({} if num_classes is None else {"num_classes": num_classes}))
    model = torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
    head = classifier_of(model)
    linear = head if isinstance(head, nn.Linear) else [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    if num_classes is not None and linear.out_features != num_classes:  # a new head on the pretrained trunk
        fresh = nn.Linear(linear.in_features, num_classes)
        owner = next(m for m in model.modules() if any(c is linear for c in m.children()))
        setattr(owner, next(n for n, c in owner.named_children() if c is linear), fresh)
    return model


def _create_transformers(path: str, num_classes: Optional[int], *, pretrained: bool, task: str) -> nn.Module:
    transformers = transformers_module()
    labels = {} if num_classes is None else {"num_labels": num_classes}
    try:
        config = transformers.AutoConfig.from_pretrained(path, **labels)
        if pretrained:
            return _pretrained_transformers(path, config, num_classes, task=task)
        auto = (transformers.AutoModelForImageClassification if task == "classification"
                else transformers.AutoModelForSemanticSegmentation)
        return auto.from_config(config)
    except (OSError, ValueError) as error:
        if isinstance(error, UsageError):
            raise
        raise UnsupportedModelError(f"hf:{path} is not a transformers image {task} model here ({type(error).__name__}: "
                                    f"{' '.join(str(error).split())[:300]}); give a save_pretrained folder or a hub id "
                                    "(needs the network or a cached copy)") from None


def _pretrained_transformers(path: str, config: Any, num_classes: Optional[int], *, task: str) -> nn.Module:
    """The weights of a ``transformers`` folder or hub id as trained: only a head of another ``num_classes``, asked
    for, is new; another task's head or weights the folder lacks (which the loader would initialise at random)
    are refused."""
    transformers = transformers_module()
    architectures = list(getattr(config, "architectures", None) or [])
    saved_task = "segmentation" if any(a.endswith(SEGMENTATION_SUFFIXES) for a in architectures) else "classification"
    if saved_task != task:
        fix = ("augshift channels / augshift attack, which take segmentation models" if saved_task == "segmentation"
               else "augshift consistency, which takes classifiers")
        raise UsageError(f"hf:{path} holds a {saved_task} model ({', '.join(architectures)}) and this command "
                         f"evaluates {task} models: its head would be initialised at random; give it to {fix}")
    auto = (transformers.AutoModelForImageClassification if task == "classification"
            else transformers.AutoModelForSemanticSegmentation)
    labels = {} if num_classes is None else {"num_labels": num_classes}
    model, report = auto.from_pretrained(path, output_loading_info=True, ignore_mismatched_sizes=bool(labels), **labels)
    missing = list(report.get("missing_keys", []))
    if missing:
        raise UsageError(f"hf:{path} lacks weights the model needs ({', '.join(sorted(missing)[:4])}"
                         f"{' ...' if len(missing) > 4 else ''}): they would be initialised at random; save the whole "
                         "trained model with save_pretrained")
    return model


@dataclass
class LoadedModel:
    """A model ready to evaluate (what :func:`load_model` returns).

    Args:
        model: the model, in eval mode.
        name: its architecture's name (timm / ``torchvision/`` / ``hf:``).
        normalization: the :class:`~augshift.data.Normalization` its weights were trained with when known
            (``None``: a model from scratch or a checkpoint that records none).
        weights: what the weights are: a checkpoint path, ``"pretrained"`` or ``"random"``.
        meta: for models saved by the ``augshift`` commands, what they record (``task``, ``grid``...); else empty.

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
    """The model of ``checkpoint``, or ``model`` by name (its hub weights with ``pretrained``, else random init).

    Args:
        checkpoint: any layout :func:`~augshift.models.checkpoints.read_checkpoint` reads (a ``--save-model`` file,
            a timm ``train.py`` checkpoint or folder, the Accelerate example's folder, a ``save_pretrained`` folder,
            a plain state_dict).
        model: the architecture (needed for a plain state_dict; else what the checkpoint records).
        num_classes: the head's size (default: what the checkpoint records, or its head's size).
        pretrained: the hub weights of ``model`` instead of a checkpoint.
        task: ``"classification"`` or ``"segmentation"``.

    Returns:
        A :class:`LoadedModel`; its ``normalization`` is what the checkpoint records (``--save-model`` files, timm's
        ``args.yaml``, the Accelerate example's ``metrics.json``, a ``transformers`` image processor) or the
        pretrained weights' (:func:`pretrained_normalization`).

    Examples:
        >>> loaded = load_model(model="resnet18", num_classes=3)
        >>> loaded.weights, loaded.normalization
        ('random', None)
    """
    from .checkpoints import infer_num_classes, load_state, read_checkpoint

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
    if saved.state_dict is None:  # a save_pretrained folder: transformers reads it, as the architecture it names
        if model is not None and model != saved.name:
            raise UsageError(f"{checkpoint} is a transformers save_pretrained folder of its own architecture: leave out "
                             f"--model {model} (or pass --model {saved.name})")
        if num_classes is not None and num_classes != saved.num_classes:
            raise UsageError(f"{checkpoint} has {saved.num_classes} classes, not --num-classes {num_classes}: a head "
                             f"of {num_classes} would be initialised at random; leave out --num-classes")
        net = create_model(saved.name, pretrained=True, task=task)
    elif saved.kwargs:  # saved by an augshift command, with the options it was built with
        kind = "segmentation" if saved.meta.get("task") == "segmentation" else "classification"
        net = load_state(create_model(name, task=kind, **saved.kwargs), saved, name)
    else:
        options = {"aux_loss": True} if any(k.startswith("aux_classifier.") for k in saved.state_dict) else {}
        net = create_model(name, num_classes or saved.num_classes, task=task, **options)
        found = None if num_classes or saved.num_classes else infer_num_classes(net, saved.state_dict)
        if found is not None:
            net = create_model(name, found, task=task, **options)
        net = load_state(net, saved, name)
    normalization = saved.normalization
    if normalization is None and saved.state_dict is None:  # a save_pretrained folder: its image processor's
        normalization = pretrained_normalization(saved.name, net)
    elif normalization is None and saved.uses_model_config:
        normalization = pretrained_normalization(name, net)
        normalization = Normalization(normalization.mean, normalization.std,
                                      f"{normalization.source}, which timm's train.py used ({saved.source} names no "
                                      f"--mean / --std)")
    return LoadedModel(net.eval(), name, normalization, saved.source, saved.meta)

