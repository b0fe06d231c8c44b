"""Position channels (Islam et al. 2021, Sec. 5): rank the channels of any module by how much their pooled
activation moves when only the position of the content changes (flip or shift); `region=` gives the signed,
region-specific ranking (channels that fire for content on the left, right, top or bottom)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..choices import REGIONS, TRANSFORMS
from ..outputs import evaluating
from ..errors import UsageError
from ..models.adapter import feature_map
from ..reporting.plots import pyplot, save_figure
from ..shifts import check_images, shift


def get_module(model: nn.Module, layer: str) -> nn.Module:
    """The module called `layer` in `model.named_modules()` (clear error listing candidates otherwise).

    Args:
        model: the model to look in.
        layer: a dotted module name (`layer4`, `backbone.layer4`, `0`); the empty name (the model itself) is
            refused.

    Returns:
        The module.

    Raises:
        UsageError: when `model` has no such module; the message lists names it has.

    Examples:
        >>> model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), nn.Flatten())
        >>> get_module(model, "0.0")
        Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))
        >>> get_module(model, "layer4")
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: Sequential has no module 'layer4'; module names look like: 0, 0.0, 0.1, 1
    """
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        # the modules with children first (stages), then the leaves: a model of leaves only still gets its names
        names = sorted((name for name in modules if name), key=lambda name: not any(modules[name].children()))[:12]
        raise UsageError(f"{type(model).__name__} has no module {layer!r}; module names look like: {', '.join(names)}")
    return modules[layer]


def pooled_activations(
    model: nn.Module, layer: str, images: Tensor, *, batch_size: int = 64, device: Union[str, torch.device] = "cpu"
) -> Tensor:
    """Spatially averaged output (N, C) of module `layer` for `images` (N, C_in, H, W), in eval mode.

    Args:
        model: the model to run (moved to `device`; its train / eval mode is restored after).
        layer: a module name of `model.named_modules()`; its output is read channel-first
            (`feature_map`: a map (N, C, h, w), a token sequence, ...).
        images: (N, C_in, H, W) model inputs.
        batch_size: images per forward.
        device: where the model runs.

    Returns:
        (N, C) float32 activations on the CPU (a (N, C) output is returned as is).

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        >>> pooled_activations(model, "1", torch.randn(5, 3, 8, 8), batch_size=2).shape
        torch.Size([5, 4])
    """
    return torch.cat([(maps.flatten(2).mean(-1) if maps.dim() > 2 else maps).float().cpu()
                      for maps in layer_outputs(model, layer, images, batch_size=batch_size, device=device)])


def layer_outputs(
    model: nn.Module, layer: str, images: Tensor, *, batch_size: int = 64, device: Union[str, torch.device] = "cpu"
) -> Iterator[Tensor]:
    """Module `layer`'s feature maps (B, C, ...) (on `device`, detached) per batch of `images` (N, C_in, H, W),
    in eval mode (`evaluating`)."""
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: tuple, output) -> None:
        captured.append(feature_map(output, layer).detach())

    handle = get_module(model, layer).register_forward_hook(hook)
    try:
        with evaluating(model.to(device)):
            for start in range(0, len(images), batch_size):
                model(images[start:start + batch_size].to(device))
                if not captured:
                    raise UsageError(f"module {layer!r} does not run in {type(model).__name__}'s forward: pick another layer")
                yield captured.pop()
    finally:
        handle.remove()


def channel_maps(
    model: nn.Module, layer: str, images: Tensor, channels: Sequence[int], *, batch_size: int = 64,
    device: Union[str, torch.device] = "cpu",
) -> Tensor:
    """Where `channels` of module `layer` fire: their mean activation maps (len(channels), h, w) over
    `images` (N, C_in, H, W)."""
    index = torch.as_tensor(list(channels), dtype=torch.long)
    total = None
    for maps in layer_outputs(model, layer, images, batch_size=batch_size, device=device):
        if maps.dim() != 4:
            raise UsageError(f"module {layer!r} outputs {tuple(maps.shape)}, not (N, C, h, w) maps: pick a conv stage")
        part = maps[:, index.to(maps.device)].float().sum(0).cpu()
        total = part if total is None else total + part
    return total / len(images)


def position_pairs(
    images: Tensor, transform: str = "hflip", region: Optional[str] = None, *, amount: float = 0.25
) -> tuple[Tensor, Tensor]:
    """Two versions (A, B) of `images` with the same content at different positions.

    Without `region`: `hflip`/`vflip` give (x, flipped x); `shift` gives x shifted left vs right by
    `amount` of the width (zero fill). With `region` (left/right/top/bottom), A has the content in that
    region and B the same content in the opposite one: `shift` moves x towards / away from it; a flip
    keeps only the region's half of x in A and mirrors A for B.

    Args:
        images: float (N, C, H, W) images x.
        transform: one of `TRANSFORMS`: `"hflip"`, `"vflip"` or `"shift"`.
        region: None, or one of `REGIONS` (`left`, `right`, `top`, `bottom`); `left` / `right`
            need `hflip` or `shift`, `top` / `bottom` `vflip` or `shift`.
        amount: the shift, as a fraction of the width (height for `top` / `bottom`), at least one pixel.

    Returns:
        `(A, B)`, both (N, C, H, W).

    Examples:
        >>> x = torch.randn(2, 3, 8, 8)
        >>> a, b = position_pairs(x, "hflip")
        >>> torch.equal(a, x), torch.equal(b, x.flip(-1))
        (True, True)
        >>> a, b = position_pairs(x, "hflip", "left")  # A: the left half only, B: A mirrored
        >>> bool((a[..., 4:] == 0).all()), torch.equal(b, a.flip(-1))
        (True, True)
        >>> a, b = position_pairs(x, "shift", amount=0.25)  # shifted 2 px left and 2 px right
        >>> torch.equal(a[..., :6], x[..., 2:]), torch.equal(b[..., 2:], x[..., :6])
        (True, True)
    """
    check_images(images, "images", floating=True)
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; supported: {', '.join(TRANSFORMS)}")
    if region is not None and region not in REGIONS:
        raise ValueError(f"unknown region {region!r}; supported: {', '.join(REGIONS)}")
    if transform == "shift":
        axis, sign = REGIONS[region] if region is not None else ("x", -1)
        dim = -1 if axis == "x" else -2
        step = max(1, round(amount * images.shape[dim]))
        move = (lambda s: shift(images, s, 0)) if axis == "x" else (lambda s: shift(images, 0, s))
        return move(sign * step), move(-sign * step)
    axis, dim = ("x", -1) if transform == "hflip" else ("y", -2)
    if region is None:
        return images, images.flip(dim)
    region_axis, sign = REGIONS[region]
    if region_axis != axis:
        raise ValueError(f"region {region!r} needs transform='shift' or '{'hflip' if region_axis == 'x' else 'vflip'}'")
    size = images.shape[dim]
    keep = torch.zeros(size, dtype=images.dtype, device=images.device)
    keep[: size // 2] = 1  # the left (top) half
    keep = keep if sign < 0 else keep.flip(0)
    a = images * (keep if dim == -1 else keep.view(-1, 1))
    return a, a.flip(dim)


@dataclass
class ChannelRanking:
    """Channels of `layer` ranked by position score: `channels` (C,) highest first, `scores` (C,) per channel.

    Unsigned (`region=None`): mean |pooled(A) - pooled(B)|. Signed (region given): mean pooled(A) - pooled(B),
    i.e. positive for channels that fire more when the content is in `region`. Made by
    `rank_position_channels`; `plot` draws the scores.

    Args:
        layer: the ranked module's name.
        transform: how the pairs (A, B) were made (see `position_pairs`).
        region: the region of a signed ranking, or None.
        scores: (C,) the position score of each channel, indexed by channel.
        channels: (C,) channel indices by decreasing score.
        num_images: how many images the scores average over.

    Examples:
        >>> scores = torch.tensor([0.1, 0.5, 0.3])
        >>> ranking = ChannelRanking("layer4", "hflip", None, scores, torch.argsort(scores, descending=True))
        >>> ranking.top(2)
        [1, 2]
        >>> ranking.to_dict()["channels"]
        [1, 2, 0]
    """

    layer: str
    transform: str
    region: Optional[str]
    scores: Tensor
    channels: Tensor
    num_images: int = 0

    def top(self, n: int) -> list[int]:
        """The `n` highest-ranked channel indices."""
        return self.channels[:n].tolist()

    def to_dict(self) -> dict:
        """JSON-ready: the fields, with `channels` and `scores` as lists."""
        return dict(layer=self.layer, transform=self.transform, region=self.region, num_images=self.num_images,
                    channels=self.channels.tolist(), scores=self.scores.tolist())

    def plot(self, path: Optional[str] = None, *, top: int = 16):
        """Sorted channel scores with the top `top` highlighted, and their histogram. Returns the figure."""
        plt = pyplot()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
        ordered = self.scores[self.channels].numpy()
        colors = ["tab:red" if i < top else "tab:gray" for i in range(len(ordered))]
        ax1.bar(range(len(ordered)), ordered, width=1.0, color=colors)
        ax1.set(xlabel="channel rank", ylabel="signed score" if self.region else "mean |A - B|",
                title=f"{self.layer}: {self.transform}{' / ' + self.region if self.region else ''} (top {top} red)")
        ax2.hist(ordered, bins=40, color="tab:gray")
        ax2.axvline(ordered[min(top, len(ordered)) - 1], color="tab:red", ls="--", label=f"top-{top} threshold")
        ax2.set(xlabel="score", ylabel="channels", title="score distribution")
        ax2.legend(fontsize=8)
        return save_figure(fig, path, dpi=120)


def rank_position_channels(
    model: nn.Module, layer: str, images: Tensor, *, transform: str = "hflip", region: Optional[str] = None,
    amount: float = 0.25, batch_size: int = 64, device: Union[str, torch.device] = "cpu",
) -> ChannelRanking:
    """Rank the channels of module `layer` of `model` by how much position moves their pooled activation.

    Each image gives a pair (A, B) with the same content at two positions (`position_pairs`); a channel's
    score is the mean over the images of |pooled(A) - pooled(B)| (`pooled_activations`), or, with
    `region`, the signed mean of pooled(A) - pooled(B).

    Args:
        model: the model (run in eval mode, on `device`).
        layer: a module name of `model.named_modules()`.
        images: (N, C, H, W), normalised floats.
        transform: `"hflip"`, `"vflip"` or `"shift"` (see `position_pairs`).
        region: None (unsigned ranking), or `left` / `right` / `top` / `bottom` (signed, see
            `position_pairs`).
        amount: the shift of `transform="shift"`, a fraction of the image side.
        batch_size: images per forward.
        device: where the model runs.

    Returns:
        A `ChannelRanking` of the C channels of `layer`.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        >>> ranking = rank_position_channels(model, "1", torch.randn(6, 3, 8, 8), transform="shift", region="left")
        >>> sorted(ranking.channels.tolist()), ranking.scores.shape, ranking.num_images
        ([0, 1, 2, 3], torch.Size([4]), 6)
        >>> bool((ranking.scores[ranking.channels].diff() <= 0).all())  # highest score first
        True
    """
    a, b = position_pairs(images, transform, region, amount=amount)
    diff = pooled_activations(model, layer, a, batch_size=batch_size, device=device) - pooled_activations(
        model, layer, b, batch_size=batch_size, device=device)
    scores = diff.mean(0) if region is not None else diff.abs().mean(0)
    return ChannelRanking(layer, transform, region, scores, torch.argsort(scores, descending=True, stable=True), len(images))


def plot_channel_maps(maps: Tensor, channels: Sequence[int], path: Optional[str] = None, *, title: str = ""):
    """One heatmap per channel: `maps` (K, h, w) from `channel_maps`, labelled by `channels` (K,).
    Returns the figure."""
    plt = pyplot()
    cols = min(8, len(channels))
    rows = -(-len(channels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, channel, image in zip(axes.flat, channels, maps):
        ax.imshow(image.numpy(), cmap="magma")
        ax.set_title(f"channel {channel}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, dpi=120)
