"""Position channels (Islam et al. 2021, Sec. 5): rank the channels of any module by how much their pooled
activation moves when only the position of the content changes (flip or shift); ``region=`` gives the signed,
region-specific ranking (channels that fire for content on the left, right, top or bottom)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..engine.evaluation import evaluating
from ..errors import UsageError
from ..models.segmentation import feature_layer
from ..reporting.plots import pyplot, save_figure
from ..shift import check_images, shift

TRANSFORMS = ("hflip", "vflip", "shift")
REGIONS = {"left": ("x", -1), "right": ("x", 1), "top": ("y", -1), "bottom": ("y", 1)}


def get_module(model: nn.Module, layer: str) -> nn.Module:
    """The module called ``layer`` in ``model.named_modules()`` (clear error listing candidates otherwise)."""
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        convs = [name for name, m in modules.items() if name and len(list(m.children())) > 0][:12]
        raise UsageError(f"{type(model).__name__} has no module {layer!r}; module names look like: {', '.join(convs)}")
    return modules[layer]


def feature_key(output: Mapping[str, Tensor]) -> str:
    """The entry of a dict output holding the deepest features: ``"out"`` (torchvision's DeepLabv3 / FCN backbones),
    else the last one (LRASPP's backbone returns ``{"low": ..., "high": ...}``)."""
    return "out" if "out" in output else list(output)[-1]


def feature_map(output: Union[Tensor, Mapping[str, Tensor]], layer: str) -> Tensor:
    """The (N, C, ...) feature tensor of module ``layer``'s output: the tensor itself, or for a module returning a
    dict (torchvision segmentation backbones) its :func:`feature_key` entry."""
    if isinstance(output, Mapping) and output:
        output = output[feature_key(output)]
    if not isinstance(output, Tensor) or output.dim() < 2:
        raise UsageError(f"module {layer!r} outputs {type(output).__name__}, not a (N, C, ...) tensor; pick a layer "
                         "whose output is a feature map, e.g. 'layer4' or 'backbone'")
    return output


def default_layer(model: nn.Module, images: Tensor) -> str:
    """The last stage of ``model``: a segmenter's :func:`~augshift.models.segmentation.feature_layer`, timm's last
    ``feature_info`` module, else the last module to finish whose output is a (N, C, h, w) map with h * w > 1
    (found by running ``images[:1]`` (1, C_in, H, W) through ``model``)."""
    named = feature_layer(model)
    if named is None and isinstance(getattr(model, "feature_info", None), list) and model.feature_info:
        named = model.feature_info[-1].get("module")
    if named:
        return named
    finished: list[str] = []
    hooks = [module.register_forward_hook(
        lambda m, a, out, name=name: finished.append(name) if isinstance(out, Tensor) and out.dim() == 4
        and out.shape[-1] * out.shape[-2] > 1 else None) for name, module in model.named_modules() if name]
    try:
        with evaluating(model):
            model(images[:1].to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    if not finished:
        raise UsageError(f"{type(model).__name__} has no module with a (N, C, h, w) output: name one with --layer")
    return finished[-1]


def pooled_activations(
    model: nn.Module, layer: str, images: Tensor, *, batch_size: int = 64, device: Union[str, torch.device] = "cpu"
) -> Tensor:
    """Spatially averaged output (N, C) of module ``layer`` for ``images`` (N, C_in, H, W), in eval mode."""
    return torch.cat([(maps.flatten(2).mean(-1) if maps.dim() > 2 else maps).float().cpu()
                      for maps in layer_outputs(model, layer, images, batch_size=batch_size, device=device)])


def layer_outputs(
    model: nn.Module, layer: str, images: Tensor, *, batch_size: int = 64, device: Union[str, torch.device] = "cpu"
) -> Iterator[Tensor]:
    """Module ``layer``'s feature maps (B, C, ...) (on ``device``, detached) per batch of ``images`` (N, C_in, H, W),
    in eval mode (:func:`~augshift.engine.evaluation.evaluating`)."""
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
    """Where ``channels`` of module ``layer`` fire: their mean activation maps (len(channels), h, w) over
    ``images`` (N, C_in, H, W)."""
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
    """Two versions (A, B) of ``images`` with the same content at different positions.

    Without ``region``: ``hflip``/``vflip`` give (x, flipped x); ``shift`` gives x shifted left vs right by
    ``amount`` of the width (zero fill). With ``region`` (left/right/top/bottom), A has the content in that
    region and B the same content in the opposite one: ``shift`` moves x towards / away from it; a flip
    keeps only the region's half of x in A and mirrors A for B.
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
    """Channels of ``layer`` ranked by position score: ``channels`` (C,) highest first, ``scores`` (C,) per channel.

    Unsigned (``region=None``): mean |pooled(A) - pooled(B)|. Signed (region given): mean pooled(A) - pooled(B),
    i.e. positive for channels that fire more when the content is in ``region``.
    """

    layer: str
    transform: str
    region: Optional[str]
    scores: Tensor
    channels: Tensor
    num_images: int = 0

    def top(self, n: int) -> list[int]:
        """The ``n`` highest-ranked channel indices."""
        return self.channels[:n].tolist()

    def to_dict(self) -> dict:
        return dict(layer=self.layer, transform=self.transform, region=self.region, num_images=self.num_images,
                    channels=self.channels.tolist(), scores=self.scores.tolist())

    def plot(self, path: Optional[str] = None, *, top: int = 16):
        """Sorted channel scores with the top ``top`` highlighted, and their histogram. Returns the figure."""
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
    """Rank the channels of module ``layer`` of ``model`` by how much position moves their pooled activation.

    ``images`` (N, C, H, W), normalised floats. See :func:`position_pairs` for ``transform``/``region``.
    """
    a, b = position_pairs(images, transform, region, amount=amount)
    diff = pooled_activations(model, layer, a, batch_size=batch_size, device=device) - pooled_activations(
        model, layer, b, batch_size=batch_size, device=device)
    scores = diff.mean(0) if region is not None else diff.abs().mean(0)
    return ChannelRanking(layer, transform, region, scores, torch.argsort(scores, descending=True, stable=True), len(images))


def plot_channel_maps(maps: Tensor, channels: Sequence[int], path: Optional[str] = None, *, title: str = ""):
    """One heatmap per channel: ``maps`` (K, h, w) from :func:`channel_maps`, labelled by ``channels`` (K,).
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
