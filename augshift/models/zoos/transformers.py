"""The Hugging Face `transformers` zoo: `hf:<hub id or save_pretrained folder>`, built from its config (random
init) or loaded as trained (`pretrained`), read from a `save_pretrained` folder given as a checkpoint, normalised
by its image processor; its logits are a `ModelOutput`'s `logits` and its stages lie inside its base model."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from torch import nn

from ...data.stats import Normalization
from ...errors import UsageError, require
from ...outputs import UnsupportedModelError
from .base import Checkpoint, Zoo


PREFIX = "hf:"
CONFIG_FILE = "config.json"
SEGMENTATION_SUFFIXES = ("ForSemanticSegmentation", "ForUniversalSegmentation", "ForInstanceSegmentation")


def transformers_module() -> Any:
    """The `transformers` package, or a `MissingExtraError` naming the extra that installs it."""
    return require("transformers", purpose="hf: models")


def image_processor_of(path: str) -> Any:
    """The image processor of a `transformers` model (`AutoImageProcessor.from_pretrained(path)`).

    Args:
        path: a hub id or a `save_pretrained` folder.

    Returns:
        The image processor, or None where `path` has none (a model made from a config alone).

    Examples:
        >>> import tempfile, transformers
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     transformers.ResNetConfig().save_pretrained(folder)
        ...     print(image_processor_of(folder))
        None
    """
    transformers = transformers_module()
    try:
        return transformers.AutoImageProcessor.from_pretrained(path)
    except (OSError, ValueError):
        return None


def _auto_class(task: str) -> Any:
    transformers = transformers_module()
    return (transformers.AutoModelForImageClassification if task == "classification"
            else transformers.AutoModelForSemanticSegmentation)


class TransformersZoo(Zoo):
    """Hugging Face `transformers` image models, named `hf:<hub id or save_pretrained folder>`.

    Examples:
        >>> import tempfile, transformers
        >>> tmp = tempfile.TemporaryDirectory()
        >>> transformers.ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8).save_pretrained(tmp.name)
        >>> ZOO.claims(f"hf:{tmp.name}"), ZOO.claims("resnet18")
        (True, False)
        >>> ZOO.create(f"hf:{tmp.name}", 3, pretrained=False, task="classification").config.num_labels
        3
        >>> tmp.cleanup()
    """

    supported = ("Hugging Face transformers image models (hf:<hub id or save_pretrained folder>: ResNet, ConvNeXt, "
                 "ViT, Swin, ...)")
    folder_file = CONFIG_FILE
    folder_kind = "a transformers save_pretrained folder"

    def claims(self, name: str, *, task: Optional[str] = None) -> bool:
        return name.startswith(PREFIX)

    def create(self, name: str, num_classes: Optional[int], *, pretrained: bool, task: str,
               **kwargs: Any) -> nn.Module:
        if kwargs:
            raise TypeError(f"options {', '.join(kwargs)} are for timm and torchvision models; set a transformers "
                            "model's options in its config")
        transformers = transformers_module()
        labels = {} if num_classes is None else {"num_labels": num_classes}
        try:
            config = transformers.AutoConfig.from_pretrained(name.removeprefix(PREFIX), **labels)
            if pretrained:
                return _pretrained(name, config, num_classes, task=task)
            return _auto_class(task).from_config(config)
        except (OSError, ValueError) as error:
            if isinstance(error, UsageError):
                raise
            raise UnsupportedModelError(f"{name} is not a transformers image {task} model here "
                                        f"({type(error).__name__}: {' '.join(str(error).split())[:300]}); give a "
                                        "save_pretrained folder or a hub id (needs the network or a cached copy)"
                                        ) from None

    def normalization(self, name: str, model: Optional[nn.Module]) -> Optional[Normalization]:
        processor = image_processor_of(name.removeprefix(PREFIX))
        if processor is None or getattr(processor, "image_mean", None) is None:
            return None
        return Normalization(processor.image_mean, processor.image_std, f"the image processor of {name}")

    def body(self, model: nn.Module) -> Optional[str]:
        base = getattr(model, "base_model_prefix", "")  # the encoder, without the heads after it (a decode head)
        return base if base and isinstance(getattr(model, base, None), nn.Module) else None

    def read_folder(self, path: Path, *, normalization: Optional[Normalization]) -> Optional[Checkpoint]:
        if not (path / CONFIG_FILE).is_file():
            return None
        # without a recorded normalisation, load_model asks the folder's image processor
        labels = json.loads((path / CONFIG_FILE).read_text()).get("id2label")
        return Checkpoint(None, str(path), f"{PREFIX}{path}", len(labels) if labels else None,
                          normalization=normalization)


def _pretrained(name: str, config: Any, num_classes: Optional[int], *, task: str) -> nn.Module:
    """The weights of the folder or hub id `name` (`hf:<...>`) as trained: only a head of another `num_classes`,
    asked for, is new; another task's head or weights the folder lacks (which the loader would initialise at random)
    are refused."""
    architectures = list(getattr(config, "architectures", None) or [])
    saved_task = "segmentation" if any(a.endswith(SEGMENTATION_SUFFIXES) for a in architectures) else "classification"
    if saved_task != task:
        fix = ("augshift channels / augshift attack, which take segmentation models" if saved_task == "segmentation"
               else "augshift consistency, which takes classifiers")
        raise UsageError(f"{name} holds a {saved_task} model ({', '.join(architectures)}) and this command "
                         f"evaluates {task} models: its head would be initialised at random; give it to {fix}")
    labels = {} if num_classes is None else {"num_labels": num_classes}
    model, report = _auto_class(task).from_pretrained(name.removeprefix(PREFIX), output_loading_info=True,
                                                      ignore_mismatched_sizes=bool(labels), **labels)
    missing = list(report.get("missing_keys", []))
    if missing:
        raise UsageError(f"{name} lacks weights the model needs ({', '.join(sorted(missing)[:4])}"
                         f"{' ...' if len(missing) > 4 else ''}): they would be initialised at random; save the whole "
                         "trained model with save_pretrained")
    return model


ZOO = TransformersZoo()
