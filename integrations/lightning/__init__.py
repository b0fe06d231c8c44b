"""PyTorch Lightning integration: `AugShiftCallback`, AugShift training and `val_shift_consistency` /
`test_shift_consistency` logging for any `Trainer` or `LightningCLI` script
(`--trainer.callbacks+=augshift.integrations.lightning.AugShiftCallback`).

Needs the `lightning` extra: `pip install "augshift[lightning]"`; without it, importing `AugShiftCallback` is an
`ImportError` naming the extra.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from augshift.errors import require as _require

if TYPE_CHECKING:
    from .callback import AugShiftCallback

__all__ = ["AugShiftCallback"]


def __getattr__(name: str) -> Any:
    """`AugShiftCallback`, imported on first use (after checking that Lightning and torchmetrics are installed)."""
    if name != "AugShiftCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for package in ("lightning", "torchmetrics"):
        _require(package, purpose="augshift.integrations.lightning")
    from .callback import AugShiftCallback

    return AugShiftCallback
