"""A 2-process (gloo, CPU) run of the invariance benchmark, under torchrun and under accelerate launch,
evaluates exactly like one process on its checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import free_port
import torch

from augshift.distributed import Dist
from augshift.models import create_model
from sweep import evaluate_model, load_data

ROOT = Path(__file__).resolve().parents[1]


LAUNCHERS = {
    "torchrun": ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    "accelerate": ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_cpu_threads_per_process", "1", "--main_process_port", "{port}"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_run_equals_single_process_evaluation(tmp_path, cifar10_dir, launcher):
    work, out = tmp_path / "work", tmp_path / "out"
    command = [
        sys.executable, *[w.format(port=free_port()) for w in LAUNCHERS[launcher]],
        str(ROOT / "benchmarks" / "invariance.py"), "--preset", "quick", "--data", f"cifar10={cifar10_dir}",
        "--device", "cpu",
        "--models", "resnet18+augshift", "--seeds", "0", "--train-limit", "96", "--eval-limit", "101", "--epochs", "1",
        "--batch-size", "32", "--curve-size", "11", "--threads", "1", "--workdir", str(work), "--out", str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, cwd=ROOT, env=env, timeout=600)
    summary = json.loads((out / "results.json").read_text())
    assert summary["command"].startswith("torchrun --nproc_per_node 2 ")
    (two,) = summary["datasets"]["cifar10"]["runs"]
    assert two["world_size"] == 2 and two["counts"]["samples"] == 101 and two["curve_samples"] == 11

    # one process, fresh model from the checkpoint, the same evaluation function
    run_dir = work / "cifar10" / "resnet18+augshift_seed0"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    model = create_model("resnet18", 10, stem=two["stem"])
    model.load_state_dict(state["trainer"]["model"])
    data = load_data(str(cifar10_dir), {"train_size": 96, "test_size": 101, "curve_size": 11}, cache=work / "cache")
    one = evaluate_model(model, data, Dist(), progress=False)
    for key in ("accuracy", "accuracy_ci95", "consistency_random", "consistency_circular", "counts",
                "curve_consistency", "curve_accuracy", "curve_samples"):
        assert two[key] == (list(one[key]) if isinstance(one[key], tuple) else one[key]), key
