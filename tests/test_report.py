"""What an evaluation counted (`augshift.report`): the agreement counts against a hand count, and the report's
percentages, intervals and curve against the counts it was given."""
from __future__ import annotations

import pytest
import torch

from augshift.errors import UsageError
from augshift.intervals import proportion_ci
from augshift.report import ConsistencyReport, agreement_counts, consistency_from_predictions


def test_agreement_counts_are_the_hand_counts():
    a, b, labels = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([0, 2, 2, 2, 0]), torch.tensor([0, 1, 1, 2, 2])
    assert agreement_counts(a, b, labels) == (5, 3, 3)  # agree at 0, 2, 3; a right at 0, 1, 3
    assert agreement_counts(a, b) == (5, 3, 0)  # no references: nothing counted as correct
    assert consistency_from_predictions(a, b) == 60.0


def test_predictions_of_other_shapes_and_no_predictions_are_refused():
    cases = ((torch.zeros(3), torch.zeros(2), r"\(3,\) and \(2,\)"), (torch.zeros(2, 2), torch.zeros(2, 2),
                                                                        r"\(2, 2\) and \(2, 2\)"))
    for a, b, shapes in cases:
        with pytest.raises(ValueError, match=rf"^predictions must both have shape \(N,\), got {shapes}$"):
            agreement_counts(a, b)
    with pytest.raises(ValueError, match="^no predictions: consistency of an empty set is undefined$"):
        consistency_from_predictions(torch.zeros(0), torch.zeros(0))


def test_a_report_of_no_samples_says_so_and_refuses_percentages():
    empty = ConsistencyReport(0, 0, {"random": 0})
    assert repr(empty) == "ConsistencyReport(samples=0)"
    with pytest.raises(UsageError, match=r"^no samples were evaluated \(the data gave no batches\): accuracy and "
                                         r"consistency are undefined; check the split and its size$"):
        empty.accuracy
    assert repr(ConsistencyReport(1, 1, {"random": 0})) == (
        "ConsistencyReport(accuracy=100.00%, consistency={'random': 0.00%}, samples=1)")


def test_to_dict_gives_every_count_as_a_percentage_with_its_interval_and_the_curve():
    report = ConsistencyReport(8, 6, {"random": 7, "random_worst": 5}, robust={"random_worst": 4},
                               curve_agree=torch.tensor([[8, 6], [4, 2]]), curve_correct=torch.tensor([[6, 5], [3, 1]]),
                               curve_offsets=(0, 1))
    assert report.consistency() == 87.5  # the default protocol is random
    assert report.to_dict() == {
        "samples": 8, "accuracy": 75.0, "accuracy_ci95": proportion_ci(6, 8),
        "consistency_random": 87.5, "consistency_random_ci95": proportion_ci(7, 8),
        "consistency_random_worst": 62.5, "consistency_random_worst_ci95": proportion_ci(5, 8),
        "accuracy_random_worst": 50.0, "accuracy_random_worst_ci95": proportion_ci(4, 8),
        "curve_offsets": [0, 1], "curve_consistency": [[100.0, 75.0], [50.0, 25.0]],
        "curve_accuracy": [[75.0, 62.5], [37.5, 12.5]],
    }
