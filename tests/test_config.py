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
    (dict(mode="wrap"), ValueError, "supported modes"),
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
