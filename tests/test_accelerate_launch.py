"""The Accelerate example loop on two CPU processes: trains, evaluates, resumes, and agrees with one process."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import free_port
from torch.utils.data import DataLoader

from augshift import evaluate_shift_consistency
from augshift.integrations.accelerate.checkpoints import weights_digest
from augshift.data import Normalization
from augshift.data.hub import load_image_dataset, with_tensors

TRAIN_PY = Path(__file__).resolve().parents[1] / "integrations" / "accelerate" / "train.py"
EVAL_SAMPLES = 100  # not a multiple of 2 processes x 16: the last batches are padded, then dropped by gather


def launch_two_processes(cifar10_dir: Path, output: Path, *extra: str) -> dict:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_cpu_threads_per_process", "1", "--main_process_port", str(free_port()), str(TRAIN_PY),
        "--cpu", "--data", str(cifar10_dir), "--model", "resnet18", "--train-limit", "128",
        "--eval-limit", str(EVAL_SAMPLES), "--batch-size", "16", "--eval-batch-size", "16", "--grad-accum", "2",
        "--lr", "0.05", "--output", str(output), *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads((output / "metrics.json").read_text())


def one_process_evaluation(cifar10_dir: Path, weights: Path) -> dict:
    """The core metric, one process, batch size 25, on the plain timm model loaded from ``weights``."""
    import timm
    from safetensors.torch import load_file

    model = timm.create_model("resnet18", num_classes=10)
    model.load_state_dict(load_file(str(weights)))  # strict: the plain model's keys
    recorded = Normalization.from_dict(json.loads((weights.parent / "metrics.json").read_text())["normalization"])
    data = with_tensors(load_image_dataset(str(cifar10_dir), "test"), normalization=recorded).select(range(EVAL_SAMPLES))
    batches = ((b["pixel_values"], b["labels"], b["index"]) for b in DataLoader(data, batch_size=25))
    report = evaluate_shift_consistency(model, batches, device=torch.device("cpu"))
    return {"digest": weights_digest(model), **json.loads(json.dumps(report.to_dict()))}


@pytest.mark.slow
def test_two_process_training_resumes_exactly_and_matches_one_process_evaluation(cifar10_dir, tmp_path):
    straight = launch_two_processes(cifar10_dir, tmp_path / "straight", "--epochs", "2")
    # an interrupted run: the same output as if the process had died during epoch 2
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "epoch_2")
    (tmp_path / "resumed" / "model.safetensors").unlink()
    resumed = launch_two_processes(cifar10_dir, tmp_path / "resumed", "--epochs", "2", "--resume")

    assert (tmp_path / "resumed" / "checkpoints" / "epoch_2").is_dir()  # epoch 2 was trained again
    assert [row["epoch"] for row in resumed["epochs"]] == [1, 2]
    assert resumed["epochs"] == straight["epochs"]  # resuming replays data order, shifts and state exactly
    for row in resumed["epochs"]:
        digests = row["rank_weight_digests"]
        assert len(digests) == 2 and digests[0] == digests[1]  # both processes hold identical weights
        assert row["eval"]["samples"] == EVAL_SAMPLES
        assert set(row["train"]) == {"loss", "criterion", "consistency"}
        # a mean over processes: 10-class cross-entropy near ln(10) ~ 2.3 early on; a sum of 2 would be near 4.6
        assert row["train"]["criterion"] < 1.5 * math.log(10)
    assert resumed["epochs"][0]["rank_weight_digests"] != resumed["epochs"][1]["rank_weight_digests"]

    final = resumed["epochs"][-1]
    reference = one_process_evaluation(cifar10_dir, tmp_path / "resumed" / "model.safetensors")
    assert reference.pop("digest") == final["rank_weight_digests"][0]
    assert reference == final["eval"]  # counts, percentages and intervals: exactly equal
