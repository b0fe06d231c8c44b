"""A benchmark run's specification: `RunSpec` (model, recipe, seed, starting weights)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from augshift.engine import TrainConfig
from augshift.errors import UsageError
from augshift.models import create_model, load_model


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    Args:
        name: names the run directory (`<workdir>/<name>`), unique within a sweep.
        arch: the model's name for `create_model` (e.g. a timm name such as `resnet18`).
        config: the `TrainConfig`; `config.seed` is the seed.
        stem: the model's first layers (`standard`, or `cifar`: the CIFAR stem).
        label: the row of the tables it belongs to (model or ablation variant); the seeds of a row share it.
        init: the weights training starts from (fine-tuning): any checkpoint `augshift.models.load_model` reads
            (a `--save-model` file, a timm `train.py` checkpoint, a `save_pretrained` folder, a state_dict);
            `""`: `arch` at random initialisation. Its content's SHA-256 (`init_digest`) is part of the run's
            identity: another file at the same path is another run.
        inputs: what the run trains and is evaluated on, as the command asked (`sweep.options.run_inputs`: the
            source, the sample limits, the protocols, the package version).

    `to_dict()` gives the spec as JSON values, as `result.json` stores it: the run's identity, checked when a
    finished or interrupted run is found in the work folder (`sweep.shards.read_result`, the checkpoint).

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
    inputs: dict = field(default_factory=dict, hash=False)
    init_digest: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.init:
            object.__setattr__(self, "init_digest", content_digest(Path(self.init)))

    def to_dict(self) -> dict:
        """The spec as JSON values (as `result.json` stores it: tuples become lists; `init` and `inputs`
        only when set)."""
        spec = {"name": self.name, "arch": self.arch, "stem": self.stem, "label": self.label,
                "config": self.config.to_dict(),
                **({"init": self.init, "init_digest": self.init_digest} if self.init else {}),
                **({"inputs": self.inputs} if self.inputs else {})}
        return json.loads(json.dumps(spec))

    def create(self, num_classes: int) -> torch.nn.Module:
        """The run's model before training: `init`'s weights, or `arch` at random initialisation."""
        if not self.init:
            return create_model(self.arch, num_classes, stem=self.stem)
        return load_model(self.init, model=None if Path(self.init).is_dir() else self.arch,
                          num_classes=num_classes).model.train()


def content_digest(path: Path) -> str:
    """The SHA-256 of a checkpoint's content: a file's bytes, or a folder's files (names and bytes, in order).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "w.pt").write_bytes(b"weights")
        ...     content_digest(Path(folder) / "w.pt") == hashlib.sha256(b"weights").hexdigest()
        True
    """
    if not path.exists():
        raise UsageError(f"checkpoint {path} does not exist: pass a checkpoint file or folder")
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
