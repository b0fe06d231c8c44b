"""Mosaic segmentation test bed, FCN, mIoU per region, and the attack on a segmentation model."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

import augshift.models  # noqa: F401  (registers the timm models)
from augshift.position import ablate_channels, attack_curve, rank_position_channels, segmentation_scores
from augshift.position.segmentation import MosaicSegmentation, mean_iou, region_masks


def test_mosaic_pixels_and_masks_exact():
    images = torch.rand(20, 3, 4, 5) + 0.1
    labels = torch.arange(20) % 6
    mosaics = MosaicSegmentation(images, labels, grid=2, generator=torch.Generator().manual_seed(0))
    assert len(mosaics) == 5 and mosaics.tiles.shape == (5, 4)
    assert sorted(mosaics.tiles.flatten().tolist()) == list(range(20))  # no image used twice
    x, masks = mosaics.tensors()
    assert x.shape == (5, 3, 8, 10) and masks.shape == (5, 8, 10) and masks.dtype == torch.long
    for m in range(5):
        for cell, index in enumerate(mosaics.tiles[m].tolist()):
            r, c = divmod(cell, 2)
            assert torch.equal(x[m, :, 4 * r:4 * r + 4, 5 * c:5 * c + 5], images[index])
            assert (masks[m, 4 * r:4 * r + 4, 5 * c:5 * c + 5] == labels[index]).all()
    fx, fm = mosaics.batch(torch.tensor([0, 1]), flip=torch.tensor([True, False]))
    assert torch.equal(fx[0], x[0].flip(-1)) and torch.equal(fm[0], masks[0].flip(-1)) and torch.equal(fx[1], x[1])
    image, mask = mosaics[3]
    assert torch.equal(image, x[3]) and torch.equal(mask, masks[3])
    with pytest.raises(ValueError, match="at most 5 mosaics"):
        MosaicSegmentation(images, labels, grid=2, count=6)


def test_layout_prior_ties_classes_to_columns():
    images, labels = torch.rand(60, 3, 2, 2), torch.arange(60) % 10
    column = torch.arange(9) % 3
    full = MosaicSegmentation(images, labels, grid=3, layout_prior=1.0, generator=torch.Generator().manual_seed(0))
    assert (labels[full.tiles] % 3 == column).all()
    again = MosaicSegmentation(images, labels, grid=3, layout_prior=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(full.tiles, again.tiles)
    x, masks = full.tensors()
    assert (masks[:, :, :2] % 3 == 0).all() and (masks[:, :, 4:] % 3 == 2).all()  # left column, right column
    uniform = MosaicSegmentation(images, labels, grid=3, generator=torch.Generator().manual_seed(0))
    assert not (labels[uniform.tiles] % 3 == column).all()
    with pytest.raises(ValueError, match="probability"):
        MosaicSegmentation(images, labels, layout_prior=1.5)
    with pytest.raises(ValueError, match="every class group"):
        MosaicSegmentation(images[:9], torch.zeros(9, dtype=torch.long), layout_prior=0.5)


def test_region_masks_and_mean_iou():
    thirds = region_masks(2, 9)
    assert list(thirds) == ["left", "center", "right"]
    assert torch.equal(sum(m.long() for m in thirds.values()), torch.ones(2, 9, dtype=torch.long))
    assert thirds["left"][0].tolist() == [True] * 3 + [False] * 6
    assert list(region_masks(2, 4, "halves")) == ["left", "right"]
    with pytest.raises(ValueError, match=r"\(2, 4\) booleans"):
        region_masks(2, 4, {"mine": torch.ones(3, 3)})
    confusion = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 absent: left out
    assert mean_iou(confusion) == pytest.approx((3 / 4 + 2 / 3) / 2)


class LabelOracle(nn.Module):
    """Images carry their label in channel 0; predicts it (or a constant class, at half resolution) per pixel."""

    def __init__(self, num_classes: int, constant: int = -1) -> None:
        super().__init__()
        self.num_classes, self.constant = num_classes, constant

    def forward(self, x: torch.Tensor) -> dict:
        if self.constant < 0:
            labels = x[:, 0].round().long()
        else:
            labels = torch.full_like(x[:, 0, ::2, ::2], self.constant).long()  # resized by segmentation_scores
        return {"out": nn.functional.one_hot(labels, self.num_classes).permute(0, 3, 1, 2).float()}


def test_segmentation_scores_oracle_and_constant():
    labels = torch.tensor([0, 1, 2, 1, 0, 2, 1, 1, 0])
    images = labels.float().view(9, 1, 1, 1).expand(9, 3, 4, 4).contiguous()
    x, masks = MosaicSegmentation(images, labels, grid=3, generator=torch.Generator().manual_seed(0)).tensors()
    perfect = segmentation_scores(LabelOracle(3), x, masks, num_classes=3)
    assert perfect == {"miou": 1.0, "pixel_accuracy": 1.0, "miou_left": 1.0, "miou_center": 1.0, "miou_right": 1.0}
    const = segmentation_scores(LabelOracle(3, constant=1), x, masks, num_classes=3)
    share = float((masks == 1).float().mean())
    assert const["pixel_accuracy"] == pytest.approx(share) and const["miou"] == pytest.approx(share / 3)
    masks[:, :, :4] = 255  # ignored pixels
    left_ignored = segmentation_scores(LabelOracle(3, constant=1), x, masks, num_classes=3)
    assert left_ignored["miou_left"] != left_ignored["miou_left"]  # nan: no pixel left in the region


def test_fcn_shapes_and_attack_on_it():
    torch.manual_seed(0)
    model = timm.create_model("fcn_resnet18", num_classes=10)
    assert model.feature_module == "trunk.layer4"
    images = torch.randn(30 * 9, 3, 8, 8)
    x, masks = MosaicSegmentation(images, torch.arange(270) % 10, grid=3).tensors()
    assert model(x[:2]).shape == (2, 10, 24, 24)
    ranking = rank_position_channels(model, "trunk.layer4", x[:6])
    assert ranking.scores.shape == (512,)

    def evaluate(m: nn.Module) -> dict:
        return segmentation_scores(m, x[:6], masks[:6], num_classes=10)
    curve = attack_curve(model, "trunk.layer4", ranking, evaluate, counts=[4, 64], draws=2,
                         generator=torch.Generator().manual_seed(0), progress=False)
    assert set(curve.top) == {"miou", "pixel_accuracy", "miou_left", "miou_center", "miou_right"}
    assert all(len(v) == 2 for v in curve.random["miou"])


def test_torchvision_deeplab_backbone_layer4_without_downloads():
    torch.manual_seed(0)
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=4)
    images = torch.randn(2, 3, 48, 48)
    masks = torch.randint(4, (2, 48, 48))
    ranking = rank_position_channels(model, "backbone.layer4", images, transform="hflip")
    assert ranking.scores.shape == (2048,) and ranking.layer == "backbone.layer4"
    before = segmentation_scores(model, images, masks, num_classes=4)
    with ablate_channels(model, "backbone.layer4", ranking.top(1024)):
        during = segmentation_scores(model, images, masks, num_classes=4)
    assert set(before) == set(during) and before == segmentation_scores(model, images, masks, num_classes=4)
    backbone = rank_position_channels(model, "backbone", images)  # IntermediateLayerGetter's {"out": layer4}
    assert torch.allclose(backbone.scores, ranking.scores)
    with ablate_channels(model, "backbone", ranking.top(1024)):
        assert segmentation_scores(model, images, masks, num_classes=4) == during
