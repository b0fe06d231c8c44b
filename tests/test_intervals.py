"""The intervals (`augshift.intervals`) against published values and at their edges."""
from __future__ import annotations

import math

import numpy as np
import pytest

from augshift.intervals import difference_ci, paired_difference_ci, proportion_ci

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17: 857-872,
# Table II, method 3 (Wilson score, no continuity correction), as proportions
WILSON_PUBLISHED = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)), ((0, 20), (0.0, 0.1611)),
                    ((1, 29), (0.0061, 0.1718))]
# Newcombe (1998), "Interval estimation for the difference between independent proportions", Stat. Med. 17:
# 873-890, Table II, method 10 (score, from the Wilson intervals), examples (a), (b), (e), (f)
NEWCOMBE_PUBLISHED = [((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)),
                      ((5, 56, 0, 29), (-0.0381, 0.1926)), ((0, 10, 0, 20), (-0.1611, 0.2775))]


@pytest.mark.parametrize("counts,published", WILSON_PUBLISHED)
def test_the_wilson_interval_is_newcombes_published_one(counts, published):
    low, high = proportion_ci(*counts)
    assert (round(low / 100, 4), round(high / 100, 4)) == published


@pytest.mark.parametrize("counts,published", NEWCOMBE_PUBLISHED)
def test_the_difference_interval_is_newcombes_published_one(counts, published):
    low, high = difference_ci(*counts)
    assert (round(low / 100, 4), round(high / 100, 4)) == published


def test_all_or_none_right_gives_exact_bounds_and_no_count_gives_nan():
    for n in range(1, 200):  # in floating point the upper Wilson bound of n / n exceeds 1 for some n (5, 19, ...)
        assert proportion_ci(n, n)[1] == 100.0 and proportion_ci(0, n)[0] == 0.0
    assert proportion_ci(1, 1) == pytest.approx((100.0 / (1 + 1.96 ** 2), 100.0))  # one image: a real interval
    assert all(math.isnan(bound) for bound in proportion_ci(0, 0))


def test_paired_outcomes_may_be_booleans_and_two_images_are_enough():
    a, b = [True, True, False, True], [True, False, False, False]
    assert paired_difference_ci(a, b) == pytest.approx(paired_difference_ci(np.array(a, float), np.array(b, float)))
    # two images, differences 0 and 1: mean 0.5, sd 1 / sqrt(2), half width 1.96 * sd / sqrt(2) = 0.98
    assert paired_difference_ci([1, 1], [1, 0]) == pytest.approx((50.0, 50.0 - 98.0, 50.0 + 98.0))
    with pytest.raises(ValueError, match="^a paired interval needs at least 2 images$"):
        paired_difference_ci([1], [0])
