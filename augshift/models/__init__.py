"""Models: the model adapter (`.adapter`: what any model's logits, pooled features, ranking layer and
normalisation are), the builder (`.zoo`: building and loading any timm, torchvision or `transformers` model by
name) and the zoos it dispatches to (`.zoos`: one file per zoo, each knowing its names, how to build them, their
normalisation and what else differs); the demo's small CNN, GAPNet / PermuteNet / FCN for the position experiments,
the adaptive polyphase sampling (APS) ResNets, the CIFAR stem and the reader of users' checkpoints. Importing this
package registers the project's timm models (`gapnet_*`, `permutenet_*`, `resnet18_stride16`, `fcn_resnet18`,
`aps_resnet18`, `aps_blur_resnet18`) through one helper (`.registry.register`)."""
from . import aps, position_nets, resnet_stride16  # noqa: F401  (importing them registers their timm models)
from .adapter import default_layer, pretrained_normalization
from .zoo import create_model, load_model

__all__ = ["create_model", "default_layer", "load_model", "pretrained_normalization"]
