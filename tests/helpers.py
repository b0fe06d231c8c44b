"""Small helpers shared by tests: multi-process set-up, the documentation pages and the public API, a protocol
registered for a test, the independent references the shift family is checked against (pad-and-slice), the dot
images and the hand-checkable classifiers of the metric tests, and a tiny CNN for tests where the model is not the
point."""
from __future__ import annotations

import importlib
import inspect
import os
import socket
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)


ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))  # every page a user copies commands from

PACKAGES = (
    "augshift", "augshift.protocols", "augshift.data", "augshift.models", "augshift.engine", "augshift.distributed",
    "augshift.seeding", "augshift.position", "augshift.reporting", "augshift.integrations.timm",
    "augshift.integrations.accelerate", "augshift.integrations.transformers", "augshift.integrations.lightning",
    "augshift.integrations.evaluate",
)


def public_names() -> dict[str, object]:
    """``{"package.name": object}`` for every name a package lists in ``__all__``."""
    return {f"{package}.{name}": getattr(importlib.import_module(package), name)
            for package in PACKAGES for name in importlib.import_module(package).__all__}


def public_objects() -> dict[str, object]:
    """The classes and functions among `public_names` (the ones with docstrings to check)."""
    return {name: obj for name, obj in public_names().items() if inspect.isclass(obj) or inspect.isfunction(obj)}


def documented_parameters(obj: object) -> list[str]:
    """The parameters a caller passes: a function's, or a class's constructor's (`self` and `cls` left out)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    if target is object.__init__:
        return []
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [name for name in signature.parameters if name not in ("self", "cls")]


@contextmanager
def registered(protocol):
    """``protocol`` registered (`augshift.protocols.register_protocol`) inside the block, removed after it."""
    from augshift.protocols import PROTOCOLS, register_protocol

    register_protocol(protocol)
    try:
        yield protocol
    finally:
        del PROTOCOLS[protocol.name]


# ------------------------------------------------------------------------------------ independent references

PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
Shifts = Union[int, Sequence[int], torch.Tensor]


def pad_and_slice(x: torch.Tensor, dx: Shifts, dy: Shifts, mode: str = "zeros") -> torch.Tensor:
    """The independent reference of a shift: each image of ``x`` (N, C, H, W) padded by its own ``|dx|``, ``|dy|``
    with ``F.pad`` in the border ``mode``, then the window that moves content ``dx`` right and ``dy`` down sliced
    out (a Python loop over the images). ``dx``/``dy``: one int for every image, or one per image."""
    n, _, h, w = x.shape
    per_image = [[int(v)] * n if isinstance(v, int) else [int(s) for s in v] for v in (dx, dy)]
    out = []
    for image, sx, sy in zip(x, *per_image):
        pw, ph = abs(sx), abs(sy)
        padded = F.pad(image.unsqueeze(0), (pw, pw, ph, ph), mode=PAD_MODES[mode])
        out.append(padded[0, :, ph - sy:ph - sy + h, pw - sx:pw - sx + w])
    return torch.stack(out)


def roll_each(x: torch.Tensor, dx: Shifts, dy: Shifts) -> torch.Tensor:
    """The circular reference: ``torch.roll`` of each image of ``x`` (N, C, H, W) by its own ``(dx, dy)``."""
    n = x.shape[0]
    dx, dy = ([int(v)] * n if isinstance(v, int) else [int(s) for s in v] for v in (dx, dy))
    return torch.stack([torch.roll(image, (sy, sx), (-2, -1)) for image, sx, sy in zip(x, dx, dy)])


# ------------------------------------------------------------------------------------ dot images and classifiers

def random_dots(n: int, size: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """``(rows, cols)``: the positions of ``n`` dots drawn uniformly on a ``size`` x ``size`` image."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, size, (n,), generator=g).tolist(), torch.randint(0, size, (n,), generator=g).tolist()


def dot_images(rows: Sequence[int], cols: Sequence[int], size: int) -> torch.Tensor:
    """(N, 1, size, size) zero images, each with one pixel 1.0 at its ``(row, col)``."""
    x = torch.zeros(len(cols), 1, size, size)
    for i, (r, c) in enumerate(zip(rows, cols)):
        x[i, 0, r, c] = 1.0
    return x


class LeftRight(nn.Module):
    """Hand-checkable classifier: class 1 when the image's mass is in the right half, else 0."""

    def forward(self, x):
        w = x.shape[-1]
        return torch.stack([x[..., : w // 2].sum(dim=(1, 2, 3)), x[..., w // 2:].sum(dim=(1, 2, 3))], dim=1)


class Recorder(nn.Module):
    """Returns LeftRight's logits and keeps every input it saw, to compare the evaluated views with references."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return LeftRight()(x)


class TinyCNN(nn.Module):
    """A GAP classifier without BatchNorm (conv, ReLU, global average pool, linear): cheap, and nothing couples the
    images of a batch (or AugShift's two views) but what the test adds."""

    def __init__(self, num_classes: int = 4, *, channels: int = 3, width: int = 6, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(channels, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(N, width): the pooled feature the classifier reads."""
        return torch.relu(self.conv(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))


# ------------------------------------------------------------------------------------ benchmark results

def report_of(bits: dict[str, list[int]]):
    """A `ConsistencyReport` with these per-image 0/1 outcomes (``correct``, ``agree_<protocol>``) of images 0 .. N-1."""
    from augshift.report import ConsistencyReport

    n = len(bits["correct"])
    outcomes = {"index": torch.arange(n), **{k: torch.tensor(v, dtype=torch.bool) for k, v in bits.items()}}
    agree = {k[len("agree_"):]: sum(v) for k, v in bits.items() if k.startswith("agree_")}
    return ConsistencyReport(n, sum(bits["correct"]), agree, outcomes=outcomes)


def run_result(label: str, seed: int, bits: dict[str, list[int]]) -> dict:
    """A finished benchmark run's result (``result.json``) of row ``label`` and ``seed`` with these outcomes."""
    from sweep.outcomes import pack_outcomes

    report = report_of(bits)
    counts = {"samples": report.samples, "correct": report.correct, **{f"agree_{k}": v for k, v in report.agree.items()}}
    return {"label": label, "config": {"seed": seed}, "train_seconds": 1.0, **report.to_dict(), "counts": counts,
            "outcomes": pack_outcomes(report)}


# ------------------------------------------------------------------------------------ data folders

def mask_folder(root: Path, count: int = 4, size: int = 16) -> None:
    """``root/val/images`` + ``root/val/masks``: 3 classes by column band, 255 on the border."""
    import numpy as np
    from PIL import Image

    for sub in ("images", "masks"):
        (root / "val" / sub).mkdir(parents=True)
    g = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(g.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "val" / "images" / f"{i}.jpg")
        mask = (np.arange(size)[None, :].repeat(size, 0) * 3 // size).astype(np.uint8)
        mask[0] = 255
        Image.fromarray(mask, mode="L").save(root / "val" / "masks" / f"{i}.png")
