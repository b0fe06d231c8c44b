"""What a model zoo tells augshift: the interface every zoo of `augshift.models.zoos` implements.

A zoo (timm, torchvision, `transformers`) knows its names, builds its models, knows the statistics its pretrained
weights expect and, where its models differ from the generic case, where their logits, stages and base model are and
how its own checkpoint folders are read. The generic code (`adapter`,
`zoo`, `checkpoints`) asks the zoos in the order of
`ZOOS` and never looks at a name's prefix itself.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Optional

from torch import Tensor, nn

from ...data.stats import Normalization


@dataclass
class Checkpoint:
    """The weights of a checkpoint and what it tells about the model (what `augshift.models.checkpoints.read_checkpoint` and a zoo's `Zoo.read_folder` return).

    Args:
        state_dict: the weights (`None` for a `save_pretrained` folder, which `transformers` reads itself).
        source: the file (or folder) read.
        name: the architecture (timm / `torchvision/` / `hf:` name) when the checkpoint records it.
        num_classes: the number of classes, when recorded.
        kwargs: the model's options, in the project's own format (else empty).
        meta: what the project's own format records beside them (`task`, `grid`, `normalization`...).
        normalization: the statistics the weights were trained with, when recorded.
        uses_model_config: a timm `train.py` run that named no `--mean` / `--std`, so it normalised with the
            model's data config.

    Examples:
        >>> import torch
        >>> checkpoint = Checkpoint({"fc.weight": torch.zeros(3, 4)}, "model.pt")
        >>> checkpoint.name, checkpoint.num_classes, checkpoint.normalization
        (None, None, None)
    """

    state_dict: Optional[dict[str, Tensor]]
    source: str
    name: Optional[str] = None
    num_classes: Optional[int] = None
    kwargs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    normalization: Optional[Normalization] = None
    uses_model_config: bool = False



class Zoo(ABC):
    """One model zoo. A subclass says which names it `claims`, how it `create` s them and what `normalization`
    their pretrained weights expect; the other hooks default to "nothing special" and are overridden where a zoo's
    models need them.

    Attributes:
        supported: what the zoo builds, in the list of what augshift supports (`supported_models`).
        folder_file: the file marking a checkpoint folder the zoo reads itself (`config.json`), or `None`.
        folder_kind: what such a folder is called in messages.

    Examples:
        >>> from augshift.models.zoos import zoo_of
        >>> zoo = zoo_of("torchvision/resnet18")
        >>> zoo.claims("torchvision/resnet18"), zoo.claims("resnet18")
        (True, False)
        >>> zoo.create("torchvision/resnet18", 10, pretrained=False, task="classification").fc.out_features
        10
    """

    supported: str
    folder_file: Optional[str] = None
    folder_kind: str = ""

    @abstractmethod
    def claims(self, name: str, *, task: Optional[str] = None) -> bool:
        """Whether `name` is this zoo's.

        Args:
            name: a model name (`resnet18`, `torchvision/resnet50`, `hf:<id or folder>`).
            task: `"classification"` or `"segmentation"` when building; `None` when the task is not known
                (the normalisation of a name): any task's names.

        Returns:
            True when the zoo builds `name` (the first zoo of `ZOOS` that claims it does).
        """

    @abstractmethod
    def create(self, name: str, num_classes: Optional[int], *, pretrained: bool, task: str,
               **kwargs: Any) -> nn.Module:
        """The model `name` (checked and defaulted by `create_model`, which calls this).

        Args:
            name: a name the zoo claims.
            num_classes: the head's outputs (`None`: the zoo's default).
            pretrained: the zoo's weights instead of a random init.
            task: `"classification"` or `"segmentation"`.
            **kwargs: the model's own options, where the zoo takes them.

        Returns:
            The model, in train mode.
        """

    @abstractmethod
    def normalization(self, name: str, model: Optional[nn.Module]) -> Optional[Normalization]:
        """The statistics the pretrained weights of `name` expect (`None` when they name none).

        Args:
            name: a name the zoo claims.
            model: the model built from `name` (a zoo that reads the statistics off the model needs it).

        Returns:
            The `Normalization`, its `source` saying where it comes from, or `None`.
        """

    def stages(self, model: nn.Module) -> Optional[list[str]]:
        """The module names of `model`'s stages, shallow to deep, when the zoo's models list them (the channel
        ranking's candidates); `None`: the generic walk over the modules decides.

        Args:
            model: any model (a zoo answers for its own and returns `None` for the others).

        Returns:
            The stage names, or `None`.
        """
        return None

    def body(self, model: nn.Module) -> Optional[str]:
        """The module of `model` the generic walk stays inside (a base model without the heads after it), or
        `None` (the whole model).

        Args:
            model: any model (a zoo answers for its own and returns `None` for the others).

        Returns:
            A module name of `model.named_modules()`, or `None`.
        """
        return None

    def read_folder(self, path: Path, *, normalization: Optional[Normalization]) -> Optional[Checkpoint]:
        """The checkpoint of a folder the zoo reads itself (one holding `folder_file`), else `None`.

        Args:
            path: a checkpoint folder.
            normalization: the statistics a record beside the weights names (the Accelerate example's
                `metrics.json`), kept in the checkpoint.

        Returns:
            A `Checkpoint` with `state_dict=None` and the `name` that builds it with
            `pretrained=True`, or `None`.
        """
        return None

    def checkpoint_options(self, state_dict: dict[str, Tensor]) -> dict[str, Any]:
        """The build options a plain state_dict of one of the zoo's models asks for (e.g. an auxiliary head).

        Args:
            state_dict: the weights to load.

        Returns:
            Keyword options for `create` (empty when none).
        """
        return {}
