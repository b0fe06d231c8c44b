"""Hugging Face `transformers` integration: `AugShiftTrainer` (a `transformers.Trainer` training with AugShift
and reporting shift consistency) and the example `run_image_classification.py` beside this file.

Needs the `transformers` extra: `pip install "augshift[transformers]"`. `transformers` models work everywhere
else without any adapter (`hf:<id or folder>` names, `augshift.models.adapter`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from augshift.errors import require as _require

if TYPE_CHECKING:
    from .trainer import AugShiftTrainer

__all__ = ["AugShiftTrainer"]


def __getattr__(name: str) -> Any:
    """`AugShiftTrainer`, imported on first use: without transformers, an `ImportError` naming the extra (and the
    example beside it can still say so in one line)."""
    if name != "AugShiftTrainer":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _require("transformers", purpose="augshift.integrations.transformers")
    from .trainer import AugShiftTrainer

    return AugShiftTrainer
