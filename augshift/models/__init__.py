"""Models: the model adapter (:mod:`.adapter`: what any model's logits, pooled features, ranking layer and
normalisation are) and the zoo (:mod:`.zoo`: building and loading any timm, torchvision or ``transformers`` model by
name); the demo's small CNN, GAPNet / PermuteNet / FCN for the position experiments, the adaptive polyphase sampling
(APS) ResNets, the CIFAR stem and the reader of users' checkpoints. Importing this package registers the project's
timm models (``gapnet_*``, ``permutenet_*``, ``resnet18_stride16``, ``fcn_resnet18``, ``aps_resnet18``,
``aps_blur_resnet18``) through one helper (:func:`.registry.register`)."""
from .adapter import (
    HF_PREFIX, TORCHVISION_PREFIX, LayerChoice, UnsupportedModelError, classifier_of, default_layer, feature_map,
    logits_of, map_channels, pretrained_normalization, torchvision_segmenters,
)
from .aps import ApsDown, ApsResNet
from .checkpoints import Checkpoint, read_checkpoint
from .position_nets import FCN, GAPNet
from .small_cnn import SmallCNN, create_small_cnn
from .stem import STEMS, cifar_stem
from .zoo import LoadedModel, create_model, load_model

__all__ = [
    "FCN", "GAPNet", "HF_PREFIX", "STEMS", "TORCHVISION_PREFIX", "ApsDown", "ApsResNet", "Checkpoint", "LayerChoice",
    "LoadedModel", "SmallCNN", "UnsupportedModelError", "cifar_stem", "classifier_of", "create_model",
    "create_small_cnn", "default_layer", "feature_map", "load_model", "logits_of", "map_channels",
    "pretrained_normalization", "read_checkpoint", "torchvision_segmenters",
]
