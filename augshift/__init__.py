"""augshift: shift-consistent training and position-information tools for timm, torchvision and transformers models.

Islam et al., "Global Pooling, More than Meets the Eye: Position Information is Encoded Channel-Wise
in CNNs" (ICCV 2021), made into a training plugin.

The core is at the top of the package (shift, loss, features, augshift, protocols, metrics, permute, config,
intervals); the subpackages are one kind each: ``data``, ``models`` (with the model adapter every part asks),
``engine`` (the training loop), ``position`` (the paper's position experiments), ``sweep`` (benchmark runs),
``reporting`` and ``cli``.
"""
from . import models  # noqa: F401  (importing registers gapnet_*, permutenet_*, fcn_resnet18, aps_* with timm)
from .augshift import AugShift, loss_parts
from .config import AugShiftConfig, add_augshift_arguments
from .features import PooledFeatures
from .loss import ConsistencyLoss
from .metrics import ShiftConsistency, evaluate_shift_consistency
from .permute import ChannelPermutation, permute_channels
from .shift import RandomShift, fractional_shift, shift

__version__ = "0.1.0"

__all__ = [
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
