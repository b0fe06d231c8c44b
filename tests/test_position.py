"""Location canvas, GAPNet, channel ranking, channel ablation and attack curves (augshift.position, augshift.models)."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import augshift.models  # noqa: F401  (registers the timm models)
from augshift import PooledFeatures, permute_channels
from augshift.models.position_nets import GAPNet
from augshift.engine import TrainConfig, Trainer, fit
from augshift.engine.sources import BatchSource
from augshift.position import LocationCanvas, ablate_channels, attack_curve, evaluate_canvas, rank_position_channels
from augshift.position.canvas import paste_in_cells
from augshift.position.channels import ChannelRanking, position_pairs


def reference_canvas(image: torch.Tensor, cell: int, grid: int) -> torch.Tensor:
    c, h, w = image.shape
    canvas = torch.zeros(c, grid * h, grid * w)
    row, col = divmod(cell, grid)
    canvas[:, row * h:(row + 1) * h, col * w:(col + 1) * w] = image
    return canvas


# ----------------------------------------------------------------------------------------------- canvas

@pytest.mark.parametrize("grid", [1, 3, 4])
def test_paste_in_cells_pixel_exact(grid):
    images = torch.rand(7, 3, 5, 6) + 0.1  # non-square, never zero
    cells = torch.randint(grid * grid, (7,), generator=torch.Generator().manual_seed(grid))
    canvases = paste_in_cells(images, cells, grid)
    assert canvases.shape == (7, 3, grid * 5, grid * 6)
    for i in range(7):
        assert torch.equal(canvases[i], reference_canvas(images[i], int(cells[i]), grid))


def test_location_canvas_items_targets_and_flip():
    images, labels = torch.rand(10, 3, 4, 4) + 0.1, torch.arange(10) % 7
    canvas = LocationCanvas(images, labels, grid=3, generator=torch.Generator().manual_seed(0))
    assert len(canvas) == 10 and canvas.cells.shape == (10,) and 0 <= canvas.cells.min() <= canvas.cells.max() < 9
    for i in range(10):
        x, cell, label = canvas[i]
        assert cell == int(canvas.cells[i]) and label == int(labels[i])
        assert torch.equal(x, reference_canvas(images[i], cell, 3))
    idx = torch.tensor([2, 5])
    flip = torch.tensor([True, False])
    x, cells, lab = canvas.batch(idx, torch.tensor([8, 0]), flip=flip)
    assert torch.equal(x[0], reference_canvas(images[2].flip(-1), 8, 3))
    assert torch.equal(x[1], reference_canvas(images[5], 0, 3))
    assert canvas.targets(cells, lab, "location").tolist() == [8, 0]
    assert canvas.targets(cells, lab, "class").tolist() == [2, 5]
    with pytest.raises(ValueError, match="task"):
        canvas.targets(cells, lab, "segmentation")


def test_location_canvas_resample_is_replayable():
    images = torch.rand(50, 3, 2, 2)
    a = LocationCanvas(images, grid=3, generator=torch.Generator().manual_seed(4))
    b = LocationCanvas(images, grid=3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.cells, b.cells) and torch.equal(a.resample(), b.resample())
    assert set(a.cells.tolist()) == set(range(9))  # 50 draws cover the 9 cells
    with pytest.raises(TypeError, match="floating"):
        LocationCanvas(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="cells must be"):
        paste_in_cells(images[:2], torch.tensor([0, 9]), 3)


class CellOracle(nn.Module):
    """Predicts the cell holding the most energy (exact for canvases of positive images)."""

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, hh, ww = x.shape
        g = self.grid
        return x.abs().view(n, c, g, hh // g, g, ww // g).sum(dim=(1, 3, 5)).view(n, g * g)


class Constant(nn.Module):
    def __init__(self, k: int, num_classes: int) -> None:
        super().__init__()
        self.k, self.num_classes = k, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), self.num_classes)
        out[:, self.k] = 1
        return out


def test_evaluate_canvas_overall_and_per_cell():
    images = torch.rand(12, 3, 4, 4) + 0.1
    labels = torch.tensor([1, 3] * 6)
    canvas = LocationCanvas(images, labels, grid=3, generator=torch.Generator().manual_seed(0))
    oracle = evaluate_canvas(CellOracle(3), canvas, exhaustive=True, batch_size=5)
    assert oracle.accuracy == 1.0 and oracle.total == [12] * 9 and torch.equal(oracle.per_cell, torch.ones(3, 3, dtype=torch.float64))
    const = evaluate_canvas(Constant(4, 9), canvas, exhaustive=True)
    expected = torch.zeros(9, dtype=torch.float64)
    expected[4] = 1
    assert torch.equal(const.per_cell.flatten(), expected) and const.accuracy == pytest.approx(1 / 9)
    classes = evaluate_canvas(Constant(3, 10), canvas, task="class", passes=2, generator=torch.Generator().manual_seed(1))
    assert sum(classes.total) == 24 and classes.accuracy == 0.5  # half the labels are 3
    data = classes.to_dict()
    assert data["accuracy"] == 0.5 and len(data["per_cell"]) == 3


def test_fit_learns_the_location_of_a_tiny_canvas():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 2, 2) + 0.5
    canvas = LocationCanvas(images, grid=2, generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x, cells, _ = canvas.batch(torch.arange(64))
    config = TrainConfig(epochs=150, batch_size=64, optimizer="adam", lr=0.05, schedule="constant", shift=None)
    history = fit(Trainer(model, config, steps_per_epoch=1), BatchSource(1, lambda epoch: [(x, cells)]), progress=False)
    assert history[-1]["loss"] < 0.2 * history[0]["loss"]
    assert evaluate_canvas(model, canvas, exhaustive=True).accuracy == 1.0


# ----------------------------------------------------------------------------------------------- GAPNet

def test_gapnet_is_conv_then_global_average_pool():
    torch.manual_seed(0)
    model = timm.create_model("gapnet_resnet18", num_classes=9).eval()
    assert isinstance(model, GAPNet) and not any(isinstance(m, nn.Linear) for m in model.modules())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        logits = model(x)
        reference = model.head(model.trunk.forward_features(x)).mean(dim=(2, 3))
    assert logits.shape == (2, 9) and torch.allclose(logits, reference, atol=1e-6)
    assert model.head.kernel_size == (3, 3) and model.feature_module == "trunk.layer4"
    assert model.trunk.forward_features(x).shape[-2:] == (3, 3)  # one feature cell per canvas cell
    pooled = PooledFeatures(model)
    with torch.no_grad(), pooled.capture():
        out = model(x)
        assert torch.equal(pooled.pop(), out)  # GAPNet's pooled point is the logit vector itself
    model.reset_classifier(10)
    assert model(x).shape == (2, 10)


def test_gapnet_class_head_and_other_trunk():
    model = timm.create_model("gapnet_resnet18", num_classes=10, in_chans=1)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)
    other = GAPNet("resnet10t", num_classes=4)
    assert other(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    with pytest.raises(ValueError, match="global average"):
        GAPNet("resnet18", global_pool="max")


@pytest.mark.parametrize("name", ["gapnet_resnet18", "permutenet_resnet18", "fcn_resnet18"])
def test_pretrained_weights_are_refused_clearly(name):
    with pytest.raises(ValueError, match="no pretrained weights.*pretrained=False"):
        timm.create_model(name, pretrained=True)


def test_permuting_gapnet_pool_permutes_its_logits():
    model = timm.create_model("gapnet_resnet18", num_classes=9).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        plain = model(x)
        permute_channels(model, "pool", generator=torch.Generator().manual_seed(0))
        permuted = model(x)
    assert not torch.equal(plain, permuted)
    assert torch.equal(plain.sort(1).values, permuted.sort(1).values)


# ----------------------------------------------------------------------------------------------- ranking

class PlantedLayer(nn.Module):
    """Channel ``left`` sees only the left half, ``right`` only the right half; the others everything."""

    def __init__(self, channels: int = 6, left: int = 4, right: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 1, bias=False)
        nn.init.constant_(self.conv.weight, 1 / 3)  # every channel = mean over RGB, a symmetric response
        self.left, self.right = left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv(x)
        w = f.shape[-1]
        column = torch.arange(w, device=f.device)
        mask = torch.ones(f.shape[1], w)
        mask[self.left] = (column < w // 2).float()
        mask[self.right] = (column >= w // 2).float()
        return f * mask.view(1, -1, 1, w)


class Planted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = PlantedLayer()
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer(x).mean(dim=(2, 3)))


def test_planted_channels_ranked_first_with_exact_scores():
    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ranking = rank_position_channels(Planted(), "layer", images, transform="hflip")
    assert isinstance(ranking, ChannelRanking) and ranking.channels.shape == (6,) and ranking.num_images == 16
    assert set(ranking.top(2)) == {4, 1}
    gray = images.mean(1)
    left, right = gray[:, :, :4].sum(dim=(1, 2)) / 64, gray[:, :, 4:].sum(dim=(1, 2)) / 64
    expected = (left - right).abs().mean()
    assert torch.allclose(ranking.scores[4], expected, atol=1e-6) and torch.allclose(ranking.scores[1], expected, atol=1e-6)
    others = [c for c in range(6) if c not in (1, 4)]
    assert ranking.scores[others].abs().max() < 1e-6


@pytest.mark.parametrize("transform", ["hflip", "shift"])
def test_region_specific_ranking_is_signed(transform):
    images = torch.zeros(16, 3, 8, 16)
    images[..., 4:12] = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)) + 0.1  # zero borders
    model = Planted()
    left = rank_position_channels(model, "layer", images, transform=transform, region="left", amount=0.25)
    right = rank_position_channels(model, "layer", images, transform=transform, region="right", amount=0.25)
    assert left.channels[0] == 4 and left.scores[4] > 0 and left.scores[1] < 0 and left.channels[-1] == 1
    assert right.channels[0] == 1 and right.scores[1] > 0 and right.scores[4] < 0
    if transform == "shift":  # the same two positions, swapped
        assert torch.allclose(right.scores, -left.scores, atol=1e-6)
    others = [c for c in range(6) if c not in (1, 4)]
    assert left.scores[others].abs().max() < 1e-6


def test_position_pairs_definitions_and_errors():
    x = torch.rand(2, 3, 4, 6)
    a, b = position_pairs(x, "hflip")
    assert torch.equal(a, x) and torch.equal(b, x.flip(-1))
    a, b = position_pairs(x, "vflip", region="top")
    assert torch.equal(a[..., 2:, :], torch.zeros(2, 3, 2, 6)) and torch.equal(a[..., :2, :], x[..., :2, :])
    assert torch.equal(b, a.flip(-2))
    a, b = position_pairs(x, "shift", region="right", amount=0.5)
    assert torch.equal(a[..., 3:], x[..., :3]) and torch.equal(b[..., :3], x[..., 3:])
    with pytest.raises(ValueError, match="region 'top' needs"):
        position_pairs(x, "hflip", region="top")
    with pytest.raises(ValueError, match="unknown transform"):
        position_pairs(x, "rotate")
    with pytest.raises(ValueError, match="no module 'layer9'"):
        rank_position_channels(Planted(), "layer9", x)


def test_ranking_plot_writes_png(tmp_path):
    ranking = rank_position_channels(Planted(), "layer", torch.rand(4, 3, 8, 8))
    path = tmp_path / "ranking.png"
    ranking.plot(str(path), top=2)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert ranking.to_dict()["channels"] == ranking.channels.tolist()


# ----------------------------------------------------------------------------------------------- ablation

def test_ablate_channels_zeroes_inside_and_restores_exactly():
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    probe = model.layer4.register_forward_pre_hook(lambda m, a: seen.append(a[0]))  # what layer3 passes on
    with torch.no_grad():
        before = model(x)
        with ablate_channels(model, "layer3", [1, 5, 200]) as same:
            assert same is model
            inside = model(x)
        after = model(x)
    probe.remove()
    assert seen[1][:, [1, 5, 200]].abs().max() == 0 and seen[0][:, [1, 5, 200]].abs().max() > 0
    assert not torch.equal(before, inside) and torch.equal(before, after)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert len(model.layer3._forward_hooks) == 0
    with pytest.raises(RuntimeError, match="boom"), ablate_channels(model, "layer3", [0]):
        raise RuntimeError("boom")
    assert len(model.layer3._forward_hooks) == 0
    with pytest.raises(ValueError, match=r"channels must lie in \[0, 256\)"), ablate_channels(model, "layer3", [256]):
        model(x)


class Readout(nn.Module):
    """Output = the pooled channels of ``layer`` (so an ablation shows up channel by channel)."""

    def __init__(self, channels: int = 10) -> None:
        super().__init__()
        self.layer = nn.Conv2d(1, channels, 1, bias=False)
        nn.init.constant_(self.layer.weight, 1.0)
        self.scale = torch.arange(1, channels + 1, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x).mean(dim=(2, 3)) * self.scale


def test_attack_curve_top_vs_random():
    model, x = Readout(), torch.ones(1, 1, 2, 2)

    def evaluate(m: nn.Module) -> dict:
        with torch.no_grad():
            return {"total": float(m(x).sum())}

    ranking = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]  # largest contributions first
    curve = attack_curve(model, "layer", ranking, evaluate, counts=[1, 3], draws=4,
                         generator=torch.Generator().manual_seed(0), progress=False)
    assert curve.baseline == {"total": 55.0} and curve.top["total"] == [45.0, 28.0]
    again = attack_curve(model, "layer", ranking, evaluate, counts=[1, 3], draws=4,
                         generator=torch.Generator().manual_seed(0), progress=False)
    assert curve.random == again.random and all(len(v) == 4 for v in curve.random["total"])
    assert all(v >= 45.0 for v in curve.random["total"][0]) and curve.random_mean("total")[1] > 28.0
    assert "| 3 | 28.0000 |" in curve.markdown()
    with pytest.raises(ValueError, match="counts go up to 11"):
        attack_curve(model, "layer", ranking, evaluate, counts=[11], progress=False)


def test_readme_python_example():
    # the "Position information" README snippet, verbatim
    import timm
    import torch

    from augshift.position import LocationCanvas, ablate_channels, rank_position_channels

    model = timm.create_model("gapnet_resnet18", num_classes=9)  # 3x3 location task, logits = pooled 9-channel map
    images = torch.randn(8, 3, 32, 32)  # your normalised 32x32 images
    canvas = LocationCanvas(images, grid=3, generator=torch.Generator().manual_seed(0))
    x, cells, _ = canvas.batch(torch.arange(8))  # (8, 3, 96, 96) canvases, targets = cell indices
    ranking = rank_position_channels(model, "trunk.layer4", x, transform="hflip")
    print(ranking.top(10))  # the 10 channels whose pooled value moves most under a horizontal flip
    with ablate_channels(model, "trunk.layer4", ranking.top(10)):
        logits = model(x)

    assert logits.shape == (8, 9) and len(ranking.top(10)) == 10 and augshift.models.position_nets.GAPNet is type(model)


def test_recalibrate_batchnorm_averages_the_first_batches_with_the_final_weights():
    from augshift.engine.trainer import recalibrate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    bn = model[1]
    bn.running_mean.fill_(100.0), bn.running_var.fill_(100.0)
    recalibrate_batchnorm(model, iter([(torch.randn(2, 3, 6, 6), None)]), count=0)
    assert bn.running_mean.eq(100.0).all()  # count 0: untouched
    batches = [(torch.randn(8, 3, 6, 6) * 2 + 1, None) for _ in range(5)]
    recalibrate_batchnorm(model, iter(batches + [(torch.full((8, 3, 6, 6), 1e6), None)]), count=5)
    with torch.no_grad():
        outputs = [model[0](x) for x, _ in batches]
    mean = torch.stack([a.mean(dim=(0, 2, 3)) for a in outputs]).mean(0)
    var = torch.stack([a.var(dim=(0, 2, 3)) for a in outputs]).mean(0)  # BatchNorm keeps the unbiased variance
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert not model.training and bn.momentum == 0.1  # mode and momentum restored


def test_official_trunk_has_stride_16_and_resnet18_keys():
    """resnet18_stride16 (the official PermuteNet code's ResNet-18): no max-pool, so a 96 px canvas ends at 6x6
    (timm's resnet18: 3x3); same weights as timm's resnet18; the *_stride16 position nets build on it."""
    import timm
    from torch import nn

    official, plain = timm.create_model("resnet18_stride16"), timm.create_model("resnet18")
    x = torch.randn(1, 3, 96, 96)
    assert official.forward_features(x).shape[-2:] == (6, 6) and plain.forward_features(x).shape[-2:] == (3, 3)
    assert isinstance(official.maxpool, nn.Identity) and official.conv1.stride == (2, 2) and official.conv1.kernel_size == (7, 7)
    assert set(official.state_dict()) == set(plain.state_dict())
    assert [info["reduction"] for info in official.feature_info] == [2, 2, 4, 8, 16]
    official.load_state_dict(plain.state_dict())  # the same shapes: weights move between them
    assert timm.create_model("gapnet_resnet18_stride16", num_classes=9)(x).shape == (1, 9)
    assert timm.create_model("permutenet_resnet18_stride16", num_classes=9, seed=0)(x).shape == (1, 9)
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("resnet18_stride16", pretrained=True)


def test_the_captured_step_gets_canvas_batches_of_one_shape():
    from augshift.position import PositionConfig
    from augshift.position.recipes import canvas_source

    canvas = LocationCanvas(torch.randn(10, 3, 4, 4), grid=2, generator=torch.Generator().manual_seed(0))
    config = PositionConfig(batch_size=4)
    whole = canvas_source(canvas, task="location", config=config)
    full = canvas_source(canvas, task="location", config=config, drop_last=True)
    assert [len(y) for _, y in whole.batches(0)] == [4, 4, 2] and whole.steps == 3
    assert [len(y) for _, y in full.batches(0)] == [4, 4] and full.steps == 2


def test_the_captured_step_keeps_the_one_batch_of_fewer_canvases_than_a_batch():
    """As TensorBatches does: dropping the only (partial) batch would leave an epoch of no steps."""
    from augshift.position import PositionConfig
    from augshift.position.recipes import canvas_source, mosaic_source
    from augshift.position.segmentation import MosaicSegmentation

    config = PositionConfig(batch_size=8)
    canvas = LocationCanvas(torch.randn(5, 3, 4, 4), grid=2, generator=torch.Generator().manual_seed(0))
    source = canvas_source(canvas, task="location", config=config, drop_last=True)
    assert source.steps == 1 and [len(y) for _, y in source.batches(0)] == [5]
    mosaics = MosaicSegmentation(torch.randn(18, 3, 4, 4), torch.arange(18) % 9, grid=3)
    source = mosaic_source(mosaics, config=config, drop_last=True)
    assert source.steps == 1 and [len(y) for _, y in source.batches(0)] == [len(mosaics)] and len(mosaics) < 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_canvases_on_cuda_train_without_host_syncs_and_score_both_tasks():
    """Training batches from the canvas's own cells never wait for the host; scoring compares on one device."""
    images, labels = torch.rand(12, 3, 4, 4) + 0.1, torch.tensor([1, 3] * 6)
    on_gpu = LocationCanvas(images.cuda(), labels, grid=3, generator=torch.Generator("cuda").manual_seed(0))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x, cells, _ = on_gpu.batch(torch.arange(12, device="cuda"), flip=torch.rand(12, device="cuda") < 0.5)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x.shape == (12, 3, 12, 12) and cells.is_cuda
    on_cpu = LocationCanvas(images, labels, grid=3)
    for model, task in ((CellOracle(3), "location"), (Constant(3, 10), "class")):
        gpu = evaluate_canvas(model, on_gpu, task=task, passes=2, generator=torch.Generator().manual_seed(1), device="cuda")
        cpu = evaluate_canvas(model, on_cpu, task=task, passes=2, generator=torch.Generator().manual_seed(1))
        assert (gpu.correct, gpu.total) == (cpu.correct, cpu.total)
