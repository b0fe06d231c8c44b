"""Shift consistency as a Hugging Face `evaluate` metric module.

`evaluate.load(METRIC_PATH)` loads it from this package's `shift_consistency` folder, offline.
"""
from __future__ import annotations

import os

METRIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shift_consistency")

__all__ = ["METRIC_PATH"]
