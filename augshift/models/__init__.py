"""Models: the demo's small CNN, GAPNet / PermuteNet / FCN for the position experiments, the adaptive polyphase
sampling (APS) ResNets, and the factory that builds any timm model with the CIFAR stem. Importing this package
registers the timm models (``gapnet_*``, ``permutenet_*``, ``fcn_resnet18``, ``aps_resnet18``, ``aps_blur_resnet18``)."""
from .aps import ApsDown, ApsResNet
from .factory import STEMS, cifar_stem, create_model
from .position_nets import FCN, GAPNet, build_gapnet, build_permutenet
from .small_cnn import SmallCNN, create_small_cnn

__all__ = ["ApsDown", "ApsResNet", "FCN", "GAPNet", "STEMS", "SmallCNN", "build_gapnet", "build_permutenet",
           "cifar_stem", "create_model", "create_small_cnn"]
