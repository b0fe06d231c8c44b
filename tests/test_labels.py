"""Labels outside [0, K): refused in one line by the metric's check and by AugShift's training step."""
import pytest
import torch
from torch import nn

from augshift import AugShift, AugShiftObjective, PooledFeatures, UsageError
from augshift.labels import check_labels
from augshift.models.small_cnn import create_small_cnn


def test_check_labels_names_the_labels_outside_the_range_and_what_minus_one_means():
    check_labels(torch.tensor([0, 1, 2]), 3)  # every label in range: no error
    with pytest.raises(UsageError) as refused:
        check_labels(torch.tensor([2, 3, -1, 7, 3]), 3)
    message = str(refused.value)
    assert message.startswith("labels must be class indices in [0, 3) for this 3-class model, got [-1, 3, 7]")
    assert "-1 marks a split whose labels are hidden" in message and "\n" not in message
    with pytest.raises(UsageError) as refused:
        check_labels(torch.tensor([5]), 3)
    assert "hidden" not in str(refused.value)


@pytest.mark.parametrize("label", [-1, 10, 11])
def test_augshift_refuses_a_training_batch_with_a_label_outside_the_classes(label):
    torch.manual_seed(0)
    model = AugShift(create_small_cnn(10, width=4))
    with pytest.raises(UsageError, match=rf"got \[{label}\]"):
        model(torch.randn(3, 3, 16, 16), torch.tensor([0, label, 9]))


def test_augshift_keeps_cross_entropy_ignore_index_as_a_skipped_sample():
    torch.manual_seed(0)
    net = create_small_cnn(10, width=4)
    objective = AugShiftObjective(criterion=nn.CrossEntropyLoss(ignore_index=-100))
    images, targets = torch.randn(3, 3, 16, 16), torch.tensor([4, -100, 9])
    result = objective(net, PooledFeatures(net), images, targets)
    kept = torch.tensor([True, False, True]).repeat(2)  # both views of the samples that are not ignored
    expected = nn.functional.cross_entropy(result["logits"][kept], targets.repeat(2)[kept])
    torch.testing.assert_close(result["criterion"], expected)


def test_soft_targets_are_not_read_as_class_indices():
    torch.manual_seed(0)
    model = AugShift(create_small_cnn(10, width=4))
    soft = torch.full((2, 10), -0.1)  # negative mass (label smoothing gone wrong) is the criterion's business
    soft[:, 0] = 1.9
    result = model(torch.randn(2, 3, 16, 16), soft)
    torch.testing.assert_close(result["criterion"], nn.functional.cross_entropy(result["logits"], soft.repeat(2, 1)))


def test_on_the_cpu_every_training_batch_is_checked_not_only_the_first():
    torch.manual_seed(0)
    model = AugShift(create_small_cnn(10, width=4))
    model(torch.randn(3, 3, 16, 16), torch.tensor([0, 1, 9]))  # a first batch in range
    with pytest.raises(UsageError, match=r"got \[12\]"):
        model(torch.randn(3, 3, 16, 16), torch.tensor([0, 12, 9]))
