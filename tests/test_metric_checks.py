"""`ShiftConsistency`'s checks and bookkeeping, each refusal matched whole, and `evaluate_shift_consistency`
against the metric driven by hand (`tests/test_metrics.py` holds the counts against hand counts)."""
from __future__ import annotations

import re

import pytest
import torch

from augshift.errors import UsageError
from augshift.metrics import ShiftConsistency, evaluate_shift_consistency
from augshift.protocols import protocol_names
from helpers import TinyCNN


def batch(n: int = 4, *, seed: int = 0, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=generator), torch.randint(0, 4, (n,), generator=generator)


@pytest.mark.parametrize("options,error,message", [
    (dict(max_shift=2.0), TypeError, r"max_shift must be an int \(the same range on both axes\), got 2.0"),
    (dict(max_shift=True), TypeError, r"max_shift must be an int \(the same range on both axes\), got True"),
    (dict(seed=1.5), TypeError, r"seed must be an int, got 1.5"),
    (dict(chunk_size=True), TypeError, r"chunk_size must be an int, got True"),
    (dict(chunk_size=0), UsageError, r"chunk_size \(images per forward\) must be >= 1, got 0"),
    (dict(protocols="random"), TypeError,
     r"protocols must be a sequence of names, e.g. \('random',\), not the string 'random'"),
    (dict(protocols=("random", "nope")), UsageError,
     rf"unknown protocol\(s\) \['nope'\]; supported: {', '.join(protocol_names())}"),
    (dict(curve_max_shift=1, curve_offsets=(0, 1)), UsageError,
     r"give curve_max_shift \(a dense grid\) or curve_offsets, not both"),
    (dict(protocols=("crop",)), UsageError,
     r"the crop protocol needs crop_size, the model's input size \(--image-size\), and larger images \(--crop-from\)"),
    (dict(crop_size=0), UsageError, r"crop_size must be >= 1, got 0"),
    (dict(max_shift=0, protocols=("random", "circular_full", "circular")), UsageError,
     r"max_shift=0 gives the random, circular protocol\(s\) two identical views \(100 % by construction\): use a "
     r"max_shift of at least 1"),
], ids=["float-shift", "bool-shift", "seed", "bool-chunk", "zero-chunk", "string-protocols", "unknown", "both-curves",
        "crop", "zero-crop", "zero-shift"])
def test_each_bad_setting_is_refused_in_one_line(options, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        ShiftConsistency(**options)


def test_the_smallest_settings_are_accepted_and_kept():
    assert ShiftConsistency(crop_size=1, protocols=()).crop_size == 1
    metric = ShiftConsistency(chunk_size=1, crop_size=8, max_shift=1, seed=3, protocols=("random", "random"))
    assert metric.settings == {"max_shift": 1, "mode": "zeros", "protocols": ("random",), "crop_size": 8, "seed": 3,
                               "curve_offsets": None}
    images, targets = batch()
    metric.update(TinyCNN(), images, targets)  # one image per forward
    assert metric.compute().samples == 4


def test_the_model_must_give_finite_class_logits_of_two_classes_or_more():
    images, targets = batch(2)
    cases = [(lambda x: TinyCNN()(x).unsqueeze(-1), r"the model returned \(2, 4, 1\) for 2 images, not class logits "
              r"\(2, K\): shift consistency scores classifiers \(for a segmenter, use augshift attack / "
              r"segmentation_scores\)"),
             (lambda x: TinyCNN(num_classes=1)(x), r"the model has a single output column: its argmax is class 0 for "
              r"every view, so accuracy and consistency would be 100 % by construction; score a classifier with K "
              r">= 2 logits"),
             (lambda x: TinyCNN()(x) * float("nan"), r"the model returned non-finite logits \(NaN or inf\): its "
              r"predictions, and so its shift consistency, are undefined; check the weights \(a diverged run\?\) and "
              r"the inputs \(their normalisation: a tiny --std overflows\)")]
    for model, message in cases:
        with pytest.raises(UsageError, match=f"^{message}$"):
            metric = ShiftConsistency(protocols=("random",), chunk_size=2)
            metric.update(model, images, torch.zeros(2, dtype=torch.long))


def test_a_curve_must_fit_the_images():
    images, targets = batch(2, size=4)
    ShiftConsistency(protocols=(), curve_max_shift=3).update(TinyCNN(), images, targets)  # 3 px on 4 px: fits
    with pytest.raises(UsageError, match=r"^the curve's shifts up to 4 px do not fit images of H=4, W=4: use a smaller "
                                         r"curve_max_shift \(or curve_offsets\)$"):
        ShiftConsistency(protocols=(), curve_offsets=(-4, 0)).update(TinyCNN(), images, targets)


def test_flags_merge_only_into_a_metric_made_alike():
    images, targets = batch()
    flags = ShiftConsistency(seed=1).flags(TinyCNN(), images, targets)
    metric = ShiftConsistency(seed=0)
    with pytest.raises(UsageError, match=r"^these flags come from a ShiftConsistency made with other settings than "
                                         r"this one's \(max_shift=4, mode=zeros, protocols=\('random', 'circular'\), "
                                         r"crop_size=None, seed=0, curve_offsets=None\): merge only metrics made "
                                         r"alike$"):
        metric.add(flags)
    with pytest.raises(TypeError, match=r"^flags must be the dict that ShiftConsistency.flags returns, got list$"):
        metric.add([flags])
    without_a_key = {k: v for k, v in ShiftConsistency(seed=0).flags(TinyCNN(), images, targets).items()
                     if k != "fingerprint"}
    with pytest.raises(UsageError, match="^these flags come from a ShiftConsistency made with other settings"):
        metric.add(without_a_key)


def test_samples_without_indices_are_numbered_from_zero_and_a_metric_without_any_reports_none():
    empty = ShiftConsistency().compute()  # a process given no batch adds no row to the others'
    assert repr(empty) == "ConsistencyReport(samples=0)" and empty.outcomes["index"].numel() == 0
    metric = ShiftConsistency()
    for seed in (0, 1):
        metric.update(TinyCNN(), *batch(3, seed=seed))
    assert metric.compute().outcomes["index"].tolist() == [0, 1, 2, 3, 4, 5]
    assert sorted(metric.compute().outcomes) == ["agree_circular", "agree_random", "correct", "index"]


def test_an_index_given_to_two_different_images_is_refused_within_float_noise():
    images, targets = batch(4)
    images[1] *= 1000 / images[1].sum()  # image 1's pixels sum to 1,000 (its fingerprint)

    def conflict(changed: torch.Tensor) -> None:
        metric = ShiftConsistency(protocols=("random",))
        metric.update(TinyCNN(), images, targets, torch.arange(4))
        metric.update(TinyCNN(), changed, targets[1:2], torch.tensor([1]))  # index 1 again
        metric.compute()

    noise = images[1:2].clone()
    noise[0, 0, 0, 0] += 1e-4  # a sum off by 1e-7 of itself (within 1e-6): the same image decoded elsewhere
    conflict(noise)
    for change in (5e-3, 1.0):  # off by 5e-6 and 1e-3 of the sum: another image
        other = images[1:2].clone()
        other[0, 0, 0, 0] += change
        with pytest.raises(UsageError, match=r"^dataset index 1 was given to two different samples \(another "
                                             r"fingerprint\): indices must identify samples \(the dataset's own "
                                             r"index, not a position in the batch\)$"):
            conflict(other)
    blank = torch.zeros(1, 3, 8, 8)
    metric = ShiftConsistency(protocols=("random",))
    metric.update(TinyCNN(), blank, targets[:1], torch.tensor([0]))
    blank[0, 0, 0, 0] = 5e-7  # a blank image up to float noise: the same sample
    metric.update(TinyCNN(), blank, targets[:1], torch.tensor([0]))
    assert metric.compute().samples == 1


def test_evaluate_is_the_metric_updated_batch_by_batch_with_the_indices_given(capsys):
    model, (images, targets) = TinyCNN(), batch(6)
    by_hand = ShiftConsistency(max_shift=2, seed=5)
    by_hand.update(model, images[:3], targets[:3], torch.tensor([4, 0, 2]))
    by_hand.update(model, images[3:], targets[3:], torch.tensor([1, 5, 3]))
    expected = by_hand.compute()
    batches = [(images[:3], targets[:3], torch.tensor([4, 0, 2])), (images[3:], targets[3:], torch.tensor([1, 5, 3])),
               (images[:3], targets[:3], torch.tensor([4, 0, 2]))]  # a repeated batch: counted once by its indices
    report = evaluate_shift_consistency(model, batches, max_shift=2, seed=5)
    assert report.to_dict() == expected.to_dict() and report.samples == 6
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    unindexed = evaluate_shift_consistency(model, [(images[:3], targets[:3]), (images[:3], targets[:3])],
                                           max_shift=2, seed=5, progress=True)
    assert unindexed.samples == 6  # numbered in order: the repeat is new samples
    assert re.search(r"(^|\r)shift consistency: ", capsys.readouterr().err)  # the bar, named
