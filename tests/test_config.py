"""AugShiftConfig: one source of the AugShift options, their validation, and the argparse helper."""
from __future__ import annotations

import argparse
import math

import pytest
import torch

from augshift import AugShift, AugShiftConfig, add_augshift_arguments
from augshift.config import DEFAULTS


@pytest.mark.parametrize("bad, error, fragment", [
    (dict(max_shift=4.0), TypeError, "whole number of pixels"),
    (dict(max_shift=-1), ValueError, ">= 0"),
    (dict(max_shift=(1, 2, 3)), TypeError, "pair of ints"),
    (dict(mode="wrap"), ValueError, "unknown shift mode .wrap.; supported: zeros"),
    (dict(distance="kl"), ValueError, "supported: mse, l1, cosine"),
    (dict(weight=math.nan), ValueError, "finite"),
    (dict(weight=-0.5), ValueError, ">= 0"),
    (dict(weight="1"), TypeError, "number"),
])
def test_invalid_options_are_refused_with_the_fix(bad, error, fragment):
    with pytest.raises(error, match=fragment):
        AugShiftConfig(**bad)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    with pytest.raises(error, match=fragment):  # the wrapper validates through the same config
        AugShift(model, classifier="1", **bad)


def test_argparse_helper_round_trips_with_and_without_prefix():
    for prefix in ("", "augshift-"):
        parser = argparse.ArgumentParser()
        add_augshift_arguments(parser, prefix=prefix, defaults=AugShiftConfig(distance="mse"))
        assert AugShiftConfig.from_args(parser.parse_args([]), prefix=prefix) == AugShiftConfig(distance="mse")
        args = parser.parse_args([f"--{prefix}max-shift", "2", f"--{prefix}weight", "0.5", f"--{prefix}normalize",
                                  f"--{prefix}mode", "circular"])
        assert AugShiftConfig.from_args(args, prefix=prefix) == AugShiftConfig(
            max_shift=2, mode="circular", weight=0.5, distance="mse", normalize=True)


def test_augshift_takes_the_options_or_a_whole_config():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    by_options = AugShift(model, classifier="1", max_shift=2, weight=0.3)
    by_config = AugShift(model, classifier="1", config=AugShiftConfig(max_shift=2, weight=0.3))
    assert by_options.objective.config == by_config.objective.config == AugShiftConfig(max_shift=2, weight=0.3)
    assert AugShift(model, classifier="1").objective.config == DEFAULTS


def test_config_together_with_an_option_is_refused_not_silently_overridden():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    with pytest.raises(ValueError, match=r"pass either config= or the options \(weight\), not both"):
        AugShift(model, classifier="1", config=AugShiftConfig(weight=1.0), weight=3.0)
    with pytest.raises(ValueError, match=r"options \(max_shift, distance\)"):
        AugShift(model, classifier="1", config=AugShiftConfig(), max_shift=2, distance="mse")


def test_every_part_validates_an_option_with_the_configs_own_check():
    """One validation per option: the shift, the loss, the metric, the APS padding and the config refuse a bad value
    with the same message."""
    from augshift import ConsistencyLoss, RandomShift, ShiftConsistency, shift
    from augshift.models.aps import ApsDown

    with pytest.raises(ValueError) as reference:
        AugShiftConfig(mode="wrap")
    for refuse in (lambda: RandomShift(2, mode="wrap"), lambda: shift(torch.zeros(1, 1, 4, 4), 1, 1, "wrap"),
                   lambda: ShiftConsistency(mode="wrap")):
        with pytest.raises(ValueError) as caught:
            refuse()
        assert str(caught.value) == str(reference.value)
    with pytest.raises(ValueError, match="unknown padding_mode 'wrap'; supported: zeros, circular"):
        ApsDown(2, padding_mode="wrap")
    with pytest.raises(ValueError) as reference:
        AugShiftConfig(distance="kl")
    with pytest.raises(ValueError) as caught:
        ConsistencyLoss("kl")
    assert str(caught.value) == str(reference.value)
    with pytest.raises(TypeError, match="whole number of pixels"):
        RandomShift(4.0)


def test_the_row_syntax_builds_a_config_through_one_path():
    assert AugShiftConfig.parse("mse@3") == AugShiftConfig(distance="mse", weight=3.0)
    assert AugShiftConfig.parse("@0.5", base=AugShiftConfig(max_shift=2)) == AugShiftConfig(max_shift=2, weight=0.5)
    assert AugShiftConfig.parse("") == AugShiftConfig()
    with pytest.raises(ValueError, match="the weight after '@' must be a number"):
        AugShiftConfig.parse("mse@x")
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        AugShiftConfig.parse("mse@-1")
    assert AugShiftConfig(max_shift=2, weight=3.0, distance="mse").shift_only() == AugShiftConfig(max_shift=2)
