"""Adaptive polyphase sampling: ApsDown against plain slicing, exact shift invariance of the APS ResNets
(circular padding, eval mode), timm compatibility (create_model, state_dict keys, PooledFeatures)."""
from __future__ import annotations

import io

import pytest
import timm
import torch
from torch import nn

from augshift import PooledFeatures
from augshift.models.aps import ApsDown, ApsResNet

APS_MODELS = ("aps_resnet18", "aps_blur_resnet18")
# circular shifts (dy, dx) that are not multiples of any stride
SHIFTS = ((1, 0), (3, 5), (-7, 2), (13, 17))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster than two, and does not fight other processes for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference_aps(x: torch.Tensor, stride: int = 2, norm: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the polyphase component x[:, :, i::s, j::s] of largest norm, chosen by hand."""
    outs, phases = [], []
    for image in x:
        components = [image[:, i::stride, j::stride] for i in range(stride) for j in range(stride)]
        norms = [float(torch.linalg.vector_norm(comp, ord=norm)) for comp in components]
        best = max(range(len(norms)), key=lambda k: (norms[k], -k))  # first of equal maxima
        outs.append(components[best])
        phases.append(best)
    return torch.stack(outs), torch.tensor(phases)


def randomised(name: str, *, cifar_stem: bool = False, **kwargs) -> nn.Module:
    """``name`` with random BatchNorm affine parameters and non-trivial running statistics, in eval mode."""
    model = timm.create_model(name, num_classes=10, **kwargs)
    if cifar_stem:  # as augshift.models.cifar_stem does it
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False, padding_mode="circular")
        model.maxpool = nn.Identity()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, 0.0, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 32, 32))
    return model.eval()


def shift_gap(model: nn.Module, size: int, dtype: torch.dtype = torch.float64) -> float:
    """Largest |logit difference| between 2 random images and their circular shifts, relative to the logits."""
    model = model.to(dtype)
    x = torch.randn(2, 3, size, size, dtype=dtype)
    batch = torch.cat([x] + [torch.roll(x, shift, dims=(-2, -1)) for shift in SHIFTS])
    with torch.no_grad():
        logits = model(batch).view(len(SHIFTS) + 1, 2, -1)
    return float((logits - logits[0]).abs().max() / logits[0].abs().max())


@pytest.mark.parametrize("filter_size", [1, 3])
@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_aps_down_matches_slicing_reference(filter_size: int, norm: str) -> None:
    torch.manual_seed(0)
    layer = ApsDown(2, filter_size=filter_size, norm=norm)
    x = torch.randn(6, 5, 8, 10)
    out, phase = layer.forward_with_phase(x)
    source = layer.blur(x) if filter_size > 1 else x
    expected, expected_phase = reference_aps(source, norm=2 if norm == "l2" else 1)
    assert out.shape == (6, 5, 4, 5)
    assert torch.equal(phase, expected_phase)
    assert torch.equal(out, expected)
    assert torch.equal(layer(x), out)
    assert torch.equal(layer(x.contiguous(memory_format=torch.channels_last)), out)


def test_aps_down_reuses_a_given_phase_and_breaks_ties_to_the_first() -> None:
    layer = ApsDown(2)
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    phase = torch.tensor([2, 1])
    out = layer(x, phase)
    assert torch.equal(out[0], x[0, :, 1::2, 0::2]) and torch.equal(out[1], x[1, :, 0::2, 1::2])
    assert layer.forward_with_phase(torch.ones(3, 2, 4, 4))[1].tolist() == [0, 0, 0]  # all equal: the first


def test_aps_down_blur_is_a_normalised_binomial() -> None:
    layer = ApsDown(2, filter_size=3)
    assert torch.allclose(layer.filt[0, 0], torch.tensor([[1., 2., 1.], [2., 4., 2.], [1., 2., 1.]]) / 16)
    assert layer.state_dict() == {}  # no state: APS models keep timm resnet18's keys
    assert torch.allclose(layer.blur(torch.ones(1, 2, 6, 6)), torch.ones(1, 2, 6, 6))


def test_aps_down_rejects_sizes_not_divisible_by_the_stride() -> None:
    with pytest.raises(ValueError, match="divisible by the model's total stride"):
        ApsDown(2)(torch.randn(1, 3, 7, 8))
    with pytest.raises(ValueError, match="divisible by the model's total stride .32"):
        timm.create_model("aps_resnet18", num_classes=3)(torch.randn(1, 3, 48, 48))  # 48 / 16 = 3 is odd
    with pytest.raises(ValueError, match="padding_mode"):
        ApsDown(2, padding_mode="wrap")


@pytest.mark.parametrize("name", APS_MODELS)
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("cifar_stem", [False, True])  # the CIFAR stem: total stride 8
def test_aps_resnets_are_exactly_invariant_to_circular_shifts(name: str, size: int, cifar_stem: bool) -> None:
    torch.manual_seed(size + cifar_stem)
    assert shift_gap(randomised(name, cifar_stem=cifar_stem), size) < 1e-6


def test_aps_resnet_is_invariant_in_float32() -> None:
    torch.manual_seed(1)
    assert shift_gap(randomised("aps_resnet18"), 32, torch.float32) < 1e-4


def test_negative_controls_are_not_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain timm resnet18, and the APS model with every phase fixed to 0 (plain striding), are not invariant."""
    torch.manual_seed(2)
    assert shift_gap(randomised("resnet18"), 32) > 1e-2
    model = randomised("aps_resnet18")
    plain = ApsDown.forward_with_phase
    monkeypatch.setattr(ApsDown, "forward_with_phase", lambda self, x, phase=None: plain(
        self, x, torch.zeros(x.shape[0], dtype=torch.long)))
    assert shift_gap(model, 32) > 1e-2


def test_padding_mode_reaches_every_conv_pool_and_blur_and_zeros_is_not_exact() -> None:
    torch.manual_seed(3)
    model = randomised("aps_blur_resnet18", padding_mode="zeros")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and all(c.padding_mode == "zeros" and c.stride == (1, 1) for c in convs)
    assert all(m.padding_mode == "zeros" for m in model.modules() if isinstance(m, ApsDown))
    assert isinstance(model.maxpool[1], nn.ZeroPad2d)
    assert shift_gap(model, 32) > 1e-3  # zero borders see the shift


def test_state_dict_round_trip_and_timm_resnet18_keys() -> None:
    torch.manual_seed(4)
    model = randomised("aps_blur_resnet18")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = timm.create_model("aps_blur_resnet18", num_classes=10)
    fresh.load_state_dict(torch.load(buffer), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), fresh.eval()(x))
    assert set(model.state_dict()) == set(timm.create_model("resnet18", num_classes=10).state_dict())
    assert set(model.state_dict()) == set(timm.create_model("resnetblur18", num_classes=10).state_dict())


def test_timm_interface() -> None:
    model = timm.create_model("aps_resnet18", pretrained=False, num_classes=7, in_chans=1, drop_rate=0.1)
    assert isinstance(model, ApsResNet) and model.conv1.in_channels == 1
    assert model.get_classifier() is model.fc and model.num_features == 512
    assert [f["module"] for f in model.feature_info] == ["act1", "layer1", "layer2", "layer3", "layer4"]
    assert model.pretrained_cfg["first_conv"] == "conv1" and model.pretrained_cfg["classifier"] == "fc"
    x = torch.randn(2, 1, 32, 32)
    assert model.forward_features(x).shape == (2, 512, 1, 1)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 512)
    model.reset_classifier(4)
    model.train()(x).square().sum().backward()  # trains: gradients reach the stem through every ApsDown
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="pretrained=False"):
        timm.create_model("aps_resnet18", pretrained=True)
    with pytest.raises(TypeError, match="aa_layer"):  # a second stride next to the ApsDown layers is no option
        timm.create_model("aps_resnet18", aa_layer=nn.AvgPool2d)


def test_pooled_features_capture_the_classifier_input() -> None:
    model = timm.create_model("aps_resnet18", num_classes=10).eval()
    features = PooledFeatures(model)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), features.capture():
        logits = model(x)
        pooled = features.pop()
    assert pooled.shape == (3, 512)
    assert torch.allclose(model.fc(pooled), logits)


def test_consistency_command_reports_full_circular_consistency_for_a_circular_aps_model(tmp_path, cifar10_dir):
    import json

    from augshift.cli import main

    assert main(["consistency", "--model", "aps_resnet18", "--num-classes", "10", "--data", str(cifar10_dir),
                 "--eval-limit", "48", "--batch-size", "48", "--device", "cpu", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "consistency.json").read_text())["results"]
    assert result["samples"] == 48 and result["consistency_circular"] == 100.0
