"""PermuteNet: augshift.permute hooks and the registered permutenet_* timm models."""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import augshift.models  # noqa: F401  (registers the timm models)
from augshift.errors import UsageError
from augshift.permute import ChannelPermutation, permute_channels
from helpers import TinyCNN


def test_fresh_permutation_every_call_shared_by_the_batch():
    model = timm.create_model("resnet18", num_classes=9).eval()
    perm = ChannelPermutation(model, "pool", generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 64, 64)
    seen, pooled = [], []
    probe = model.fc.register_forward_pre_hook(lambda m, a: pooled.append(a[0]))
    with torch.no_grad():
        plain = model.forward_head(model.forward_features(x), pre_logits=True)
        for _ in range(3):
            model(x)
            seen.append(perm.last_permutation.clone())
    probe.remove()
    assert all(sorted(p.tolist()) == list(range(512)) for p in seen)
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])
    for p, q in zip(seen, pooled):  # every sample of the batch gets the same permutation
        assert torch.equal(q, plain[:, p])


def test_seeded_permutenets_give_identical_outputs_and_keys_unchanged():
    a = timm.create_model("permutenet_resnet18", num_classes=9, seed=7).eval()
    b = timm.create_model("permutenet_resnet18", num_classes=9, seed=7).eval()
    b.load_state_dict(a.state_dict())
    plain = timm.create_model("resnet18", num_classes=9)
    assert list(a.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(a.state_dict())  # a PermuteNet checkpoint loads into the plain model
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        first, second = a(x), a(x)
        assert torch.equal(first, b(x)) and torch.equal(second, b(x))
        assert not torch.equal(first, second)  # a new permutation on the next call, also in eval mode
        assert not torch.equal(first, plain.eval()(x))


def test_permute_after_a_named_stage():
    torch.manual_seed(0)
    model = timm.create_model("permutenet_resnet18", num_classes=4, where="layer2", seed=0).eval()
    reference = timm.create_model("resnet18", num_classes=4).eval()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model(x), reference(x))
    with pytest.raises(ValueError, match="no module 'layer9'"):
        permute_channels(reference, "layer9")


def test_remove_gives_back_the_plain_model_and_a_second_permutenet_is_refused_until_then():
    model, reference, x = TinyCNN(), TinyCNN(), torch.randn(2, 3, 8, 8)
    permute_channels(model, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"^TinyCNN is already a PermuteNet; call model.channel_permutation"):
        permute_channels(model)
    stray = ChannelPermutation(model, "conv")  # made directly: removing it leaves the model's own permutation on
    stray.remove()
    assert isinstance(model.channel_permutation, ChannelPermutation)
    model.channel_permutation.remove()
    assert model.channel_permutation is None and torch.equal(model(x), reference(x))
    assert permute_channels(model, "conv") is model  # allowed again once removed
    fresh = TinyCNN()
    ChannelPermutation(fresh).remove()  # one put on a model that was never a PermuteNet comes off quietly
    assert not hasattr(fresh, "channel_permutation") and torch.equal(fresh(x), reference(x))


def test_a_permutation_without_a_generator_draws_from_the_global_one():
    model = TinyCNN()
    permutation = ChannelPermutation(model)
    assert permutation.last_permutation is None  # nothing drawn before a forward
    x = torch.randn(1, 3, 8, 8)
    torch.manual_seed(5)
    model(x)
    torch.manual_seed(5)
    assert torch.equal(permutation.last_permutation, torch.randperm(6))


def test_only_a_batch_of_channels_can_be_permuted_and_only_a_named_module():
    model = TinyCNN()
    permutation = ChannelPermutation(model)
    for value, name in ((torch.zeros(3), "Tensor"), ([1, 2], "list")):
        with pytest.raises(ValueError, match=f"^cannot permute channels of {name}: expected a tensor"):
            permutation.permute(value)
    for where in ("", "9"):  # "" names the model itself in named_modules: not a stage
        with pytest.raises(UsageError, match=rf"^TinyCNN has no module '{where}'; .* such as conv, fc$"):
            ChannelPermutation(model, where)


class ScaledHead(nn.Module):
    """A classifier called with a second argument."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        return self.linear(x) * scale


class TwoArgumentNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Conv2d(3, 6, 3, padding=1), ScaledHead()

    def get_classifier(self) -> nn.Module:
        return self.head

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(x), 3.0)


def test_the_classifiers_other_arguments_pass_through():
    model, x = TwoArgumentNet(), torch.randn(2, 3, 8, 8)
    permutation = ChannelPermutation(model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        expected = model.head.linear(model.pooled(x)[:, permutation.last_permutation]) * 3.0
    torch.testing.assert_close(out, expected)
