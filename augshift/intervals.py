"""95% intervals for the counts the metrics produce: Wilson for one proportion, Newcombe for a difference."""
from __future__ import annotations

import math


def proportion_ci(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (percent) for ``successes`` out of ``total`` (95% for z=1.96)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # the interval always holds p (at p = 0 or 1 rounding could leave the bound a hair inside it)
    return (100.0 * min(p, max(0.0, centre - half)), 100.0 * max(p, min(1.0, centre + half)))


def difference_ci(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% interval (points) of the difference of two proportions ``k1/n1 - k2/n2`` (Newcombe, from Wilson).

    Treats the two as independent samples; for two models on the same test images this is conservative.
    """
    p1, p2 = 100.0 * k1 / n1, 100.0 * k2 / n2
    (l1, u1), (l2, u2) = proportion_ci(k1, n1), proportion_ci(k2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)
