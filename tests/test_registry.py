"""Every model the project registers with timm goes through one helper: timm's builder, the data config timm
resolves, and one refusal of pretrained weights."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import augshift.models  # noqa: F401  (registers the models)
from augshift.errors import UsageError
from augshift.models import registry

PROJECT_MODELS = sorted(registry.default_cfgs)


def test_the_project_registers_its_models_in_one_place():
    assert {"gapnet_resnet18", "permutenet_resnet18", "gapnet_resnet18_stride16", "permutenet_resnet18_stride16",
            "resnet18_stride16", "fcn_resnet18", "aps_resnet18", "aps_blur_resnet18"} <= set(PROJECT_MODELS)
    assert all(timm.is_model(name) for name in PROJECT_MODELS)


@pytest.mark.parametrize("name", PROJECT_MODELS)
def test_pretrained_is_refused_with_one_type_and_message(name):
    with pytest.raises(UsageError, match=rf"^{name} has no pretrained weights: it is trained from scratch; create it "
                                         r"with pretrained=False"):
        timm.create_model(name, pretrained=True)


@pytest.mark.parametrize("name", ["gapnet_resnet18", "permutenet_resnet18", "aps_resnet18", "resnet18_stride16"])
def test_timm_builds_them_with_their_data_config(name):
    model = timm.create_model(name, num_classes=4)
    config = timm.data.resolve_data_config({}, model=model)
    assert model.pretrained_cfg["architecture"] == name and config["input_size"] == (3, 224, 224)
    assert timm.create_model(name, num_classes=4, pretrained_cfg_overlay=dict(mean=(0.1, 0.2, 0.3))).pretrained_cfg[
        "mean"] == (0.1, 0.2, 0.3)  # timm's own keyword arguments reach timm's builder


def test_aps_is_built_with_its_strides_in_place(monkeypatch):
    """No convolution of an APS ResNet is ever made with a stride (an ApsDown takes every one): nothing is rebuilt."""
    strides = []
    make = nn.Conv2d.__init__

    def recording(self, *args, **kwargs):
        make(self, *args, **kwargs)
        strides.append(self.stride)

    monkeypatch.setattr(nn.Conv2d, "__init__", recording)
    model = timm.create_model("aps_resnet18", num_classes=3)
    assert len(strides) == sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 20
    assert set(strides) == {(1, 1)}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), model(torch.roll(x, (8, -4), (-2, -1))), atol=1e-4)
