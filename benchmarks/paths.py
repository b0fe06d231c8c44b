"""Where the benchmark scripts write (results committed, run folders not) and read the local CIFAR-10 copy."""
from __future__ import annotations

import os
from pathlib import Path

from augshift.data.splits import default_source

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "runs"  # checkpoints and per-run results (not committed)
SHARED_CIFAR10 = Path(os.environ.get("AUGSHIFT_CIFAR10", ROOT.parent / "shared" / "data" / "cifar10"))


def source_of(dataset: str) -> str:
    """`dataset` (cifar10 / cifar100) from the shared local copy when present, else from the hub."""
    return default_source(dataset, SHARED_CIFAR10 if dataset == "cifar10" else None)
