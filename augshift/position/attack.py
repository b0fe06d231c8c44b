"""The position attack: zero channels of a module (`ablate_channels`) and compare the top-N ranked
channels with N random ones as N grows (`attack_curve`)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import UsageError
from ..models.adapter import feature_map, map_channels
from ..reporting.plots import pyplot, save_figure
from ..progress import progress_bar
from .channels import ChannelRanking, get_module


@contextmanager
def ablate_channels(model: nn.Module, layer: str, channels: Sequence[int]) -> Iterator[nn.Module]:
    """Zero `channels` of module `layer`'s output (N, C, ...) inside the block (forward hook, removed on exit).

    The output is changed in its own structure (`map_channels`): a module returning a
    dict (torchvision segmentation backbones) has its deepest entry ablated (`"out"`), so the head reads the
    ablated features, as in Islam et al.'s attack on DeepLabv3's backbone; a token sequence (N, L, D) of a
    transformer has its channels (D) zeroed at every token.

    Args:
        model: the model holding the module; it is yielded unchanged (only hooked).
        layer: a module name of `model.named_modules()` (e.g. `layer4` or `backbone`).
        channels: indices of the channels (C) to zero, each in [0, C); an index outside raises
            `UsageError` at the first forward; empty: nothing is ablated.

    Returns:
        A context manager whose block sees `model` with the channels zeroed at every forward.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        >>> with ablate_channels(model, "0", [1, 2]):
        ...     maps = model[0](torch.randn(2, 3, 8, 8))
        >>> maps.shape, bool((maps[:, [1, 2]] == 0).all()), bool((maps[:, [0, 3]] != 0).any())
        (torch.Size([2, 4, 8, 8]), True, True)
        >>> len(model[0]._forward_hooks)  # the hook is removed on exit
        0
    """
    module = get_module(model, layer)
    index = torch.as_tensor(list(channels), dtype=torch.long)

    def hook(mod: nn.Module, args: tuple, output):
        channels = feature_map(output, layer).shape[1]
        if len(index) and (index.min() < 0 or index.max() >= channels):
            raise UsageError(f"channels must lie in [0, {channels}) for {layer!r}, got {index.tolist()[:8]}...")
        if not len(index):
            return output
        return map_channels(output, lambda maps: maps.index_fill(1, index.to(maps.device), 0))

    handle = module.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


@dataclass
class AttackCurve:
    """Metrics with the top-N ranked channels ablated vs N random channels (`draws` draws) for each N.

    Made by `attack_curve`; `markdown` and `plot` report it.

    Args:
        layer: the module whose channels were ablated.
        counts: the numbers N of channels ablated, one per point of the curve.
        baseline: `{metric: value}` of the model with nothing ablated (N = 0).
        top: `{metric: [value per N]}` with the top-N ranked channels ablated.
        random: `{metric: [[value per draw] per N]}` with N random channels ablated.
        draws: how many random draws were made for each N.
        ranking: the ranking's `to_dict` without its scores
            (empty when the ranking was a plain list of channels).

    Examples:
        >>> curve = AttackCurve("0", [1, 2], baseline={"acc": 1.0}, top={"acc": [0.5, 0.25]},
        ...                     random={"acc": [[1.0, 0.5], [0.75, 0.25]]}, draws=2)
        >>> curve.random_mean("acc")
        [0.75, 0.5]
        >>> print(curve.markdown())
        | N | acc top-N | acc random-N mean (min..max) |
        |---|---|---|
        | 0 | 1.0000 | 1.0000 |
        | 1 | 0.5000 | 0.7500 (0.5000..1.0000) |
        | 2 | 0.2500 | 0.5000 (0.2500..0.7500) |
    """

    layer: str
    counts: list
    baseline: dict
    top: dict
    random: dict  # metric -> [[draw values] per N]
    draws: int
    ranking: dict = field(default_factory=dict)

    def random_mean(self, metric: str) -> list[float]:
        """The mean over the random draws of `metric`, one value per N."""
        return [sum(v) / len(v) for v in self.random[metric]]

    def to_dict(self) -> dict:
        """JSON-ready: the fields plus `random_mean` (`{metric: [mean per N]}`)."""
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
    """Ablate the top-N channels of `ranking` and, `draws` times, N random channels of `layer`, for each N.

    Args:
        model: the model to attack (ablated with `ablate_channels`, unchanged after).
        layer: a module name of `model.named_modules()`, the one `ranking` ranks.
        ranking: a `ChannelRanking` or channel indices, highest ranked first.
        evaluate: `evaluate(model) -> {metric: value}` scores the model (e.g.
            `augshift.position.segmentation.segmentation_scores` or a location accuracy); called once for the
            baseline and once per N and draw.
        counts: the numbers N of channels to ablate; the largest must not exceed the ranking's length or
            `num_channels` (else `UsageError`).
        num_channels: how many channels `layer` has, the pool random channels are drawn from; defaults to the
            ranking's length.
        draws: random draws per N.
        generator: draws the random channels (reproducible).
        progress: show a progress bar (`progress_bar`).

    Returns:
        An `AttackCurve`.

    Examples:
        >>> from augshift.position import rank_position_channels
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 1))
        >>> x = torch.randn(2, 3, 8, 8)
        >>> def zeroed(model):  # how many of the layer's 4 channels are all zeros
        ...     return {"zeroed": int((model(x) == 0).flatten(2).all(-1).all(0).sum())}
        >>> ranking = rank_position_channels(model, "0", x)
        >>> curve = attack_curve(model, "0", ranking, zeroed, counts=[1, 3], draws=2,
        ...                      generator=torch.Generator().manual_seed(0), progress=False)
        >>> curve.baseline, curve.top, curve.random
        ({'zeroed': 0}, {'zeroed': [1, 3]}, {'zeroed': [[1, 1], [3, 3]]})
        >>> sorted(curve.ranking)
        ['channels', 'layer', 'num_images', 'region', 'transform']
    """
    order = ranking.channels.tolist() if isinstance(ranking, ChannelRanking) else list(ranking)
    num_channels = num_channels or len(order)
    if max(counts) > len(order) or max(counts) > num_channels:
        raise UsageError(f"counts go up to {max(counts)} but {layer!r} has {min(len(order), num_channels)} ranked "
                         "channels; pass smaller --counts")
    baseline = evaluate(model)
    top = {m: [] for m in baseline}
    rand = {m: [] for m in baseline}
    with progress_bar(total=len(counts) * (1 + draws), desc="attack", enabled=progress) as bar:
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
