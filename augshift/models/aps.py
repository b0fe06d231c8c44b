"""Adaptive polyphase sampling (APS) and truly shift-invariant ResNets, registered as timm models.

Chaman & Dokmanić, *"Truly shift-invariant convolutional neural networks"* (CVPR 2021): a stride-``s``
downsampling keeps one of the ``s * s`` polyphase components ``x[:, :, i::s, j::s]``; plain striding always
keeps ``(0, 0)``, so a one-pixel shift of the input changes the output. :class:`ApsDown` keeps, per image,
the component with the largest norm instead: a circular shift of the input only permutes the components
(and shifts each one circularly), so the same content is kept. With circular padding in every conv, pool
and blur, a network whose every stride is an :class:`ApsDown` gives *exactly* the same logits for any
circular shift (``torch.roll``) of its input, in eval mode (train-mode BatchNorm statistics are also
shift-invariant, up to floating-point summation order).

Importing this module registers ``aps_resnet18`` (APS, no blur) and ``aps_blur_resnet18`` (APS after a 3-tap
binomial blur, "APS-BlurPool" in the paper) with timm, built like timm's ``resnetblur18``: timm's ``ResNet``
whose every ``Conv2d`` runs at stride 1 with ``padding_mode`` (default ``"circular"``, the invariance
guarantee; ``"zeros"`` is how ResNets are usually trained) and whose strides are :class:`ApsDown` layers:

* stem: ``conv1`` (7x7, stride 1) -> ``bn1`` -> ``act1`` -> ``maxpool = [ApsDown, pad, MaxPool2d(3, stride=1),
  ApsDown]``, i.e. the stem conv's stride moved after its activation, as in every downsampling block; the
  CIFAR stem (``conv1`` a 3x3 stride-1 conv, ``maxpool`` an identity) therefore removes both stem strides;
* a downsampling block (:class:`ApsBasicBlock`): ``conv1`` -> ``bn1`` -> ``act1`` -> ``aa = ApsDown`` ->
  ``conv2``; the shortcut goes through the same ``ApsDown`` *with the phase chosen on the main path*, then
  ``downsample`` (1x1 conv, stride 1, and BN), so the two summed maps stay on the same grid.

``ApsDown`` has no state: the ``state_dict`` keys are exactly those of timm's ``resnet18`` (and
``resnetblur18``, whose blur filters are not saved either). Input height and width must be divisible by the
total stride (32; 8 with the CIFAR stem). There are no pretrained weights.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from torch import Tensor, nn

PADDING_MODES = ("circular", "zeros", "reflect", "replicate")
NORMS = ("l2", "l1")
_PAD_LAYERS = {"circular": nn.CircularPad2d, "zeros": nn.ZeroPad2d, "reflect": nn.ReflectionPad2d,
               "replicate": nn.ReplicationPad2d}
# timm.create_model passes these to every entry point; they only matter for pretrained weights
_TIMM_CFG_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
# ResNet options that would put a second stride next to the ApsDown layers
_UNSUPPORTED = ("aa_layer", "avg_down", "replace_stem_pool")


class ApsDown(nn.Module):
    """Adaptive polyphase downsampling of (N, C, H, W) to (N, C, H / stride, W / stride).

    Each image keeps its polyphase component ``x[:, :, i::stride, j::stride]`` of largest ``norm``
    (``"l2"`` or ``"l1"``, over all channels and positions); ties go to the first, in the order
    ``phase = i * stride + j``. ``filter_size`` > 1 low-pass filters first with a binomial blur (3: [1, 2, 1],
    5: [1, 4, 6, 4, 1], as timm's ``BlurPool2d``) and selects on the blurred map; the blur pads its border
    with ``padding_mode`` (``"circular"`` keeps the layer exactly equivariant to circular shifts).

    ``forward(x, phase=None)`` returns the downsampled map; ``forward_with_phase`` also returns the (N,)
    long tensor of the phases used, which another map of the same H, W (a residual shortcut) can be given
    to be downsampled on the same grid.
    """

    def __init__(
        self, stride: int = 2, *, filter_size: int = 1, padding_mode: str = "circular", norm: str = "l2"
    ) -> None:
        super().__init__()
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 2:
            raise ValueError(f"ApsDown stride must be an int >= 2, got {stride!r} (stride 1 needs no ApsDown)")
        if isinstance(filter_size, bool) or not isinstance(filter_size, int) or filter_size < 1:
            raise ValueError(f"filter_size must be an int >= 1 (1: no blur, 3 or 5: binomial), got {filter_size!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"unknown padding_mode {padding_mode!r}; supported: {', '.join(PADDING_MODES)}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; supported: {', '.join(NORMS)}")
        self.stride, self.filter_size, self.padding_mode, self.norm = stride, filter_size, padding_mode, norm
        taps = torch.tensor([float(math.comb(filter_size - 1, k)) for k in range(filter_size)])
        self.register_buffer("filt", (torch.outer(taps, taps) / taps.sum() ** 2)[None, None], persistent=False)

    def extra_repr(self) -> str:
        return (f"stride={self.stride}, filter_size={self.filter_size}, padding_mode={self.padding_mode!r}, "
                f"norm={self.norm!r}")

    def blur(self, x: Tensor) -> Tensor:
        """Depthwise binomial blur of (N, C, H, W), same size, border padded with ``padding_mode``."""
        k, channels = self.filter_size, x.shape[1]
        pad = ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2)
        x = F.pad(x, pad, mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        weight = self.filt.to(x.dtype).expand(channels, 1, k, k).contiguous()  # an expanded weight is slow in float64
        return F.conv2d(x, weight, groups=channels)

    def forward_with_phase(self, x: Tensor, phase: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """(N, C, H, W) -> ((N, C, H / stride, W / stride), phase (N,)); ``phase`` given: use it, else choose."""
        if x.dim() != 4:
            raise ValueError(f"ApsDown expects (N, C, H, W), got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        s = self.stride
        if h % s or w % s:
            raise ValueError(
                f"ApsDown(stride={s}) needs height and width divisible by {s}, got {h}x{w} (shape {tuple(x.shape)}): "
                f"resize or crop the input to a size divisible by the model's total stride "
                f"(32 for aps_resnet18, 8 with the CIFAR stem; e.g. 32, 64 or 224)"
            )
        if self.filter_size > 1:
            x = self.blur(x)
        grid = x.reshape(n, c, h // s, s, w // s, s)  # grid[:, :, :, i, :, j] == x[:, :, i::s, j::s]
        if phase is None:
            values = grid.detach().to(torch.promote_types(x.dtype, torch.float32))
            energy = values.square() if self.norm == "l2" else values.abs()
            phase = energy.sum(dim=(1, 2, 4)).reshape(n, s * s).argmax(dim=1)  # argmax: first of ties
        elif phase.shape != (n,) or phase.is_floating_point():
            raise ValueError(f"phase must be an integer tensor of shape ({n},), got {phase.dtype} {tuple(phase.shape)}")
        batch = torch.arange(n, device=x.device)
        return grid[batch, :, :, phase // s, :, phase % s], phase

    def forward(self, x: Tensor, phase: Optional[Tensor] = None) -> Tensor:
        return self.forward_with_phase(x, phase)[0]


class ApsBasicBlock(BasicBlock):
    """timm's ``BasicBlock`` with its stride in an :class:`ApsDown` (``aa``) after ``act1``; the shortcut is
    downsampled by the same ``aa`` with the phase chosen on the main path, then ``downsample`` (stride 1)."""

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None, *,
        filter_size: int = 1, padding_mode: str = "circular", norm: str = "l2", **kwargs: Any,
    ) -> None:
        super().__init__(inplanes, planes, 1, downsample, **kwargs)
        self.stride = stride
        if stride > 1:
            self.aa = ApsDown(stride, filter_size=filter_size, padding_mode=padding_mode, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.act1(self.drop_block(self.bn1(self.conv1(x))))
        if self.stride > 1:
            x, phase = self.aa.forward_with_phase(x)
            shortcut = self.aa(shortcut, phase)
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act2(x + shortcut)


class ApsResNet(ResNet):
    """timm ``ResNet`` of :class:`ApsBasicBlock` (``layers`` per stage) with every stride an :class:`ApsDown`.

    Every ``Conv2d`` (stem, blocks, shortcuts) runs at stride 1 with ``padding_mode``; the stem pool pads with
    it too. ``filter_size`` and ``norm`` configure every ``ApsDown``. Other keyword arguments go to timm's
    ``ResNet`` (``num_classes``, ``in_chans``, ``drop_rate``, ``drop_path_rate``, ``global_pool``, ...); the
    three APS options stay readable as attributes. Input (N, in_chans, H, W) with H, W divisible by 32 ->
    logits (N, num_classes).
    """

    def __init__(
        self, *, layers: Sequence[int] = (2, 2, 2, 2), filter_size: int = 1, padding_mode: str = "circular",
        norm: str = "l2", **kwargs: Any,
    ) -> None:
        unsupported = [key for key in _UNSUPPORTED if kwargs.get(key)]
        if unsupported:
            raise ValueError(f"{', '.join(unsupported)}: not supported, ApsResNet puts an ApsDown at every stride")
        aps = dict(filter_size=filter_size, padding_mode=padding_mode, norm=norm)
        block_args = dict(kwargs.pop("block_args", None) or {}, **aps)
        super().__init__(block=ApsBasicBlock, layers=tuple(layers), block_args=block_args, **kwargs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # the stem conv and the 1x1 shortcuts are built with stride 2
                module.stride, module.padding_mode = (1, 1), padding_mode
        self.maxpool = nn.Sequential(
            ApsDown(2, **aps), _PAD_LAYERS[padding_mode](1), nn.MaxPool2d(3, stride=1), ApsDown(2, **aps)
        )
        self.feature_info[0]["reduction"] = 1  # act1 is now at full resolution; both stem strides are in maxpool
        self.filter_size, self.padding_mode, self.norm = filter_size, padding_mode, norm
        self.pretrained_cfg = dict(
            url="", num_classes=self.num_classes, input_size=(self.in_chans, 224, 224), pool_size=(7, 7),
            crop_pct=0.875, interpolation="bilinear", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
            first_conv="conv1", classifier="fc",
        )


def build_aps_resnet(name: str, *, pretrained: bool = False, **kwargs: Any) -> ApsResNet:
    """An :class:`ApsResNet` for the timm entry point ``name`` (timm's config kwargs are dropped)."""
    if pretrained:
        raise ValueError(
            f"{name} has no pretrained weights: create it with pretrained=False and train it (its state_dict keys are "
            f"timm resnet18's, so resnet18 weights load with model.load_state_dict(...) as an initialisation)"
        )
    for key in _TIMM_CFG_KWARGS:
        kwargs.pop(key, None)
    return ApsResNet(**kwargs)


@register_model
def aps_resnet18(pretrained: bool = False, **kwargs: Any) -> ApsResNet:
    """ResNet-18 with APS at every stride, no blur (``filter_size=1``); ``padding_mode="circular"`` by default."""
    kwargs = dict(dict(layers=(2, 2, 2, 2), filter_size=1), **kwargs)
    return build_aps_resnet("aps_resnet18", pretrained=pretrained, **kwargs)


@register_model
def aps_blur_resnet18(pretrained: bool = False, **kwargs: Any) -> ApsResNet:
    """ResNet-18 with APS after a 3-tap binomial blur at every stride (APS-BlurPool, ``filter_size=3``)."""
    kwargs = dict(dict(layers=(2, 2, 2, 2), filter_size=3), **kwargs)
    return build_aps_resnet("aps_blur_resnet18", pretrained=pretrained, **kwargs)
