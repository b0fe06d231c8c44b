"""The ``shift_consistency`` evaluate module: loads offline, equals the core metric, documented card runs."""
from __future__ import annotations

import doctest
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from augshift.intervals import proportion_ci
from augshift.report import agreement_counts, consistency_from_predictions
from augshift.integrations.evaluate import METRIC_PATH


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def metric(no_network):
    import evaluate

    return evaluate.load(METRIC_PATH)


def test_loads_offline_and_equals_the_core_metric_on_random_predictions(metric):
    rng = np.random.default_rng(0)
    pred_a, pred_b, refs = (rng.integers(0, 10, 1000) for _ in range(3))
    pred_b[:700] = pred_a[:700]  # ~73% agreement, so that the value is not trivial
    result = metric.compute(predictions=pred_a, shifted_predictions=pred_b, references=refs)

    a, b, r = (torch.from_numpy(x) for x in (pred_a, pred_b, refs))
    n, agree, correct = agreement_counts(a, b, r)
    # rates as fractions, like evaluate's accuracy; the core's percent divided by 100
    assert result["consistency"] == agree / n == np.mean(pred_a == pred_b)
    assert result["consistency"] == pytest.approx(consistency_from_predictions(a, b) / 100)
    assert result["accuracy"] == correct / n == np.mean(pred_a == refs)
    assert result["samples"] == n == 1000
    assert result["consistency_ci95"] == [bound / 100 for bound in proportion_ci(agree, n)]
    assert result["accuracy_ci95"] == [bound / 100 for bound in proportion_ci(correct, n)]
    assert result["consistency_ci95"][0] < result["consistency"] < result["consistency_ci95"][1]


def test_batches_tensors_and_optional_references(metric):
    pred_a, pred_b = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([0, 1, 9, 3, 9, 5])
    for a, b in zip(pred_a.split(4), pred_b.split(4)):
        metric.add_batch(predictions=a, shifted_predictions=b)
    batched = metric.compute()
    assert batched["consistency"] == pytest.approx(4 / 6) and batched["samples"] == 6
    assert "accuracy" not in batched  # no references: consistency only
    assert metric.compute(predictions=pred_a, shifted_predictions=pred_b) == batched

    metric.add_batch(predictions=[1, 2], shifted_predictions=[1, 2], references=[1, 0])
    metric.add_batch(predictions=[3], shifted_predictions=[3])
    with pytest.raises(ValueError, match="references were given for 2 of 3 samples"):
        metric.compute()


def card_code(card: Path) -> str:
    """The fenced python blocks of the metric card, in order."""
    return "\n".join(re.findall(r"```python\n(.*?)```", card.read_text(), re.S))


def test_metric_card_has_evaluate_sections_and_its_examples_run(no_network):
    card = Path(METRIC_PATH) / "README.md"
    text = card.read_text()
    assert text.startswith("---\n") and "\ntags:\n- evaluate\n- metric\n" in text  # hub metadata header
    for section in ("# Metric Card for Shift Consistency", "## Metric Description", "## How to Use",
                    "### Inputs", "### Output Values", "### Examples", "## Limitations and Bias", "## Citation"):
        assert f"\n{section}\n" in text, section
    test = doctest.DocTestParser().get_doctest(card_code(card), {}, card.name, str(card), 0)
    assert len(test.examples) >= 8
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_worst_configuration_against_a_hand_count_and_named_protocols(no_network):
    import evaluate

    rng = np.random.default_rng(1)
    first, refs = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    views = [[int(a)] * 4 if i % 3 else [int(a), int(a), (int(a) + 1) % 3, int(a)] for i, a in enumerate(first)]
    worst = evaluate.load(METRIC_PATH, "worst")
    result = worst.compute(predictions=first, shifted_predictions=views, references=refs, protocol="random_worst")
    consistent = [all(v == a for v in row) for a, row in zip(first, views)]
    robust = [c and a == r for c, a, r in zip(consistent, first, refs)]
    assert result["consistency"] == sum(consistent) / 200 and 0 < sum(consistent) < 200
    assert result["accuracy"] == sum(robust) / 200 and result["protocol"] == "random_worst"
    with pytest.raises(ValueError, match="not one of"):
        worst.compute(predictions=[1], shifted_predictions=[[1]], protocol="random")
    pair = evaluate.load(METRIC_PATH)
    assert pair.compute(predictions=[1, 2], shifted_predictions=[1, 0], protocol="crop")["protocol"] == "crop"
    with pytest.raises(ValueError, match="worst configuration"):
        pair.compute(predictions=[1], shifted_predictions=[1], protocol="crop_worst")


@pytest.mark.parametrize("bad", [1.5, float("nan"), "1", -1, True])
def test_what_is_not_a_class_index_is_refused(metric, bad):
    """``datasets`` would store 1.5 as 1 and count it as agreeing: every input must be a whole number >= 0."""
    for field in ("predictions", "shifted_predictions", "references"):
        inputs = {"predictions": [1, 2], "shifted_predictions": [1, 2], "references": [1, 2]}
        inputs[field] = [bad, 2]
        with pytest.raises(ValueError, match=f"{field} must be class indices"):
            metric.compute(**inputs)
    with pytest.raises(ValueError, match="prediction must be class indices"):
        metric.add(prediction=bad, shifted_prediction=1, reference=1)
    assert metric.compute(predictions=[1.0, 2], shifted_predictions=torch.tensor([1, 0]))["consistency"] == 0.5
