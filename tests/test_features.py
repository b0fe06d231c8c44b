import pytest
import timm
import torch
import torchvision
from torch import nn

from augshift import PooledFeatures
from augshift.features import logits_and_features
from augshift import UnsupportedModelError, classifier_of

TIMM_MODELS = [
    ("resnet18", {}), ("resnetblur18", {}), ("convnext_atto", {}), ("efficientnet_b0", {}),
    ("mobilenetv3_small_050", {}), ("regnetx_002", {}), ("densenet121", {}),
    ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8}),
    ("swin_tiny_patch4_window7_224", {"img_size": 56, "window_size": 7}),
]


@pytest.mark.parametrize("name,kwargs", TIMM_MODELS, ids=[n for n, _ in TIMM_MODELS])
def test_timm_capture_equals_pre_logits(name, kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=7, **kwargs).eval()
    size = kwargs.get("img_size", 32)
    x = torch.randn(2, 3, size, size)
    keys = list(model.state_dict())
    with torch.no_grad():
        logits, pooled = logits_and_features(model, x)
        reference = model.forward_head(model.forward_features(x), pre_logits=True)
        plain = model(x)
    torch.testing.assert_close(pooled, reference)
    torch.testing.assert_close(logits, plain)
    assert logits.shape == (2, 7) and pooled.shape == (2, getattr(model, "head_hidden_size", None) or model.num_features)
    assert list(model.state_dict()) == keys
    assert not model.get_classifier()._forward_pre_hooks  # hook removed afterwards


def test_torchvision_resnet_capture_equals_avgpool():
    model = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, pooled = logits_and_features(model, x)
        trunk = nn.Sequential(*list(model.children())[:-1])
        reference = trunk(x).flatten(1)
    torch.testing.assert_close(pooled, reference)


@pytest.mark.parametrize("builder", [torchvision.models.mobilenet_v3_small, torchvision.models.efficientnet_b0])
def test_torchvision_sequential_classifiers(builder):
    model = builder(num_classes=4).eval()
    with torch.no_grad():
        logits, pooled = logits_and_features(model, torch.randn(2, 3, 32, 32))
        torch.testing.assert_close(model.classifier(pooled), logits)
    assert pooled.dim() == 2


def test_captures_only_inside_capture_block():
    model = timm.create_model("resnet18", num_classes=3)
    features = PooledFeatures(model)
    model(torch.randn(2, 3, 32, 32))
    with pytest.raises(RuntimeError, match="no pooled features"):
        features.pop()


def test_named_classifier_and_errors():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedModelError, match="cannot find the pooled features of Sequential.*supported: any nn.Module whose output is its logits"):
        classifier_of(model)
    with pytest.raises(UnsupportedModelError, match="no module named 'head'"):
        classifier_of(model, "head")
    _, pooled = logits_and_features(model, torch.randn(2, 3, 8, 8), classifier="3")
    assert pooled.shape == (2, 4)


def test_unpooled_classifier_input_is_rejected():
    model = torchvision.models.squeezenet1_0(num_classes=3)  # its classifier sees (N, 512, h, w)
    with pytest.raises(ValueError, match="not a globally pooled \\(N, C\\) feature"):
        logits_and_features(model, torch.randn(1, 3, 64, 64))
