"""augshift: shift-consistent training and position-information tools for timm / torchvision models.

Islam et al., "Global Pooling, More than Meets the Eye: Position Information is Encoded Channel-Wise
in CNNs" (ICCV 2021), made into a training plugin.
"""
from .augshift import AugShift, AugShiftObjective, loss_parts
from .features import PooledFeatures, find_classifier, logits_and_features
from .loss import ConsistencyLoss
from .metrics import ShiftConsistency, evaluate_shift_consistency
from .permute import ChannelPermutation, permute_channels
from .shift import RandomShift, ShiftParams, shift
from .zoo import FCN, GAPNet  # importing registers gapnet_*, permutenet_*, fcn_resnet18 with timm

__version__ = "0.1.0"

__all__ = [
    "AugShift", "AugShiftObjective", "ChannelPermutation", "ConsistencyLoss", "PooledFeatures", "RandomShift",
    "ShiftConsistency", "ShiftParams", "evaluate_shift_consistency", "find_classifier", "logits_and_features",
    "loss_parts", "permute_channels", "shift",
]
__all__ += ["FCN", "GAPNet"]
