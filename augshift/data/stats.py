"""Per-channel normalisation of `uint8` images: `Normalization` (the statistics and where they come from) and
`normalize`.

A model is fed images normalised the way it was trained: a pretrained model with its weights' statistics (asked of
the model adapter, `augshift.models.adapter.pretrained_normalization`), a model trained from scratch with the
statistics of its training data (`Normalization.of_images`). There is no default: every caller says which,
and every result file records it (`Normalization.to_dict`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import UsageError


@dataclass(frozen=True)
class Normalization:
    """Per-channel `mean` and `std` of images scaled to [0, 1], and their `source` in words.

    Examples:
        >>> Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "given").to_dict()
        {'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25], 'source': 'given'}
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(mean) != len(std) or not mean:
            raise UsageError(f"mean and std need one value per channel each, got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise UsageError(f"every std must be > 0, got {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict:
        """JSON-ready: `{"mean": [...], "std": [...], "source": "..."}`.

        Examples:
            >>> Normalization((0.5,), (0.25,), "by hand").to_dict()
            {'mean': [0.5], 'std': [0.25], 'source': 'by hand'}
        """
        return {"mean": list(self.mean), "std": list(self.std), "source": self.source}

    @classmethod
    def from_dict(cls, values: dict) -> "Normalization":
        """The inverse of `to_dict`.

        Examples:
            >>> stats = Normalization((0.5, 0.4), (0.25, 0.2), "by hand")
            >>> Normalization.from_dict(stats.to_dict()) == stats
            True
        """
        return cls(tuple(values["mean"]), tuple(values["std"]), values["source"])

    @classmethod
    def of_images(cls, images: Tensor, *, source: str, chunk: int = 2048) -> "Normalization":
        """The statistics of `images` themselves: `uint8` (N, C, H, W), each channel's mean and (population) std
        over all images and pixels, in float64. `source` says which images they are.

        Examples:
            >>> images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
            >>> Normalization.of_images(images, source="two pixels")
            Normalization(mean=(0.5,), std=(0.5,), source='two pixels')
        """
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or not len(images):
            raise TypeError("images must be a non-empty uint8 tensor (N, C, H, W)")
        total = torch.zeros(images.shape[1], dtype=torch.float64)
        squares = torch.zeros_like(total)
        for part in images.split(chunk):
            values = part.to(torch.float64).div_(255)
            total += values.sum(dim=(0, 2, 3)).cpu()
            squares += values.square().sum(dim=(0, 2, 3)).cpu()
        count = images.numel() // images.shape[1]
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        if float(std.min()) == 0.0:
            raise UsageError(f"the images of {source} have a constant channel (std 0): they cannot be normalised by "
                             "their own statistics; pass the mean and std to use")
        return cls(tuple(mean.tolist()), tuple(std.tolist()), source)

    def tensors(self, device: Optional[torch.device] = None) -> tuple[Tensor, Tensor]:
        """`(mean, std)` as float32 (1, C, 1, 1) tensors on `device`.

        Examples:
            >>> mean, std = Normalization((0.5, 0.25, 0.125), (0.25, 0.5, 0.125), "by hand").tensors()
            >>> mean.shape, mean.dtype, std.flatten().tolist()
            (torch.Size([1, 3, 1, 1]), torch.float32, [0.25, 0.5, 0.125])
        """
        return tuple(torch.tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1) for v in (self.mean, self.std))


def normalization_policy(*, given: Optional[Normalization], recorded: Optional[Normalization],
                         data: Callable[[], Normalization]) -> Normalization:
    """The one policy for what a model is normalised with: the statistics the user `given`, else those its weights
    were trained with (`recorded`: a checkpoint's record, the pretrained weights' config), else the data's own
    (`data()`, computed only then: e.g. the training images', for a model trained from scratch).

    Args:
        given: the user's statistics (`--mean` / `--std`), or `None`.
        recorded: the weights' statistics (`augshift.models.pretrained_normalization`, a checkpoint's), or `None`.
        data: computes the data's own statistics (`Normalization.of_images`, `split_statistics`).

    Returns:
        The `Normalization` to use (its `source` says which it is).

    Examples:
        >>> weights = Normalization((0.5,) * 3, (0.2,) * 3, "the pretrained weights")
        >>> own = lambda: Normalization((0.4,) * 3, (0.3,) * 3, "the training images")
        >>> normalization_policy(given=None, recorded=weights, data=own).source
        'the pretrained weights'
        >>> normalization_policy(given=None, recorded=None, data=own).source
        'the training images'
    """
    if given is not None:
        return given
    return recorded if recorded is not None else data()


def normalize(images: Tensor, normalization: Normalization | tuple[Tensor, Tensor]) -> Tensor:
    """`uint8` (N, C, H, W) -> float32, scaled to [0, 1] and normalised per channel.

    Args:
        images: `uint8` (N, C, H, W).
        normalization: a `Normalization`, or its `tensors` already on the images' device
            (no copy per call).

    Returns:
        float32 (N, C, H, W).

    Examples:
        >>> normalize(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8), Normalization((0.5,), (0.5,), "x")).item()
        1.0
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype}")
    mean, std = normalization.tensors(images.device) if isinstance(normalization, Normalization) else normalization
    if mean.numel() != images.shape[1]:
        raise UsageError(f"the normalisation has {mean.numel()} channels, the images {images.shape[1]}")
    return (images.float() / 255 - mean) / std
