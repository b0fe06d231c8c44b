"""Per-image outcomes in a run's `result.json`: which test images a model classified correctly and on which its
views agreed, one bit per image, so that two rows evaluated on the same images can be compared image by image
(paired intervals, `augshift.intervals.paired_difference_ci`) and a run's per-epoch trace can be resampled over
images (`sweep.matched`)."""
from __future__ import annotations

import base64

import numpy as np
import torch

from augshift.errors import UsageError
from augshift.report import ConsistencyReport


def pack_outcomes(report: ConsistencyReport) -> dict:
    """The report's per-sample outcomes as JSON: `samples` and one base64 bit string per count name.

    Args:
        report: a `ConsistencyReport` of the images `0 .. N-1` of an evaluation set (each counted once, as
            `augshift.ShiftConsistency.compute` gives them), with its `outcomes`.

    Returns:
        `{"samples": N, "correct": str, "agree_<protocol>": str, ...}`; `unpack_outcomes` reads it back.

    Examples:
        >>> report = ConsistencyReport(3, 2, {"random": 1}, outcomes={
        ...     "index": torch.arange(3), "correct": torch.tensor([True, False, True]),
        ...     "agree_random": torch.tensor([False, False, True])})
        >>> packed = pack_outcomes(report)
        >>> packed["samples"], unpack_outcomes(packed)["correct"].tolist()
        (3, [True, False, True])
    """
    index = report.outcomes.get("index")
    if index is None or not torch.equal(index.cpu(), torch.arange(report.samples)):
        raise UsageError("per-image outcomes are kept for evaluations of the images 0 .. N-1 of a set (each once): "
                         "this report has other indices")
    packed: dict = {"samples": report.samples}
    for name, bits in report.outcomes.items():
        if name != "index":
            packed[name] = base64.b64encode(np.packbits(bits.cpu().numpy().astype(bool)).tobytes()).decode("ascii")
    return packed


def unpack_outcomes(packed: dict) -> dict[str, np.ndarray]:
    """`pack_outcomes`'s JSON back to boolean arrays (N,), by count name.

    Args:
        packed: `{"samples": N, <name>: base64 bits, ...}`.

    Returns:
        `{name: bool array (N,)}` (`samples` left out).

    Examples:
        >>> unpack_outcomes({"samples": 2, "correct": "gA=="})["correct"].tolist()
        [True, False]
    """
    n = packed["samples"]
    return {name: np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=n).astype(bool)
            for name, text in packed.items() if name != "samples"}
