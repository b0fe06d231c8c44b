"""A small CNN for the demo: strided convolutions (so it aliases, like ResNets do), global average
pooling and a linear classifier `fc`, with timm's `forward_features` / `forward_head` split."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """(N, 3, H, W) -> logits (N, num_classes); stages of `width * 2**i` channels, each halving H, W.

    Args:
        num_classes: outputs of the linear classifier `fc`.
        width: channels of the first conv; stage `i` (from 1) has `width * 2**i`.
        stages: the number of strided stages (each halves H and W).
        in_chans: input channels.

    Shapes: images (N, in_chans, H, W) -> logits (N, num_classes); the pooled features entering `fc` are
    (N, `width * 2**stages`) (`num_features`).

    Examples:
        >>> model = SmallCNN(10, width=4, stages=2)
        >>> model(torch.randn(2, 3, 32, 32)).shape, model.num_features
        (torch.Size([2, 10]), 16)
    """

    def __init__(self, num_classes: int = 10, *, width: int = 32, stages: int = 3, in_chans: int = 3) -> None:
        super().__init__()
        layers, cin = [_conv_bn(in_chans, width, 1)], width
        for i in range(stages):
            cout = width * 2 ** (i + 1)
            layers += [_conv_bn(cin, cout, 2), _conv_bn(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def create_small_cnn(num_classes: int = 10, **kwargs) -> SmallCNN:
    """The demo model; see `SmallCNN` for options.

    Args:
        num_classes: outputs of the classifier (> 0).
        **kwargs: the other options of `SmallCNN` (`width`, `stages`, `in_chans`).

    Returns:
        A `SmallCNN`.

    Examples:
        >>> model = create_small_cnn(10, width=4)
        >>> model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    torch._assert(num_classes > 0, "num_classes must be > 0")
    return SmallCNN(num_classes, **kwargs)
