"""Comparisons a reviewer accepts: paired intervals (against a hand count and a simulation where the truth is
known), consistency at matched accuracy (zero against itself, a planted offset recovered), per-epoch traces kept in
every run, equal-compute rows and the fine-tuning benchmark from the checkpoints users have."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from augshift.config import AugShiftConfig
from augshift.engine import TrainConfig
from augshift.distributed import Dist
from augshift.errors import UsageError
from augshift.intervals import difference_ci, paired_difference_ci
from sweep import RunSpec, comparison_table, load_data, paired_differences, parse_row, run_one, split_rows
from sweep.matched import Trace, consistency_at, matched_difference
from sweep.outcomes import pack_outcomes, unpack_outcomes
from sweep.runs import image_passes

from helpers import report_of, run_result

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def benchmarks_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


# ------------------------------------------------------------------------------------------ paired intervals

def test_the_paired_interval_is_the_hand_computed_one_from_the_discordant_counts():
    n, a_only, b_only = 1000, 60, 25  # 2x2 table: both right 700, both wrong 215, a only 60, b only 25
    a = np.r_[np.ones(700), np.zeros(215), np.ones(a_only), np.zeros(b_only)]
    b = np.r_[np.ones(700), np.zeros(215), np.zeros(a_only), np.ones(b_only)]
    d = (a_only - b_only) / n
    variance = ((a_only + b_only) / n - d * d) * n / (n - 1)  # sample variance of the per-image differences
    half = 1.96 * math.sqrt(variance / n)
    difference, low, high = paired_difference_ci(a, b)
    assert difference == pytest.approx(100 * d) and (low, high) == pytest.approx((100 * (d - half), 100 * (d + half)))
    # the unpaired interval of the same counts is far wider: both models are right on the same 700 images
    unpaired = difference_ci(int(a.sum()), n, int(b.sum()), n)
    assert (high - low) < 0.6 * (unpaired[1] - unpaired[0])


def test_several_seeds_average_each_images_difference():
    a = np.array([[1, 1, 0, 1], [1, 0, 0, 1]])
    b = np.array([[0, 1, 0, 1], [1, 1, 1, 0]])
    per_image = (a - b).mean(axis=0)
    half = 1.96 * per_image.std(ddof=1) / 2
    assert paired_difference_ci(a, b) == pytest.approx((100 * per_image.mean(), 100 * (per_image.mean() - half),
                                                        100 * (per_image.mean() + half)))
    with pytest.raises(ValueError, match="same shape"):
        paired_difference_ci(a, b[:, :3])


def test_the_paired_interval_covers_the_true_difference_95_percent_of_the_time():
    """Two correlated models with known accuracies 0.72 and 0.70 on images of varying difficulty: the paired
    interval covers the true 2-point difference about 95% of the time, and is narrower than Newcombe's."""
    rng = np.random.default_rng(0)
    n, trials, covered, paired_width, unpaired_width = 2000, 400, 0, 0.0, 0.0
    for _ in range(trials):
        difficulty = rng.random(n)  # each image's difficulty, shared by both models: their outcomes correlate
        noise = rng.random(n) < 0.1  # on 10% of the images model b answers independently
        a = difficulty < 0.72
        b = np.where(noise, rng.random(n) < 0.70, difficulty < 0.70)
        difference, low, high = paired_difference_ci(a, b)
        covered += low <= 2.0 <= high
        paired_width += high - low
        lo, hi = difference_ci(int(a.sum()), n, int(b.sum()), n)
        unpaired_width += hi - lo
    assert 0.92 <= covered / trials <= 0.98
    assert paired_width < 0.5 * unpaired_width


def test_outcomes_pack_into_json_and_back():
    bits = {"correct": [1, 0, 1, 1, 0, 0, 1, 0, 1], "agree_random": [0, 0, 1, 1, 1, 1, 1, 1, 1]}
    packed = json.loads(json.dumps(pack_outcomes(report_of(bits))))
    assert {k: v.astype(int).tolist() for k, v in unpack_outcomes(packed).items()} == bits
    shuffled = report_of(bits)
    shuffled.outcomes["index"] = torch.arange(9).flip(0)
    with pytest.raises(UsageError, match="0 .. N-1"):
        pack_outcomes(shuffled)


def test_comparison_tables_use_the_paired_interval_and_say_so():
    rng = np.random.default_rng(1)
    base = rng.random(400) < 0.7
    flip = rng.random(400) < 0.05
    results = [run_result("a", 0, {"correct": (base | flip).astype(int).tolist()}),
               run_result("b", 0, {"correct": base.astype(int).tolist()})]
    from sweep import summarize

    summary = summarize(results)
    paired = paired_differences(results, [("a", "b")])
    cell = paired["a − b"]["accuracy"]
    expected = paired_difference_ci(base | flip, base)
    assert cell["paired_ci95"] == pytest.approx(list(expected[1:]))
    table = comparison_table(summary, [("a", "b")], paired=paired)
    lo, hi = expected[1:]
    assert f"[{lo:+.1f}, {hi:+.1f}] *" in table and "paired over the same test images" in table
    assert cell["unpaired_ci95"][0] < 0 < cell["unpaired_ci95"][1] and lo > 0  # a tie unpaired, a difference paired


# ------------------------------------------------------------------------------------- matched accuracy

def synthetic_trace(accuracies: list[float], consistencies: list[float], n: int = 1000) -> Trace:
    """A trace whose epochs have exactly these top-1 and consistency % on n images."""
    correct = np.zeros((len(accuracies), n), bool)
    agree = np.zeros((len(accuracies), n), bool)
    for epoch, (acc, cons) in enumerate(zip(accuracies, consistencies)):
        correct[epoch, :round(acc * n / 100)] = True
        agree[epoch, n - round(cons * n / 100):] = True
    return Trace(correct, agree)


def test_a_row_compared_with_itself_differs_by_zero():
    row = [synthetic_trace([30, 45, 52, 60], [60, 66, 70, 71]), synthetic_trace([33, 44, 58, 61], [61, 64, 69, 72])]
    result = matched_difference(row, row, resamples=100)
    assert result["range"] == pytest.approx([33.0, 60.0])
    assert result["mean"] == 0 and result["top"] == 0 and result["mean_ci95"] == [0.0, 0.0]


def test_a_planted_offset_is_recovered_at_matched_accuracy():
    """Both rows follow consistency = 0.5 * top-1 + c, at different accuracies; b's c is 3 points higher. Compared
    where they stopped, b looks 8 points more consistent (it is also more accurate); at equal accuracy, 3."""
    line = lambda accs, offset: [0.5 * acc + 30 + offset for acc in accs]
    a = [synthetic_trace([40, 50, 60, 70], line([40, 50, 60, 70], 0))]
    b = [synthetic_trace([45, 55, 65, 80], line([45, 55, 65, 80], 3))]
    result = matched_difference(a, b, resamples=200)
    assert result["range"] == pytest.approx([45.0, 70.0])
    assert result["mean"] == pytest.approx(-3.0, abs=1e-9) and result["top"] == pytest.approx(-3.0, abs=1e-9)
    assert result["mean_ci95"][0] <= -3.0 <= result["mean_ci95"][1]
    final_a, final_b = a[0].rates()[-1, 1], b[0].rates()[-1, 1]
    assert final_a - final_b == pytest.approx(-8.0)
    assert matched_difference(a, [synthetic_trace([75, 80], [70, 71])]) is None  # no accuracy both reach


def test_the_trace_is_read_along_the_first_reach_of_each_accuracy():
    trace = np.array([[40.0, 60.0], [60.0, 70.0], [55.0, 90.0], [70.0, 72.0]])  # epoch 3 fell back: left out
    assert consistency_at(np.array([50.0, 57.5, 65.0, 40.0, 71.0]), trace)[:4] == pytest.approx([65.0, 68.75, 71.0, 60.0])
    assert np.isnan(consistency_at(np.array([71.0]), trace)[0])


# ------------------------------------------------------------------------------- traces and rows of a sweep

@pytest.fixture(scope="module")
def shapes():
    return load_data("shapes", {"train_size": 48, "test_size": 24, "curve_size": 0}, protocols=("random", "circular"))


def test_every_run_keeps_its_per_epoch_trace_with_per_image_outcomes(shapes, tmp_path):
    spec = RunSpec("run", "test_resnet", TrainConfig(epochs=2, batch_size=16, shift=AugShiftConfig()), label="r")
    result = run_one(spec, shapes, tmp_path / "run", Dist(), progress=False)
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    for row in result["history"]:
        bits = unpack_outcomes(row["outcomes"])
        assert len(bits["correct"]) == len(shapes.test[0])
        assert row["test_accuracy"] == pytest.approx(100 * bits["correct"].mean())
        assert row["test_consistency_random"] == pytest.approx(100 * bits["agree_random"].mean())
    final = unpack_outcomes(result["outcomes"])
    assert int(final["correct"].sum()) == result["counts"]["correct"]
    assert int(final["agree_circular"].sum()) == result["counts"]["agree_circular"]
    assert result["image_passes"] == 2 * 48


def test_rows_carry_their_own_recipe():
    assert split_rows("resnet18,resnet18+augshift:mse@3[epochs=3,batch=64],resnetblur18[epochs=12]") == [
        "resnet18", "resnet18+augshift:mse@3[epochs=3,batch=64]", "resnetblur18[epochs=12]"]
    assert parse_row("resnet18+augshift:mse@3[epochs=3,batch=64]") == ("resnet18+augshift:mse@3",
                                                                       {"epochs": 3, "batch_size": 64})
    for bad in ("resnet18[epochs=0]", "resnet18[lr=3]", "resnet18[epochs=3", "resnet18[epochs=x]"):
        with pytest.raises(UsageError, match=r"MODEL\[KEY=N"):
            parse_row(bad)


def test_equal_compute_rows_have_the_image_passes_they_claim(benchmarks_importable):
    import invariance

    preset = {**invariance.PRESETS["quick"], "seeds": [0]}
    specs = {spec.label: spec for spec in invariance.specs_for(
        [*preset["models"], *invariance.equal_compute_rows(preset)], preset)}
    n, passes = 20_000, {}
    for label, spec in specs.items():
        steps = math.ceil(n / spec.config.batch_size)
        passes[label] = image_passes(spec.config, steps, n)
    plain2, blur2, half, half_batch = invariance.equal_compute_rows(preset)
    assert passes["resnet18+augshift"] == passes[plain2] == passes[blur2] == 2 * passes["resnet18"]
    assert passes[half] == passes[half_batch] == passes["resnet18"]
    assert specs[half_batch].config.batch_size == preset["batch_size"] // 2 and specs[half].config.augshift
    assert all(a in specs and b in specs for a, b in invariance.equal_compute_pairs(preset))


# ------------------------------------------------------------------------------------------- fine-tuning

def finetune(checkpoint: Path, tmp_path: Path, *extra: str) -> dict:
    import finetune as script

    out = tmp_path / "out"
    assert script.main(["--checkpoint", str(checkpoint), "--data", "shapes", "--train-limit", "32",
                        "--eval-limit", "16", "--epochs", "1", "--seeds", "0", "--protocols", "random",
                        "--workdir", str(tmp_path / "work"), "--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())


def test_finetuning_starts_from_a_save_model_file(benchmarks_importable, tmp_path):
    from augshift.cli.common import save_model
    from augshift.models import create_model

    model = create_model("test_resnet", 10)
    with torch.no_grad():
        model.get_classifier().bias.copy_(torch.tensor([5.0] + [0.0] * 9))  # predicts class 0 before training
    save_model(str(tmp_path / "model.pt"), model, "test_resnet", {"num_classes": 10}, {"task": "classification"})
    results = finetune(tmp_path / "model.pt", tmp_path)
    labels = load_data("shapes", {"train_size": 32, "test_size": 16})
    assert results["arch"] == "test_resnet"
    # the start is the saved model itself: its predictions are class 0 everywhere
    assert results["start"]["test_accuracy"] == pytest.approx(100 * float((labels.test[1] == 0).float().mean()))
    rows = [run["label"] for run in results["runs"]]
    assert rows == ["plain, 1 epoch", "plain, 2 epochs (same compute)", "augshift, 1 epoch"]
    passes = {run["label"]: run["image_passes"] for run in results["runs"]}
    assert passes["augshift, 1 epoch"] == passes["plain, 2 epochs (same compute)"] == 2 * passes["plain, 1 epoch"]
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "per plain-epoch" in markdown and "augshift, 1 epoch − plain, 2 epochs (same compute)" in markdown


def test_finetuning_starts_from_a_timm_train_py_checkpoint(benchmarks_importable, tmp_path):
    from augshift.models import create_model

    model = create_model("test_resnet", 10)
    torch.save({"epoch": 3, "arch": "test_resnet", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "args": argparse.Namespace(model="test_resnet"), "metric": 50.0}, tmp_path / "model_best.pth.tar")
    results = finetune(tmp_path / "model_best.pth.tar", tmp_path)
    assert results["arch"] == "test_resnet" and len(results["runs"]) == 3


def test_finetuning_starts_from_a_transformers_folder(benchmarks_importable, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], embedding_size=8, num_labels=10)
    transformers.ResNetForImageClassification(config).save_pretrained(tmp_path / "resnet")
    results = finetune(tmp_path / "resnet", tmp_path)
    assert results["arch"] == f"hf:{tmp_path / 'resnet'}"
    assert all(run["history"][-1]["outcomes"]["samples"] == 16 for run in results["runs"])
