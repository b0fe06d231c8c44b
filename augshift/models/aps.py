"""Adaptive polyphase sampling (APS) and truly shift-invariant ResNets, registered as timm models.

Chaman & Dokmanić, *"Truly shift-invariant convolutional neural networks"* (CVPR 2021): a stride-`s`
downsampling keeps one of the `s * s` polyphase components `x[:, :, i::s, j::s]`; plain striding always
keeps `(0, 0)`, so a one-pixel shift of the input changes the output. `ApsDown` keeps, per image,
the component with the largest norm instead: a circular shift of the input only permutes the components
(and shifts each one circularly), so the same content is kept. With circular padding in every conv, pool
and blur, a network whose every stride is an `ApsDown` gives *exactly* the same logits for any
circular shift (`torch.roll`) of its input, in eval mode (train-mode BatchNorm statistics are also
shift-invariant, up to floating-point summation order).

Importing this module registers `aps_resnet18` (APS, no blur) and `aps_blur_resnet18` (APS after a 3-tap
binomial blur, "APS-BlurPool" in the paper) with timm (`register`), built like
timm's `resnetblur18`: a ResNet built with every `Conv2d` at stride 1 with `padding_mode` (default
`"circular"`, the invariance guarantee; `"zeros"` is how ResNets are usually trained) and every stride an
`ApsDown` layer:

* stem: `conv1` (7x7, stride 1) -> `bn1` -> `act1` -> `maxpool = [ApsDown, pad, MaxPool2d(3, stride=1),
  ApsDown]`, i.e. the stem conv's stride moved after its activation, as in every downsampling block; the
  CIFAR stem (`conv1` a 3x3 stride-1 conv, `maxpool` an identity) therefore removes both stem strides;
* a downsampling block (`ApsBasicBlock`): `conv1` -> `bn1` -> `act1` -> `aa = ApsDown` ->
  `conv2`; the shortcut goes through the same `ApsDown` *with the phase chosen on the main path*, then
  `downsample` (1x1 conv, stride 1, and BN), so the two summed maps stay on the same grid.

`ApsDown` has no state: the `state_dict` keys are exactly those of timm's `resnet18` (and
`resnetblur18`, whose blur filters are not saved either). Input height and width must be divisible by the
total stride (32; 8 with the CIFAR stem). There are no pretrained weights.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d
from torch import Tensor, nn

from ..config import check_mode
from .registry import register

NORMS = ("l2", "l1")
_PAD_LAYERS = {"circular": nn.CircularPad2d, "zeros": nn.ZeroPad2d, "reflect": nn.ReflectionPad2d,
               "replicate": nn.ReplicationPad2d}


class ApsDown(nn.Module):
    """Adaptive polyphase downsampling of (N, C, H, W) to (N, C, H / stride, W / stride).

    Each image keeps its polyphase component `x[:, :, i::stride, j::stride]` of largest `norm`; ties go to the
    first, in the order `phase = i * stride + j`.

    Args:
        stride: the downsampling factor (an int >= 2); H and W must be divisible by it.
        filter_size: > 1 low-pass filters first with a binomial blur (3: [1, 2, 1], 5: [1, 4, 6, 4, 1], as timm's
            `BlurPool2d`) and selects on the blurred map; 1: no blur.
        padding_mode: the border of the blur (`"circular"` keeps the layer exactly equivariant to circular
            shifts; `"zeros"`, `"reflect"`, `"replicate"`).
        norm: how a component is measured, `"l2"` or `"l1"` (over all channels and positions).

    `forward(x, phase=None)` returns the downsampled map; `forward_with_phase` also returns the (N,)
    long tensor of the phases used, which another map of the same H, W (a residual shortcut) can be given
    to be downsampled on the same grid.

    Examples:
        >>> down = ApsDown(2)
        >>> x = torch.randn(2, 4, 8, 8)
        >>> y, phase = down.forward_with_phase(x)
        >>> y.shape, phase.shape
        (torch.Size([2, 4, 4, 4]), torch.Size([2]))
        >>> shifted = torch.roll(x, (1, 1), (-2, -1))  # a circular shift keeps the same component (its values)
        >>> torch.equal(down(shifted).flatten(1).sort().values, y.flatten(1).sort().values)
        True
        >>> torch.equal(down(torch.roll(x, (2, 2), (-2, -1))), torch.roll(y, (1, 1), (-2, -1)))  # and shifts it
        True
        >>> down(torch.randn(2, 4, 8, 8), phase).shape  # another map on the same grid
        torch.Size([2, 4, 4, 4])
    """

    def __init__(
        self, stride: int = 2, *, filter_size: int = 1, padding_mode: str = "circular", norm: str = "l2"
    ) -> None:
        super().__init__()
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 2:
            raise ValueError(f"ApsDown stride must be an int >= 2, got {stride!r} (stride 1 needs no ApsDown)")
        if isinstance(filter_size, bool) or not isinstance(filter_size, int) or filter_size < 1:
            raise ValueError(f"filter_size must be an int >= 1 (1: no blur, 3 or 5: binomial), got {filter_size!r}")
        check_mode(padding_mode, what="padding_mode")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; supported: {', '.join(NORMS)}")
        self.stride, self.filter_size, self.padding_mode, self.norm = stride, filter_size, padding_mode, norm
        taps = torch.tensor([float(math.comb(filter_size - 1, k)) for k in range(filter_size)])
        self.register_buffer("filt", (torch.outer(taps, taps) / taps.sum() ** 2)[None, None], persistent=False)

    def extra_repr(self) -> str:
        return (f"stride={self.stride}, filter_size={self.filter_size}, padding_mode={self.padding_mode!r}, "
                f"norm={self.norm!r}")

    def blur(self, x: Tensor) -> Tensor:
        """Depthwise binomial blur of (N, C, H, W), same size, border padded with `padding_mode`."""
        k, channels = self.filter_size, x.shape[1]
        pad = ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2)
        x = F.pad(x, pad, mode="constant" if self.padding_mode == "zeros" else self.padding_mode)
        weight = self.filt.to(x.dtype).expand(channels, 1, k, k).contiguous()  # an expanded weight is slow in float64
        return F.conv2d(x, weight, groups=channels)

    def forward_with_phase(self, x: Tensor, phase: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """(N, C, H, W) -> ((N, C, H / stride, W / stride), phase (N,)); `phase` given: use it, else choose."""
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


def _conv(cin: int, cout: int, kernel: int, padding_mode: str) -> nn.Conv2d:
    """A stride-1 `Conv2d` without bias, "same" padding with `padding_mode`."""
    return nn.Conv2d(cin, cout, kernel, stride=1, padding=kernel // 2, bias=False, padding_mode=padding_mode)


class ApsBasicBlock(nn.Module):
    """A ResNet basic block whose stride is an `ApsDown` (`aa`) after `act1`: `conv1` (3x3, stride 1) ->
    `bn1` -> `act1` -> `aa` -> `conv2` -> `bn2`; the shortcut is downsampled by the same `aa` with the
    phase chosen on the main path, then `downsample` (1x1 conv at stride 1 and BN). Its `state_dict` keys are
    those of timm's `BasicBlock`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None, *,
                 filter_size: int = 1, padding_mode: str = "circular", norm: str = "l2") -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1 = _conv(inplanes, planes, 3, padding_mode), nn.BatchNorm2d(planes), nn.ReLU(True)
        self.aa = ApsDown(stride, filter_size=filter_size, padding_mode=padding_mode, norm=norm) if stride > 1 else None
        self.conv2, self.bn2, self.act2 = _conv(planes, planes, 3, padding_mode), nn.BatchNorm2d(planes), nn.ReLU(True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero the last BatchNorm's weight (timm's ResNet initialisation)."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        if self.aa is not None:
            x, phase = self.aa.forward_with_phase(x)
            shortcut = self.aa(shortcut, phase)
        x = self.bn2(self.conv2(x))
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act2(x + shortcut)


class ApsResNet(nn.Module):
    """A ResNet of `ApsBasicBlock` (`layers` per stage) whose every stride is an `ApsDown`, with
    timm's model API (`get_classifier`, `reset_classifier`, `forward_features`, `forward_head`,
    `feature_info`) and timm `resnet18`'s `state_dict` keys.

    Args:
        layers: blocks per stage (`(2, 2, 2, 2)`: ResNet-18).
        num_classes: classes of the linear head `fc`.
        in_chans: input channels.
        filter_size: the blur before every polyphase choice (1: none, 3: APS-BlurPool).
        padding_mode: padding of every conv, blur and the stem pool (`circular`: exact invariance).
        norm: how `ApsDown` measures a polyphase component (`l2` or `l1`).
        drop_rate: dropout before `fc`.
        global_pool: timm's pooling type (`avg`).

    Shapes: (N, in_chans, H, W) with H, W divisible by 32 (8 with the CIFAR stem) -> logits (N, num_classes).

    Examples:
        >>> model = ApsResNet(layers=(1, 1, 1, 1), num_classes=3).eval()
        >>> x = torch.randn(1, 3, 32, 32)
        >>> model(x).shape
        torch.Size([1, 3])
        >>> torch.allclose(model(x), model(torch.roll(x, (3, 5), (-2, -1))), atol=1e-5)  # circular-shift invariant
        True
    """

    def __init__(
        self, *, layers: Sequence[int] = (2, 2, 2, 2), num_classes: int = 1000, in_chans: int = 3, filter_size: int = 1,
        padding_mode: str = "circular", norm: str = "l2", drop_rate: float = 0.0, global_pool: str = "avg",
    ) -> None:
        super().__init__()
        aps = dict(filter_size=filter_size, padding_mode=padding_mode, norm=norm)
        self.conv1, self.bn1, self.act1 = _conv(in_chans, 64, 7, padding_mode), nn.BatchNorm2d(64), nn.ReLU(True)
        self.maxpool = nn.Sequential(ApsDown(2, **aps), _PAD_LAYERS[padding_mode](1), nn.MaxPool2d(3, stride=1),
                                     ApsDown(2, **aps))
        inplanes, self.feature_info = 64, [dict(num_chs=64, reduction=1, module="act1")]
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(_conv(inplanes, planes, 1, padding_mode), nn.BatchNorm2d(planes))
            blocks = [ApsBasicBlock(inplanes, planes, stride, downsample, **aps)]
            blocks += [ApsBasicBlock(planes, planes, **aps) for _ in range(count - 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            inplanes = planes
            self.feature_info.append(dict(num_chs=planes, reduction=4 * 2 ** stage, module=f"layer{stage + 1}"))
        self.num_classes, self.num_features, self.drop_rate = num_classes, inplanes, drop_rate
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else nn.Identity()
        self.filter_size, self.padding_mode, self.norm = filter_size, padding_mode, norm
        for module in self.modules():  # timm's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if isinstance(module, ApsBasicBlock):
                module.zero_init_last()

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A fresh `fc` with `num_classes` outputs (0: none); `global_pool` changes the pooling type."""
        if global_pool is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


register("aps_resnet18", ApsResNet, layers=(2, 2, 2, 2), filter_size=1,
         doc="ResNet-18 with APS at every stride, no blur (`filter_size=1`); `padding_mode='circular'` by default.")
register("aps_blur_resnet18", ApsResNet, layers=(2, 2, 2, 2), filter_size=3,
         doc="ResNet-18 with APS after a 3-tap binomial blur at every stride (APS-BlurPool, `filter_size=3`).")
