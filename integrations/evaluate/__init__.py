"""Shift consistency as a Hugging Face `evaluate` metric module.

`evaluate.load(METRIC_PATH)` loads it from this package's `shift_consistency` folder, offline.
"""
from __future__ import annotations

import os

METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shift_consistency")
"""The folder of the `evaluate` module: `evaluate.load(METRIC_PATH)` compares pairs of predictions,
`evaluate.load(METRIC_PATH, "worst")` a grid of them per image; its results are rates in [0, 1].

Examples:
    >>> import evaluate
    >>> metric = evaluate.load(METRIC_PATH)
    >>> result = metric.compute(predictions=[0, 1, 2, 3], shifted_predictions=[0, 1, 2, 0], references=[0, 1, 1, 3])
    >>> result["consistency"], result["accuracy"], result["samples"]
    (0.75, 0.75, 4)
"""

__all__ = ["METRIC_PATH"]
