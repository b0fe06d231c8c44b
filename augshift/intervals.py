"""95% intervals for the counts the metrics produce: Wilson for one proportion, Newcombe for a difference of two
independent proportions, and the paired interval for a difference of two models scored on the same images."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def proportion_ci(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (percent) for `successes` out of `total` (95% for z=1.96)."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # the interval always holds p (at p = 0 or 1 rounding could leave the bound a hair inside it)
    return (100.0 * min(p, max(0.0, centre - half)), 100.0 * max(p, min(1.0, centre + half)))


def difference_ci(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% interval (points) of the difference of two proportions `k1/n1 - k2/n2` (Newcombe, from Wilson).

    Treats the two as independent samples; for two models on the same test images this is conservative
    (`paired_difference_ci` is the interval for them).
    """
    p1, p2 = 100.0 * k1 / n1, 100.0 * k2 / n2
    (l1, u1), (l2, u2) = proportion_ci(k1, n1), proportion_ci(k2, n2)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def paired_difference_ci(a: Sequence, b: Sequence, z: float = 1.96) -> tuple[float, float, float]:
    """The difference (points) of two models' rates on the same images, with its paired 95% interval.

    Each image's outcome under `a` is compared with its own outcome under `b`: only the images on which the two
    differ move the difference, so the interval is much narrower than `difference_ci`'s when the models mostly
    agree (McNemar's setting). With several seeds, seed `s` of `a` is paired with seed `s` of `b` and each
    image's difference is averaged over the seeds: `d_i = mean_s(a[s, i] - b[s, i])`; the interval is
    `mean(d) +- z * sd(d) / sqrt(N)` over the N images (for one seed: the Wald interval of paired proportions,
    `(n10 - n01) / N` with variance `((n10 + n01) / N - d^2) / (N - 1)`). It says how sure the difference is over
    the images; the spread from one training seed to another is not in it.

    Args:
        a: 0/1 outcomes (N,) of one model, or (S, N) of S seeds, on images `0 .. N-1`.
        b: the other model's, the same shape, on the same images (the same views).
        z: the normal quantile (1.96: 95%).

    Returns:
        `(difference, low, high)` in points (percent of the images).

    Examples:
        >>> a = [1, 1, 1, 0, 1, 0, 1, 1]  # 6 of 8 right
        >>> b = [1, 1, 0, 0, 1, 0, 1, 0]  # 4 of 8: the two differ on 2 images, both in a's favour
        >>> [round(v, 1) for v in paired_difference_ci(a, b)]
        [25.0, -7.1, 57.1]
    """
    rows_a, rows_b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if rows_a.shape != rows_b.shape or rows_a.ndim != 2:
        raise ValueError(f"paired outcomes must have the same shape, (N,) or (S, N): seed s of one model paired with "
                         f"seed s of the other, on the same N images; got {rows_a.shape} and {rows_b.shape}")
    if rows_a.shape[1] < 2:
        raise ValueError("a paired interval needs at least 2 images")
    d = (rows_a - rows_b).mean(axis=0)
    half = z * float(d.std(ddof=1)) / math.sqrt(len(d))
    mean = float(d.mean())
    return 100.0 * mean, 100.0 * (mean - half), 100.0 * (mean + half)
