"""Models: the demo's small CNN, GAPNet / PermuteNet / FCN for the position experiments, the adaptive polyphase
sampling (APS) ResNets, the factory that builds any timm model with the CIFAR stem, the segmentation factory
(torchvision's ``deeplabv3_*``/``fcn_*``/``lraspp_*`` or timm) and the reader of users' checkpoints. Importing this package
registers the timm models (``gapnet_*``, ``permutenet_*``, ``fcn_resnet18``, ``aps_resnet18``, ``aps_blur_resnet18``)."""
from .aps import ApsDown, ApsResNet
from .factory import STEMS, cifar_stem, create_model
from .checkpoints import Checkpoint, infer_num_classes, load_state, read_checkpoint
from .position_nets import FCN, GAPNet, build_gapnet, build_permutenet
from .segmentation import create_segmentation_model, feature_layer
from .small_cnn import SmallCNN, create_small_cnn

__all__ = ["ApsDown", "ApsResNet", "Checkpoint", "FCN", "GAPNet", "STEMS", "SmallCNN", "build_gapnet", "build_permutenet",
           "cifar_stem", "create_model", "create_segmentation_model", "create_small_cnn", "feature_layer",
           "infer_num_classes", "load_state", "read_checkpoint"]
