"""The position attack: zero channels of a module (:func:`ablate_channels`) and compare the top-N ranked
channels with N random ones as N grows (:func:`attack_curve`)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..reporting.plots import pyplot, save_figure
from ..errors import UsageError
from .channels import ChannelRanking, feature_key, feature_map, get_module


@contextmanager
def ablate_channels(model: nn.Module, layer: str, channels: Sequence[int]) -> Iterator[nn.Module]:
    """Zero ``channels`` of module ``layer``'s output (N, C, ...) inside the block (forward hook, removed on exit).

    A module returning a dict (torchvision segmentation backbones) has its deepest entry ablated (``"out"``; see
    :func:`~augshift.position.channels.feature_key`), so the head reads the ablated features, as in Islam et al.'s
    attack on DeepLabv3's backbone."""
    module = get_module(model, layer)
    index = torch.as_tensor(list(channels), dtype=torch.long)

    def hook(mod: nn.Module, args: tuple, output):
        maps = feature_map(output, layer)
        if len(index) and (index.min() < 0 or index.max() >= maps.shape[1]):
            raise UsageError(f"channels must lie in [0, {maps.shape[1]}) for {layer!r}, got {index.tolist()[:8]}...")
        ablated = maps.index_fill(1, index.to(maps.device), 0) if len(index) else maps
        return ablated if isinstance(output, Tensor) else {**output, feature_key(output): ablated}

    handle = module.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


@dataclass
class AttackCurve:
    """Metrics with the top-N ranked channels ablated vs N random channels (``draws`` draws) for each N."""

    layer: str
    counts: list
    baseline: dict
    top: dict
    random: dict  # metric -> [[draw values] per N]
    draws: int
    ranking: dict = field(default_factory=dict)

    def random_mean(self, metric: str) -> list[float]:
        return [sum(v) / len(v) for v in self.random[metric]]

    def to_dict(self) -> dict:
        return dict(asdict(self), random_mean={m: self.random_mean(m) for m in self.random})

    def markdown(self, metrics: Optional[Sequence[str]] = None) -> str:
        """Table: N, then per metric the top-N value and the random-N mean (min..max)."""
        metrics = list(metrics or self.top)
        head = "| N | " + " | ".join(f"{m} top-N | {m} random-N mean (min..max)" for m in metrics) + " |"
        lines = [head, "|" + "---|" * (1 + 2 * len(metrics))]
        lines.append("| 0 | " + " | ".join(f"{self.baseline[m]:.4f} | {self.baseline[m]:.4f}" for m in metrics) + " |")
        for i, n in enumerate(self.counts):
            cells = []
            for m in metrics:
                draws = self.random[m][i]
                cells.append(f"{self.top[m][i]:.4f} | {sum(draws) / len(draws):.4f} ({min(draws):.4f}..{max(draws):.4f})")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def plot(self, path: Optional[str] = None, *, metrics: Optional[Sequence[str]] = None):
        """One panel per metric: top-N curve vs random-N mean and range. Returns the figure."""
        plt = pyplot()
        metrics = list(metrics or self.top)
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.0), squeeze=False)
        xs = [0, *self.counts]
        for ax, m in zip(axes[0], metrics):
            rand = [self.baseline[m], *self.random_mean(m)]
            lo = [self.baseline[m], *(min(v) for v in self.random[m])]
            hi = [self.baseline[m], *(max(v) for v in self.random[m])]
            ax.plot(xs, [self.baseline[m], *self.top[m]], "o-", color="tab:red", label="top-N position channels")
            ax.plot(xs, rand, "s--", color="tab:blue", label=f"N random channels ({self.draws} draws)")
            ax.fill_between(xs, lo, hi, color="tab:blue", alpha=0.2)
            ax.set(xlabel=f"channels ablated at {self.layer}", ylabel=m, title=m)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        return save_figure(fig, path, dpi=120)


def attack_curve(
    model: nn.Module, layer: str, ranking: Union[ChannelRanking, Sequence[int]],
    evaluate: Callable[[nn.Module], dict], *, counts: Sequence[int], num_channels: Optional[int] = None,
    draws: int = 3, generator: Optional[torch.Generator] = None, progress: bool = True,
) -> AttackCurve:
    """Ablate the top-N channels of ``ranking`` and, ``draws`` times, N random channels of ``layer``, for each N.

    ``evaluate(model) -> {metric: value}`` scores the model (e.g. :func:`augshift.position.segmentation.segmentation_scores`
    or a location accuracy). ``num_channels`` defaults to the ranking's length.
    """
    from tqdm.auto import tqdm

    order = ranking.channels.tolist() if isinstance(ranking, ChannelRanking) else list(ranking)
    num_channels = num_channels or len(order)
    if max(counts) > len(order) or max(counts) > num_channels:
        raise UsageError(f"counts go up to {max(counts)} but {layer!r} has {min(len(order), num_channels)} ranked "
                         "channels; pass smaller --counts")
    baseline = evaluate(model)
    top = {m: [] for m in baseline}
    rand = {m: [] for m in baseline}
    with tqdm(total=len(counts) * (1 + draws), desc="attack", disable=not progress, leave=False) as bar:
        for n in counts:
            with ablate_channels(model, layer, order[:n]):
                for m, v in evaluate(model).items():
                    top[m].append(v)
            bar.update(1)
            values = {m: [] for m in baseline}
            for _ in range(draws):
                with ablate_channels(model, layer, torch.randperm(num_channels, generator=generator)[:n].tolist()):
                    for m, v in evaluate(model).items():
                        values[m].append(v)
                bar.update(1)
            for m in baseline:
                rand[m].append(values[m])
    extra = ranking.to_dict() if isinstance(ranking, ChannelRanking) else {}
    extra.pop("scores", None)
    return AttackCurve(layer, list(counts), baseline, top, rand, draws, ranking=extra)
