"""PermuteNet: augshift.permute hooks and the registered permutenet_* timm models."""
from __future__ import annotations

import pytest
import timm
import torch

import augshift.models  # noqa: F401  (registers the timm models)
from augshift.permute import ChannelPermutation, permute_channels


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
