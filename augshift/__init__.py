"""augshift: shift-consistent training and position-information tools for timm, torchvision and transformers models.

Islam et al., "Global Pooling, More than Meets the Eye: Position Information is Encoded Channel-Wise
in CNNs" (ICCV 2021), made into a training plugin.

The core is at the top of the package (shifts, views, protocols, loss, features, outputs, augshift, metrics,
report, permute, config, seeding, distributed, progress, intervals, errors) and imports only torch; the subpackages
are one kind each: `data`, `models` (the model adapter and the zoos), `engine` (the training loop),
`position` (the paper's position experiments), `reporting` and `cli`. The function `shift` is the package's
`augshift.shift`; its module is `augshift.shifts`. Importing the package imports nothing heavy: each public
name is imported on first use;
`import augshift.models` registers the project's timm models (`gapnet_*`, `permutenet_*`, `fcn_resnet18`,
`aps_*`), and so does everything that builds a model.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# each public name and the module that defines it: imported on first use (PEP 562), so that importing the package,
# and the command line's --help, do not import torch
_EXPORTS = {
    "AugShift": "augshift", "AugShiftObjective": "augshift", "loss_parts": "augshift",
    "AugShiftConfig": "config", "add_augshift_arguments": "config", "UsageError": "errors",
    "PooledFeatures": "features", "ConsistencyLoss": "loss", "ShiftConsistency": "metrics",
    "evaluate_shift_consistency": "metrics", "UnsupportedModelError": "outputs", "classifier_of": "outputs",
    "logits_of": "outputs", "ChannelPermutation": "permute", "permute_channels": "permute",
    "register_protocol": "protocols", "ConsistencyReport": "report", "RandomShift": "shifts",
    "fractional_shift": "shifts", "shift": "shifts",
}

__all__ = [  # the names of _EXPORTS, written out for static tools (the documentation reads this list)
    "AugShift",
    "AugShiftConfig",
    "AugShiftObjective",
    "ChannelPermutation",
    "ConsistencyLoss",
    "ConsistencyReport",
    "PooledFeatures",
    "RandomShift",
    "ShiftConsistency",
    "UnsupportedModelError",
    "UsageError",
    "add_augshift_arguments",
    "classifier_of",
    "evaluate_shift_consistency",
    "fractional_shift",
    "logits_of",
    "loss_parts",
    "permute_channels",
    "register_protocol",
    "shift",
]

if TYPE_CHECKING:  # what static tools (type checkers, the documentation) see
    from .augshift import AugShift, AugShiftObjective, loss_parts
    from .config import AugShiftConfig, add_augshift_arguments
    from .errors import UsageError
    from .features import PooledFeatures
    from .loss import ConsistencyLoss
    from .metrics import ShiftConsistency, evaluate_shift_consistency
    from .outputs import UnsupportedModelError, classifier_of, logits_of
    from .permute import ChannelPermutation, permute_channels
    from .protocols import register_protocol
    from .report import ConsistencyReport
    from .shifts import RandomShift, fractional_shift, shift


def __getattr__(name: str) -> Any:
    """A public name, imported from its defining module on first use and kept (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'augshift' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"augshift.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
