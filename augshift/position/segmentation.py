"""A segmentation test bed that needs no download, and mIoU overall and per image region.

`MosaicSegmentation` tiles `grid x grid` random images (e.g. CIFAR-10) on a canvas and labels
every pixel with its tile's class; `augshift.models.FCN` (`fcn_resnet18`) is a small segmenter
to train on it. `segmentation_scores` works for any segmentation model (a tensor (N, K, h, w) or
torchvision's `{"out": ...}`), so the position attack (`augshift.position.attack`) can be pointed at
e.g. torchvision's `deeplabv3_resnet50` and its `backbone.layer4`.
"""
from __future__ import annotations

from typing import Mapping, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..choices import REGION_SETS
from ..outputs import evaluating
from ..errors import UsageError
from ..outputs import logits_of
from ..shifts import check_images
from .canvas import tile

IGNORE_INDEX = 255


class MosaicSegmentation(Dataset):
    """Mosaics of `grid x grid` images (N, C, h, w) with per-pixel labels = the tile's class.

    Mosaic `i` uses images `tiles[i]` (row-major), drawn from `generator`; `resample` draws
    new mosaics. Item `i` is `(image (C, grid*h, grid*w), mask (grid*h, grid*w))`.

    `layout_prior=0` gives uniform mosaics (no image used twice): position says nothing about the class.
    `layout_prior=p` gives scenes with a layout, like street scenes (sky on top, road below): with
    probability `p` a tile's image is drawn from the classes of its column (`class % grid == column`),
    otherwise from all images (with replacement).

    Args:
        images: float (N, C, h, w) tile images (normalised).
        labels: (N,) the images' classes, the mask values.
        grid: each mosaic has `grid x grid` tiles.
        count: how many mosaics; default (and at most) `N // (grid * grid)`, so that no image is used twice.
        layout_prior: the probability p in [0, 1] that a tile's image comes from its column's classes (above).
        generator: draws the tiles (reproducible).

    Examples:
        >>> mosaics = MosaicSegmentation(torch.randn(18, 3, 4, 4), torch.arange(18) % 9, grid=3,
        ...                              generator=torch.Generator().manual_seed(0))
        >>> len(mosaics), mosaics.tiles.shape
        (2, torch.Size([2, 9]))
        >>> image, mask = mosaics[0]
        >>> image.shape, mask.shape
        (torch.Size([3, 12, 12]), torch.Size([12, 12]))
        >>> torch.equal(mask[::4, ::4].flatten(), mosaics.labels[mosaics.tiles[0]])  # each tile's class
        True
        >>> scenes = MosaicSegmentation(torch.randn(18, 3, 4, 4), torch.arange(18) % 9, grid=3, layout_prior=1.0)
        >>> bool((scenes.labels[scenes.tiles] % 3 == torch.arange(9) % 3).all())  # class % grid == column
        True
    """

    def __init__(
        self, images: Tensor, labels: Tensor, *, grid: int = 3, count: Optional[int] = None,
        layout_prior: float = 0.0, generator: Optional[torch.Generator] = None,
    ) -> None:
        check_images(images, "images", floating=True)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
        capacity = len(images) // (grid * grid)
        count = capacity if count is None else count
        if not 0 < count <= capacity:
            raise UsageError(f"{len(images)} images make at most {capacity} mosaics of {grid}x{grid} tiles, asked "
                             f"{count}: use at least {grid * grid} images per mosaic (a larger limit or split)")
        if not 0.0 <= layout_prior <= 1.0:
            raise ValueError(f"layout_prior is a probability in [0, 1], got {layout_prior}")
        self.images, self.labels, self.grid, self.count, self.generator = images, labels, grid, count, generator
        self.layout_prior = layout_prior
        self.groups = [torch.nonzero(labels % grid == column).flatten() for column in range(grid)]
        if layout_prior > 0 and min(len(g) for g in self.groups) == 0:
            raise ValueError(f"layout_prior needs images of every class group (class % {grid}) in the data")
        self.tiles = self.resample()

    def resample(self) -> Tensor:
        """Draw new tiles (count, grid*grid) from `generator` (see `layout_prior`); returns them."""
        shape = (self.count, self.grid ** 2)
        if self.layout_prior == 0:
            self.tiles = torch.randperm(len(self.images), generator=self.generator)[: shape[0] * shape[1]].view(shape)
            return self.tiles
        tiles = torch.randint(len(self.images), shape, generator=self.generator)
        use_prior = torch.rand(shape, generator=self.generator) < self.layout_prior
        column = torch.arange(shape[1]).expand(shape) % self.grid
        for c, group in enumerate(self.groups):
            chosen = use_prior & (column == c)
            tiles[chosen] = group[torch.randint(len(group), (int(chosen.sum()),), generator=self.generator)]
        self.tiles = tiles
        return self.tiles

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image, mask = self.batch(torch.tensor([index]))
        return image[0], mask[0]

    def batch(self, indices: Tensor, *, flip: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Mosaics (B, C, H, W) and masks (B, H, W) for `indices`; `flip` (B,) bool mirrors both."""
        tiles = self.tiles[indices]
        images = tile(self.images[tiles], self.grid)
        h, w = self.images.shape[-2:]
        masks = tile(self.labels[tiles].view(*tiles.shape, 1, 1, 1).expand(-1, -1, 1, h, w), self.grid)[:, 0]
        if flip is not None:
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            masks = torch.where(flip.view(-1, 1, 1), masks.flip(-1), masks)
        return images, masks

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All mosaics and masks at once (for evaluation and channel ranking)."""
        return self.batch(torch.arange(self.count))


def region_masks(height: int, width: int, regions: Union[str, Mapping[str, Tensor]] = "thirds") -> dict[str, Tensor]:
    """Boolean (H, W) masks: `"paper"` (Islam et al.'s attack: left half, right half, and the centre = the
    middle half of the columns), `"thirds"` (left/center/right columns), `"halves"` (left/right), or given
    masks. Scoring only a region's pixels is the official "rest set to the ignore index".

    Args:
        height: H, the masks' height.
        width: W, the masks' width.
        regions: `"paper"`, `"thirds"`, `"halves"`, or `{name: (H, W) mask}` (checked and made boolean).

    Returns:
        `{region name: (H, W) bool mask}`.

    Examples:
        >>> masks = region_masks(2, 8, "paper")
        >>> list(masks)
        ['left', 'right', 'center']
        >>> masks["center"][0].int()
        tensor([0, 0, 1, 1, 1, 1, 0, 0], dtype=torch.int32)
        >>> [int(mask[0].sum()) for mask in region_masks(2, 6).values()]  # thirds
        [2, 2, 2]
    """
    if isinstance(regions, Mapping):
        out = {name: torch.as_tensor(mask, dtype=torch.bool) for name, mask in regions.items()}
        bad = {name: tuple(m.shape) for name, m in out.items() if m.shape != (height, width)}
        if bad:
            raise ValueError(f"region masks must be ({height}, {width}) booleans, got {bad}")
        return out
    if regions == "paper":
        column = torch.arange(width)
        return {name: mask.expand(height, width) for name, mask in (
            ("left", column < width // 2), ("right", column >= width - width // 2),
            ("center", (column >= width // 4) & (column < width - width // 4)))}
    parts = {"thirds": ("left", "center", "right"), "halves": ("left", "right")}
    if regions not in parts:
        raise ValueError(f"regions must be one of {', '.join(REGION_SETS)} or a dict of (H, W) masks, got {regions!r}")
    names = parts[regions]
    column = torch.arange(width) * len(names) // width
    return {name: (column == i).expand(height, width) for i, name in enumerate(names)}


def mean_iou(confusion: Tensor) -> float:
    """Mean IoU over the classes present (prediction or target) in a (K, K) confusion matrix (rows: target).

    Args:
        confusion: (K, K) pixel counts, `confusion[target, prediction]`.

    Returns:
        The mean over the present classes of intersection / union; NaN when the matrix is all zeros.

    Examples:
        >>> mean_iou(torch.tensor([[3, 1, 0], [1, 3, 0], [0, 0, 0]]))  # class 2 absent: (3/5 + 3/5) / 2
        0.6
    """
    inter = confusion.diag().double()
    union = confusion.sum(0).double() + confusion.sum(1).double() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean()) if present.any() else float("nan")


def segmentation_scores(
    model: nn.Module, images: Tensor, masks: Tensor, *, num_classes: int,
    regions: Union[str, Mapping[str, Tensor]] = "thirds", batch_size: int = 64,
    device: Union[str, torch.device] = "cpu", ignore_index: int = IGNORE_INDEX,
) -> dict[str, float]:
    """`miou`, `pixel_accuracy` and `miou_<region>` of `model` on `images` (N, C, H, W) / `masks` (N, H, W).

    The model's logits (N, K, h, w) (`logits_of`: a tensor, torchvision's `{"out":
    ...}`, a `transformers` output) are resized to (H, W) if needed.
    Pixels labelled `ignore_index` are left out.

    Args:
        model: the segmenter (run in eval mode, on `device`).
        images: float (N, C, H, W) images.
        masks: (N, H, W) per-pixel classes in [0, K), or `ignore_index`.
        num_classes: K, the number of classes.
        regions: the regions of the `miou_<region>` scores (see `region_masks`).
        batch_size: images per forward.
        device: where the model runs.
        ignore_index: the mask value of pixels left out (`IGNORE_INDEX`, 255).

    Returns:
        `{"miou": ..., "pixel_accuracy": ..., "miou_<region>": ...}`, fractions in [0, 1] (NaN with no pixels).

    Examples:
        >>> mosaics = MosaicSegmentation(torch.randn(18, 3, 4, 4), torch.arange(18) % 9, grid=3)
        >>> images, masks = mosaics.tensors()
        >>> scores = segmentation_scores(nn.Conv2d(3, 9, 1), images, masks, num_classes=9, regions="halves")
        >>> sorted(scores), 0.0 <= scores["pixel_accuracy"] <= 1.0
        (['miou', 'miou_left', 'miou_right', 'pixel_accuracy'], True)
    """
    check_images(images, "images", floating=True)
    h, w = masks.shape[-2:]
    areas = region_masks(h, w, regions)
    confusions = {name: torch.zeros(num_classes, num_classes, dtype=torch.long) for name in ("all", *areas)}
    with evaluating(model.to(device)):
        for start in range(0, len(images), batch_size):
            logits = logits_of(model(images[start:start + batch_size].to(device)))
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            pred, target = logits.argmax(1).cpu(), masks[start:start + batch_size]
            valid = target != ignore_index
            for name, area in (("all", None), *areas.items()):
                keep = valid if area is None else valid & area
                pairs = target[keep] * num_classes + pred[keep]
                confusions[name] += torch.bincount(pairs, minlength=num_classes ** 2).view(num_classes, num_classes)
    scores = {"miou": mean_iou(confusions["all"])}
    total = confusions["all"].sum()
    scores["pixel_accuracy"] = float(confusions["all"].diag().sum() / total) if total else float("nan")
    scores.update({f"miou_{name}": mean_iou(confusions[name]) for name in areas})
    return scores
