"""Models: the model adapter (`.adapter`: what any model's logits, pooled features, ranking layer and
normalisation are), the builder (`.zoo`: building and loading any timm, torchvision or ``transformers`` model by
name) and the zoos it dispatches to (`.zoos`: one file per zoo, each knowing its names, how to build them, their
normalisation and what else differs); the demo's small CNN, GAPNet / PermuteNet / FCN for the position experiments,
the adaptive polyphase sampling (APS) ResNets, the CIFAR stem and the reader of users' checkpoints. Importing this
package registers the project's timm models (``gapnet_*``, ``permutenet_*``, ``resnet18_stride16``, ``fcn_resnet18``,
``aps_resnet18``, ``aps_blur_resnet18``) through one helper (`.registry.register`)."""
from .adapter import (
    LayerChoice, UnsupportedModelError, classifier_of, default_layer, feature_map, logits_of, map_channels,
    pretrained_normalization,
)
from .aps import ApsDown, ApsResNet
from .checkpoints import Checkpoint, read_checkpoint
from .position_nets import FCN, GAPNet
from .small_cnn import SmallCNN, create_small_cnn
from .stem import STEMS, cifar_stem
from .zoo import LoadedModel, create_model, load_model
from .zoos.torchvision import PREFIX as TORCHVISION_PREFIX
from .zoos.torchvision import torchvision_segmenters
from .zoos.transformers import PREFIX as HF_PREFIX

__all__ = ["create_model", "default_layer", "load_model", "pretrained_normalization"]
