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


class ProbeNet(nn.Module):
    """A conv body whose (N, 4, 4, 4) map goes through `prepare` into the classifier `fc` (a keyword call with
    `by_keyword`)."""

    def __init__(self, prepare, fc: nn.Module | None = None, *, by_keyword: bool = False) -> None:
        super().__init__()
        self.body, self.fc = nn.Conv2d(3, 4, 3, padding=1), fc if fc is not None else nn.Linear(4, 3)
        self.prepare, self.by_keyword = prepare, by_keyword

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.prepare(self.body(x))
        return self.fc(input=features) if self.by_keyword else self.fc(features)


def captured(model: nn.Module, classifier: str | None = None) -> torch.Tensor:
    features = PooledFeatures(model, classifier)
    with torch.no_grad(), features.capture():
        model(torch.randn(2, 3, 4, 4))
    return features.pop()


def refusal(model_name: str, classifier: str, found: str) -> str:
    """The whole message of a refused classifier input, as a pattern."""
    return (rf"^the input of {model_name}'s classifier \({classifier}\) is {found}, not a globally pooled \(N, C\) "
            r"feature, which the consistency loss needs: pool globally before the classifier \(e.g. "
            r"nn.AdaptiveAvgPool2d\(1\)\), or name with classifier='<module name>' a module whose input is a global "
            r"pool$")


def test_a_1x1_map_is_taken_as_the_pooled_features_and_flattened():
    model = ProbeNet(lambda m: m.mean(dim=(2, 3), keepdim=True), fc=nn.Conv2d(4, 3, 1))
    x = torch.randn(2, 3, 4, 4)
    features = PooledFeatures(model)
    with torch.no_grad(), features.capture():
        model(x)
        by_hand = model.body(x).mean(dim=(2, 3))  # (2, 4)
    torch.testing.assert_close(features.pop(), by_hand)


@pytest.mark.parametrize("prepare,by_keyword,found", [
    (lambda m: m, False, r"of shape \(2, 4, 4, 4\)"),  # a spatial map
    (lambda m: m.flatten(2).transpose(1, 2)[:, :2], False, r"of shape \(2, 2, 4\)"),  # tokens (N, T, D)
    (lambda m: [m.mean(dim=(2, 3))], False, "of shape list"),
    (lambda m: m.mean(dim=(2, 3)), True, "of shape NoneType"),  # fc(input=...): no positional input to see
], ids=["map", "tokens", "list", "keyword"])
def test_a_classifier_input_that_is_not_n_by_c_is_refused_naming_what_it_is(prepare, by_keyword, found):
    with pytest.raises(ValueError, match=refusal("ProbeNet", "Linear", found)):
        captured(ProbeNet(prepare, by_keyword=by_keyword))


class FlattensInForward(nn.Module):
    """torchvision's VGG pattern: a pool to a map, `torch.flatten` in `forward`, a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.pool, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d((1, 2)), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.body(x)), 1))


def test_a_flattened_map_is_refused_naming_the_module_that_kept_it():
    with pytest.raises(ValueError, match=refusal("FlattensInForward", "Linear", r"the flattened 4 x 1 x 2 map of its "
                                                 r"module 'pool' \(AdaptiveAvgPool2d\(output_size=\(1, 2\)\)\)")):
        captured(FlattensInForward())
    unpooled = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 2))
    with pytest.raises(ValueError, match=refusal("Sequential", "Linear", r"the flattened 2 x 4 x 4 map of its module "
                                                 r"'1' \(Flatten\(start_dim=1, end_dim=-1\)\)")):
        captured(unpooled, "2")
    kept = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert captured(kept, "3").shape == (2, 4)  # a 1 x 1 pool, flattened: the pooled features
