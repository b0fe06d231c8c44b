"""GAPNet, PermuteNet and a small FCN, registered as timm models.

Importing `augshift` registers `gapnet_resnet18`, `gapnet_resnet50`, `permutenet_resnet18`,
`permutenet_resnet50`, `gapnet_resnet18_stride16` and `permutenet_resnet18_stride16` (the official code's
trunk, `.resnet_stride16`) and `fcn_resnet18` with timm (`.registry.register`), so `timm.create_model` and
timm's own `train.py --model ...` build them. They have no pretrained weights.

* **GAPNet** (Islam et al. 2021): a timm trunk, a 3x3 conv to `num_classes` channels, global average
  pooling; the pooled values are the logits (no fully-connected layer). For the location task
  `num_classes = grid * grid`; for image classification on canvases it is the number of classes.
* **PermuteNet**: the plain timm model (trunk, global pooling, fully-connected classifier) with a fresh
  random permutation of the pooled channels on every forward (`augshift.permute.permute_channels`),
  as in the authors' code. Permuting GAPNet's own pooled vector would permute the logits themselves.
* **FCN**: a timm trunk (`features_only`), a 1x1 conv to `num_classes` and bilinear upsampling to the
  input size; the mosaic segmentation test bed of `augshift.segmentation` trains it.
"""
from __future__ import annotations

from typing import Any, Optional

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..permute import POOL, permute_channels
from . import resnet_stride16  # noqa: F401  (registers resnet18_stride16, the trunk of the *_stride16 models)
from .registry import register

class GAPNet(nn.Module):
    """Trunk -> 3x3 conv to `num_classes` channels -> global average pool = logits (N, num_classes).

    `get_classifier()` is an identity whose input is the pooled (N, num_classes) vector, so
    `augshift.PooledFeatures` and `permute_channels(model, "pool")` find the pooled point.

    Args:
        trunk: any timm convnet name (built with `pretrained=False`, without its head).
        num_classes: channels of the final conv, i.e. the logits (`grid * grid` for the location task).
        in_chans: input channels.
        drop_rate: dropout on the trunk's features before the final conv.
        global_pool: `None` or `"avg"` (the only pooling GAPNet has; accepted for timm's `create_model`).
        device: where the parameters are made (`None`: torch's default).
        dtype: their dtype (`None`: torch's default).
        **trunk_kwargs: further options of the timm trunk (e.g. `channels=` of a ResNet).

    Shapes: images (N, in_chans, H, W) -> logits (N, num_classes).

    Examples:
        >>> model = GAPNet("resnet18", num_classes=4, channels=(8, 16, 32, 64), stem_width=8)  # a narrow trunk
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 4])
        >>> model.feature_module
        'trunk.layer4'
    """

    def __init__(
        self, trunk: str = "resnet18", *, num_classes: int = 9, in_chans: int = 3, drop_rate: float = 0.0,
        global_pool: Optional[str] = None, device: Any = None, dtype: Any = None, **trunk_kwargs: Any,
    ) -> None:
        super().__init__()
        if global_pool not in (None, "avg"):
            raise ValueError(f"GAPNet pools by global average only (global_pool='avg'), got global_pool={global_pool!r}")
        factory = {k: v for k, v in dict(device=device, dtype=dtype).items() if v is not None}
        self.trunk = timm.create_model(
            trunk, pretrained=False, num_classes=0, global_pool="", in_chans=in_chans, **factory, **trunk_kwargs
        )
        self.num_features = self.trunk.num_features
        self.feature_module = "trunk." + self.trunk.feature_info[-1]["module"]  # last stage, e.g. trunk.layer4
        self.num_classes, self.drop_rate = num_classes, drop_rate
        self.head = nn.Conv2d(self.num_features, num_classes, kernel_size=3, padding=1, **factory)
        self.classifier = nn.Identity()

    def get_classifier(self) -> nn.Module:
        """The identity that receives the pooled logits (N, num_classes): GAPNet's pooled-features point."""
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replace the final 3x3 conv by a fresh one with `num_classes` output channels."""
        ref = self.head.weight
        self.head = nn.Conv2d(self.num_features, num_classes, 3, padding=1, device=ref.device, dtype=ref.dtype)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) images -> trunk features (N, num_features, h, w)."""
        return self.trunk.forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Trunk features -> pooled class maps (N, num_classes) (the logits; `pre_logits` is the same)."""
        x = F.dropout(x, p=self.drop_rate, training=self.training) if self.drop_rate else x
        pooled = self.head(x).mean(dim=(2, 3))
        return pooled if pre_logits else self.classifier(pooled)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


class FCN(nn.Module):
    """Fully-convolutional segmenter: timm trunk (`features_only`) -> 1x1 conv -> bilinear upsampling.

    Returns per-pixel logits (N, num_classes, H, W) at the input size (N, in_chans, H, W).

    Args:
        trunk: any timm convnet name (built with `pretrained=False`, `features_only=True`).
        num_classes: output channels of the 1x1 conv (classes per pixel).
        in_chans: input channels.
        feature_index: the trunk stage the head reads (default: the last); its module is
            `trunk.<stage name>` (e.g. `trunk.layer4` for ResNets), kept as `feature_module`.
        device: where the parameters are made (`None`: torch's default).
        dtype: their dtype (`None`: torch's default).
        **trunk_kwargs: further options of the timm trunk.

    Examples:
        >>> model = FCN("resnet18", num_classes=5, feature_index=2, channels=(8, 16, 32, 64), stem_width=8)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 5, 32, 32])
        >>> model.feature_module
        'trunk.layer2'
    """

    def __init__(
        self, trunk: str = "resnet18", *, num_classes: int = 10, in_chans: int = 3, feature_index: int = -1,
        device: Any = None, dtype: Any = None, **trunk_kwargs: Any,
    ) -> None:
        super().__init__()
        factory = {k: v for k, v in dict(device=device, dtype=dtype).items() if v is not None}
        self.trunk = timm.create_model(
            trunk, pretrained=False, features_only=True, out_indices=(feature_index,), in_chans=in_chans,
            **factory, **trunk_kwargs,
        )
        self.feature_module = "trunk." + self.trunk.feature_info.module_name()[0]
        self.num_classes = num_classes
        self.head = nn.Conv2d(self.trunk.feature_info.channels()[0], num_classes, kernel_size=1, **factory)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.head(self.trunk(x)[-1])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def permutenet(trunk: str, *, where: str = POOL, seed: Optional[int] = None, **kwargs: Any) -> nn.Module:
    """The timm model `trunk` with a fresh channel permutation per forward at `where` (what `permutenet_<trunk>`
    builds); `seed` makes the permutations reproducible (a `torch.Generator` seeded with it). The `state_dict`
    keys are those of the plain `trunk` model."""
    model = timm.create_model(trunk, pretrained=False, **kwargs)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return permute_channels(model, where, generator=generator)


for _trunk in ("resnet18", "resnet50", "resnet18_stride16"):
    _official = " (the official code's ResNet-18: no max-pool, stride 16; the paper's Table 1)" if "16" in _trunk else ""
    register(f"gapnet_{_trunk}", GAPNet, trunk=_trunk, num_classes=9, first_conv="trunk.conv1", classifier="head",
             doc=f"GAPNet on {_trunk}{_official}; `num_classes` defaults to 9, the 3x3 location task.")
    register(f"permutenet_{_trunk}", permutenet, trunk=_trunk, num_classes=9,
             doc=f"{_trunk}{_official} whose pooled channels are permuted at random on every forward (`where=`, "
                 "`seed=`).")
register("fcn_resnet18", FCN, trunk="resnet18", num_classes=10, first_conv="trunk.conv1", classifier="head",
         doc="FCN segmenter on a ResNet-18 trunk (`num_classes` defaults to 10, the CIFAR-10 mosaics).")
