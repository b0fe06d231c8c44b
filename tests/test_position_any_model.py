"""Position channels and the attack on any model: planted position channels (ranked first, ablated only where
they act), dict-returning backbones, the default layer, channel maps, and the segmentation model factory."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import Tensor, nn

import augshift.models  # noqa: F401  (registers the timm models)
from augshift.errors import UsageError
from augshift.models import create_model, default_layer
from augshift.position import ablate_channels, attack_curve, rank_position_channels, segmentation_scores
from augshift.position.segmentation import region_masks
from augshift.position.channels import channel_maps, plot_channel_maps

PLANTED = 2  # the channel that fires only for content in the left half


class PlantedBackbone(nn.Module):
    """Features (N, 4, H, W) returned as ``{"out": ...}`` like torchvision's segmentation backbones: channels 0, 1, 3
    are convolutions with left-right symmetric kernels (a flip of the input flips them: their pooled values do not
    move), channel 2 is the content's brightness in the left half only (zero on the right)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(self.conv.weight + self.conv.weight.flip(-1))  # symmetric in x

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        left = (torch.arange(x.shape[-1]) < x.shape[-1] // 2).to(x.dtype)
        planted = x.clamp(min=0).mean(1, keepdim=True) * left
        conv = self.conv(x)
        return {"out": torch.cat([conv[:, :2], planted, conv[:, 2:]], 1)}


class PlantedSegmenter(nn.Module):
    """``backbone`` + ``classifier`` (1x1 conv), returning ``{"out": logits (N, 2, H, W)}`` like torchvision's."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = PlantedBackbone()
        self.classifier = nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            self.classifier.weight.zero_()
            self.classifier.bias.copy_(torch.tensor([0.0, -0.5]))
            self.classifier.weight[1, PLANTED] = 1.0  # class 1 where the planted channel is bright

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"out": self.classifier(self.backbone(x)["out"])}


def blobs(count: int, size: int = 16, *, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images (N, 3, size, size) with one bright square at a random place on a dark field, masks (N, size, size)
    = 1 on the square."""
    g = torch.Generator().manual_seed(seed)
    images, masks = torch.full((count, 3, size, size), -1.0), torch.zeros(count, size, size, dtype=torch.long)
    for i in range(count):
        r, c = torch.randint(0, size - 4, (2,), generator=g).tolist()
        images[i, :, r:r + 4, c:c + 4] = 2.0
        masks[i, r:r + 4, c:c + 4] = 1
    return images, masks


def test_planted_left_channel_is_ranked_first_by_flip_and_by_left_region():
    model, (images, _) = PlantedSegmenter(), blobs(24)
    flip = rank_position_channels(model, "backbone", images, transform="hflip")
    assert flip.channels[0] == PLANTED
    others = [c for c in range(4) if c != PLANTED]
    assert torch.allclose(flip.scores[others], torch.zeros(3), atol=1e-5)  # symmetric kernels: pooled values do not move
    # independent reference: the planted channel's pooled value is the mean of the left-half brightness
    bright = images.clamp(min=0).mean(1)
    half = images.shape[-1] // 2
    left, right = bright[..., :half].sum((-2, -1)), bright[..., half:].sum((-2, -1))
    assert flip.scores[PLANTED] == pytest.approx(float((left - right).abs().mean() / images.shape[-1] ** 2), rel=1e-5)
    signed = rank_position_channels(model, "backbone", images, transform="hflip", region="left")
    assert signed.channels[0] == PLANTED and signed.scores[PLANTED] > 0
    assert rank_position_channels(model, "backbone", images, transform="hflip", region="right").scores[PLANTED] < 0


def test_ablating_the_planted_channel_changes_only_the_left_half():
    model, (images, masks) = PlantedSegmenter(), blobs(24)
    before = model(images)["out"]
    with ablate_channels(model, "backbone", [PLANTED]):
        after = model(images)["out"]
    half = images.shape[-1] // 2
    assert torch.equal(after[..., half:], before[..., half:])  # the right half: untouched
    assert not torch.equal(after[..., :half], before[..., :half])
    assert torch.equal(model(images)["out"], before)  # the hook is gone after the block
    regions = region_masks(16, 16, "halves")
    full = segmentation_scores(model, images, masks, num_classes=2, regions=regions)
    with ablate_channels(model, "backbone", [PLANTED]):
        ablated = segmentation_scores(model, images, masks, num_classes=2, regions=regions)
    assert full["miou_left"] == 1.0 and ablated["miou_left"] < 0.6  # the left half loses the squares
    assert ablated["miou_right"] == full["miou_right"]


def test_attack_curve_top_channel_beats_every_random_draw():
    model, (images, masks) = PlantedSegmenter(), blobs(24)
    ranking = rank_position_channels(model, "backbone", images)
    curve = attack_curve(model, "backbone", ranking, lambda m: segmentation_scores(
        m, images, masks, num_classes=2, regions="paper"), counts=[1], draws=6,
        generator=torch.Generator().manual_seed(0), progress=False)
    assert curve.top["miou_left"][0] < curve.baseline["miou_left"]
    assert curve.top["miou_left"][0] <= min(curve.random["miou_left"][0])  # a draw may hit the planted channel too
    assert curve.top["miou_right"][0] == curve.baseline["miou_right"]


def test_paper_regions_are_the_official_halves_and_centre():
    masks = region_masks(2, 8, "paper")
    assert list(masks) == ["left", "right", "center"]
    assert masks["left"][0].tolist() == [True] * 4 + [False] * 4
    assert masks["right"][0].tolist() == [False] * 4 + [True] * 4
    assert masks["center"][0].tolist() == [False] * 2 + [True] * 4 + [False] * 2  # columns W/4 .. 3W/4
    with pytest.raises(ValueError, match="paper"):
        region_masks(2, 8, "quarters")


def test_default_layer_and_channel_maps():
    assert default_layer(PlantedSegmenter(), torch.zeros(1, 3, 16, 16)).name == "backbone"
    assert default_layer(timm.create_model("resnet18", num_classes=3), torch.zeros(1, 3, 64, 64)).name == "layer4"
    tv = torchvision.models.resnet18(num_classes=3)  # no feature_info: the last module with a (N, C, h, w) map
    assert default_layer(tv, torch.zeros(1, 3, 64, 64)).name == "layer4"
    fcn = timm.create_model("fcn_resnet18", num_classes=3)
    assert default_layer(fcn, torch.zeros(1, 3, 64, 64)).name == "trunk.layer4"
    model, (images, _) = PlantedSegmenter(), blobs(8)
    maps = channel_maps(model, "backbone", images, [PLANTED, 0], batch_size=3)
    reference = model.backbone(images)["out"].detach().mean(0)[[PLANTED, 0]]
    assert maps.shape == (2, 16, 16) and torch.allclose(maps, reference, atol=1e-6)
    assert (maps[0, :, 8:] == 0).all()  # the planted channel never fires on the right
    assert plot_channel_maps(maps, [PLANTED, 0], title="t") is not None
    with pytest.raises(UsageError, match="no module 'nope'"):
        channel_maps(model, "nope", images, [0])


def test_create_segmentation_model_builds_without_download():
    tv = create_model("deeplabv3_mobilenet_v3_large", 5, task="segmentation")
    assert isinstance(tv, torchvision.models.segmentation.DeepLabV3)
    assert default_layer(tv, torch.zeros(1, 3, 64, 64)).name == "backbone"
    out = tv.eval()(torch.zeros(1, 3, 32, 32))
    assert out["out"].shape == (1, 5, 32, 32) and tv.aux_classifier is None
    assert isinstance(create_model("torchvision/lraspp_mobilenet_v3_large", 3, task="segmentation"),
                      torchvision.models.segmentation.LRASPP)
    fcn = create_model("fcn_resnet18", 4, task="segmentation")
    assert fcn.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 4, 32, 32)
    with pytest.raises(UsageError, match="deeplabv3_mobilenet_v3_large"):
        create_model("torchvision/deeplabv3_nope", 3, task="segmentation")
    with pytest.raises(UsageError, match="timm has no model 'no_such_net'"):
        create_model("no_such_net", 3, task="segmentation")


def test_pretrained_uses_torchvision_hub_weights_from_the_cache(tmp_path, monkeypatch):
    """``pretrained=True`` goes through torchvision's real hub path; offline, a file in ``$TORCH_HOME`` stands in."""
    name = "deeplabv3_mobilenet_v3_large"
    weights = torchvision.models.get_model_weights(name).DEFAULT
    torch.manual_seed(7)
    saved = torchvision.models.get_model(name, weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(saved.state_dict(), cache / weights.url.rsplit("/", 1)[-1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    loaded = create_model(name, pretrained=True, task="segmentation")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in saved.state_dict().items())
