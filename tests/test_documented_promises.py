"""What the docstrings promise and no other test would see broken: the modes every evaluation restores, the
probabilities of the draws (frequencies against the closed form), and how paired comparisons pair their runs (two
seeds with different outcomes)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from augshift import RandomShift, ShiftConsistency, evaluate_shift_consistency
from augshift.data import Normalization
from augshift.engine import evaluate_classifier
from augshift.intervals import paired_difference_ci
from augshift.outputs import evaluating
from augshift.position.channels import pooled_activations
from augshift.views import hashed_shifts
from helpers import run_result

# ---------------------------------------------------------------------------------------------- modes restored


class WithBatchNorm(nn.Module):
    """conv, BatchNorm, dropout, GAP, linear: a forward in train mode would move the BatchNorm statistics."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.drop, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout(0.5), \
            nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.bn(self.conv(x))).mean((2, 3))))


def modes(model: nn.Module) -> dict[str, bool]:
    return {name: module.training for name, module in model.named_modules()}


def evaluate_with_shift_consistency(model, images, labels):
    ShiftConsistency(max_shift=1).update(model, images, labels, torch.arange(len(images)))


def flags_of_shift_consistency(model, images, labels):
    ShiftConsistency(max_shift=1).flags(model, images, labels, torch.arange(len(images)))


def evaluate_shift_consistency_of_batches(model, images, labels):
    evaluate_shift_consistency(model, [(images, labels)], device=torch.device("cpu"), max_shift=1)


def evaluate_classifier_of_uint8(model, images, labels):
    evaluate_classifier(model, (images * 40 + 128).clamp(0, 255).to(torch.uint8), labels, progress=False, max_shift=1,
                        normalization=Normalization((0.5,) * 3, (0.25,) * 3, "test"))


def pooled_activations_of_the_bn(model, images, labels):
    pooled_activations(model, "bn", images)


def under_evaluating(model, images, labels):
    with evaluating(model) as net:
        net(images)


EVALUATIONS = [evaluate_with_shift_consistency, flags_of_shift_consistency, evaluate_shift_consistency_of_batches,
               evaluate_classifier_of_uint8, pooled_activations_of_the_bn, under_evaluating]


@pytest.mark.parametrize("evaluate", EVALUATIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("start", ["train", "eval", "frozen BatchNorm"])
def test_every_evaluation_runs_in_eval_mode_and_restores_each_modules_own_mode(evaluate, start):
    """"evaluated in eval mode, its previous mode restored after": a training model, an evaluating one, and one that
    trains with its BatchNorm frozen (in eval mode: a fine-tuning recipe) each end as they began, BatchNorm statistics
    untouched."""
    model = WithBatchNorm()
    model.train(start != "eval")
    if start == "frozen BatchNorm":
        model.bn.eval()
    before, statistics = modes(model), [b.clone() for b in model.bn.buffers()]
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append((module.training, torch.is_grad_enabled())))
    images, labels = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    evaluate(model, images, labels)
    assert seen and all(mode == (False, False) for mode in seen)  # every forward: eval mode, no gradients
    assert modes(model) == before
    assert all(torch.equal(b, s) for b, s in zip(model.bn.buffers(), statistics))


def test_evaluating_restores_the_mode_when_the_block_raises():
    model = WithBatchNorm().train()
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(model):
            raise RuntimeError("inside")
    assert all(modes(model).values()) and torch.is_grad_enabled()


# ---------------------------------------------------------------------------------------------- probabilities


def assert_frequency(observed: int, n: int, probability: float) -> None:
    """``observed`` of ``n`` within 5 standard deviations of the binomial mean ``n * probability``."""
    sd = math.sqrt(n * probability * (1 - probability))
    assert abs(observed - n * probability) <= 5 * sd + 1, (observed, n * probability, sd)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.8, 1.0])
def test_random_shift_shifts_a_sample_with_probability_p_uniformly_within_max_shift(p):
    """"p: probability that a sample is shifted at all", the shift uniform in [-max_shift, max_shift] per axis:
    P(dx = k) = p / 5 for k != 0 and 1 - p + p / 5 for k = 0 (max_dx = 2); P(no shift) = 1 - p + p / 15."""
    n, max_dx, max_dy = 30_000, 2, 1
    params = RandomShift((max_dx, max_dy), p=p, generator=torch.Generator().manual_seed(0)).sample(n)
    for values, reach in ((params.dx, max_dx), (params.dy, max_dy)):
        assert int(values.abs().max()) <= reach
        for k in range(-reach, reach + 1):
            single = p / (2 * reach + 1)
            assert_frequency(int((values == k).sum()), n, single + (1 - p if k == 0 else 0))
    cells = (2 * max_dx + 1) * (2 * max_dy + 1)
    assert_frequency(int(((params.dx == 0) & (params.dy == 0)).sum()), n, 1 - p + p / cells)


@pytest.mark.parametrize("max_shift", [1, 4, 16])
def test_protocol_offsets_are_uniform_over_their_range(max_shift):
    """The random protocols' offsets: every integer of [-max_shift, max_shift] with probability 1 / (2 max_shift + 1),
    over the dataset indices."""
    n = 40_000
    values = hashed_shifts(torch.arange(n), 7, max_shift)
    for k in range(-max_shift, max_shift + 1):
        assert_frequency(int((values == k).sum()), n, 1 / (2 * max_shift + 1))


# ---------------------------------------------------------------------------------------------- pairing


def test_paired_differences_pair_seed_s_of_one_row_with_seed_s_of_the_other():
    """Two seeds with different outcomes, listed in different orders in the two rows, and a seed only one row has:
    the difference is that of the same seeds' runs, image by image, over the common seeds (a pairing by position in
    the list, or one with the unmatched seed, gives other numbers)."""
    from sweep import paired_differences

    rng = np.random.default_rng(3)
    a = {seed: (rng.random(60) < 0.7).astype(int) for seed in (0, 1)}
    b = {seed: (rng.random(60) < 0.5).astype(int) for seed in (0, 1, 2)}
    results = [run_result("a", 1, {"correct": a[1].tolist()}), run_result("a", 0, {"correct": a[0].tolist()}),
               run_result("b", 2, {"correct": b[2].tolist()}), run_result("b", 0, {"correct": b[0].tolist()}),
               run_result("b", 1, {"correct": b[1].tolist()})]
    cell = paired_differences(results, [("a", "b")])["a − b"]["accuracy"]
    d = (np.stack([a[0], a[1]]) - np.stack([b[0], b[1]])).mean(axis=0)  # seed s against seed s, image by image
    half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
    assert cell["seeds"] == [0, 1]
    assert cell["difference"] == pytest.approx(100 * d.mean())
    assert cell["paired_ci95"] == pytest.approx([100 * (d.mean() - half), 100 * (d.mean() + half)])
    by_position = paired_difference_ci(np.stack([a[1], a[0]]), np.stack([b[2], b[0]]))  # the rows as listed
    assert by_position[0] != pytest.approx(cell["difference"])  # the seeds' outcomes differ: a wrong pairing shows
