"""A benchmark run's specification: `RunSpec` (model, recipe, seed, starting weights)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from augshift.engine import TrainConfig
from augshift.models import create_model, load_model


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    Args:
        name: names the run directory (``<workdir>/<name>``), unique within a sweep.
        arch: the model's name for `create_model` (e.g. a timm name such as ``resnet18``).
        config: the `TrainConfig`; ``config.seed`` is the seed.
        stem: the model's first layers (``standard``, or ``cifar``: the CIFAR stem).
        label: the row of the tables it belongs to (model or ablation variant); the seeds of a row share it.
        init: the weights training starts from (fine-tuning): any checkpoint `augshift.models.load_model` reads
            (a ``--save-model`` file, a timm ``train.py`` checkpoint, a ``save_pretrained`` folder, a state_dict);
            ``""``: ``arch`` at random initialisation.

    ``to_dict()`` gives the spec as JSON values, as ``result.json`` stores it (and as a resumed run is checked).

    Examples:
        >>> spec = RunSpec("resnet18_seed1", "resnet18", TrainConfig(epochs=2, seed=1), label="resnet18")
        >>> spec.to_dict()["config"]["seed"], spec.to_dict()["config"]["betas"], spec.stem
        (1, [0.9, 0.999], 'standard')
    """

    name: str
    arch: str
    config: TrainConfig
    stem: str = "standard"
    label: str = ""
    init: str = ""

    def to_dict(self) -> dict:
        """The spec as JSON values (as ``result.json`` stores it: tuples become lists; ``init`` only when set)."""
        spec = {"name": self.name, "arch": self.arch, "stem": self.stem, "label": self.label,
                "config": self.config.to_dict(), **({"init": self.init} if self.init else {})}
        return json.loads(json.dumps(spec))

    def create(self, num_classes: int) -> torch.nn.Module:
        """The run's model before training: ``init``'s weights, or ``arch`` at random initialisation."""
        if not self.init:
            return create_model(self.arch, num_classes, stem=self.stem)
        return load_model(self.init, model=None if Path(self.init).is_dir() else self.arch,
                          num_classes=num_classes).model.train()
