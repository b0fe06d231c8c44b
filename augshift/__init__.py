"""augshift: shift-consistent training and position-information tools for timm, torchvision and transformers models.

Islam et al., "Global Pooling, More than Meets the Eye: Position Information is Encoded Channel-Wise
in CNNs" (ICCV 2021), made into a training plugin.

The core is at the top of the package (shift, loss, features, augshift, protocols, metrics, permute, config,
intervals); the subpackages are one kind each: ``data``, ``models`` (with the model adapter every part asks),
``engine`` (the training loop), ``position`` (the paper's position experiments), ``sweep`` (benchmark runs),
``reporting`` and ``cli``. Importing the package imports nothing heavy: each public name is imported on first use;
``import augshift.models`` registers the project's timm models (``gapnet_*``, ``permutenet_*``, ``fcn_resnet18``,
``aps_*``), and so does everything that builds a model.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# each public name and the module that defines it: imported on first use (PEP 562), so that importing the package,
# and the command line's --help, do not import torch
_EXPORTS = {
    "AugShift": "augshift", "loss_parts": "augshift", "AugShiftConfig": "config", "add_augshift_arguments": "config",
    "PooledFeatures": "features", "ConsistencyLoss": "loss", "ShiftConsistency": "metrics",
    "evaluate_shift_consistency": "metrics", "ChannelPermutation": "permute", "permute_channels": "permute",
    "RandomShift": "shift", "fractional_shift": "shift", "shift": "shift",
}

__all__ = [  # the names of _EXPORTS, written out for static tools (the documentation reads this list)
    "AugShift",
    "AugShiftConfig",
    "ChannelPermutation",
    "ConsistencyLoss",
    "PooledFeatures",
    "RandomShift",
    "ShiftConsistency",
    "add_augshift_arguments",
    "evaluate_shift_consistency",
    "fractional_shift",
    "loss_parts",
    "permute_channels",
    "shift",
]

if TYPE_CHECKING:  # what static tools (type checkers, the documentation) see
    from .augshift import AugShift, loss_parts
    from .config import AugShiftConfig, add_augshift_arguments
    from .features import PooledFeatures
    from .loss import ConsistencyLoss
    from .metrics import ShiftConsistency, evaluate_shift_consistency
    from .permute import ChannelPermutation, permute_channels
    from .shift import RandomShift, fractional_shift, shift


class _Package(types.ModuleType):
    """The package's module: a public name is looked up in its defining module on each access, so that ``shift``
    stays the function even after the submodule ``augshift.shift`` is imported (which sets the package's attribute
    of that name)."""

    def __getattribute__(self, name: str) -> Any:
        if name in _EXPORTS:
            return getattr(importlib.import_module(f"augshift.{_EXPORTS[name]}"), name)
        return super().__getattribute__(name)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_EXPORTS})


sys.modules[__name__].__class__ = _Package
