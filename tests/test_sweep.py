"""Machinery of the benchmark suite (benchmarks/sweep, the package `sweep`): resumable runs, sharding, intervals, summaries, models."""
from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

import sweep.runs as runs
import sweep.spec as spec_module
from augshift.config import AugShiftConfig
from augshift.data import Normalization
from augshift.engine import TensorBatches, TrainConfig, Trainer
from augshift.distributed import Dist
from augshift.errors import UsageError
from augshift.intervals import difference_ci, proportion_ci
from augshift.models import create_model
from sweep import RunData, RunSpec, comparison_table, run_one, summarize, summary_table


def tiny_data(n_train: int = 24, n_test: int = 20) -> RunData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, 20, 20), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (n_train + n_test,), generator=g)
    normalization = Normalization.of_images(images[:n_train], source="the training images")
    return RunData((images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:]), 3, normalization,
                   curve_size=6, eval_batch_size=8, description="random")


TINY_MODEL = "test_resnet"  # timm's own test network (0.4 M parameters): the runs' machinery is the point here


def tiny_spec(augshift: bool = True) -> RunSpec:
    config = TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=3, shift=AugShiftConfig(max_shift=2), augshift=augshift)
    return RunSpec("run", TINY_MODEL, config, label="resnet18+augshift" if augshift else "resnet18")


def test_resume_continues_exactly_and_skips_finished(tmp_path, monkeypatch):
    data, spec = tiny_data(), tiny_spec()
    reference = run_one(spec, data, tmp_path / "straight", Dist(), progress=False)

    # interrupt the second epoch: a checkpoint of epoch 1, no result, no temporary files
    calls = {"n": 0}
    step = Trainer.step

    def failing_step(self, images, labels):
        calls["n"] += 1
        if calls["n"] == 4:  # 3 steps per epoch: the first step of epoch 2
            raise KeyboardInterrupt
        return step(self, images, labels)

    monkeypatch.setattr(Trainer, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        run_one(spec, data, tmp_path / "resumed", Dist(), progress=False)
    monkeypatch.setattr(Trainer, "step", step)
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["best.pt", "checkpoint.pt"]
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["epoch"] == 1

    resumed = run_one(spec, data, tmp_path / "resumed", Dist(), progress=False)
    for key in ("accuracy", "consistency_random", "consistency_circular", "consistency_random16",
                "consistency_circular_full", "counts", "curve_consistency", "best"):
        assert resumed[key] == reference[key], key
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in reference["history"]], rel=1e-6)

    # a finished run is not trained again
    monkeypatch.setattr(spec_module, "create_model", lambda *a, **k: pytest.fail("finished run was retrained"))
    again = run_one(spec, data, tmp_path / "resumed", Dist(), progress=False)
    assert again == json.loads((tmp_path / "resumed" / "result.json").read_text())
    # ... and a result of another recipe is refused
    with pytest.raises(ValueError, match=r"made with other options \(label: resnet18 asked, resnet18\+augshift "
                                         r"stored; config.augshift: False asked, True stored\)"):
        run_one(tiny_spec(augshift=False), data, tmp_path / "resumed", Dist(), progress=False)


def test_best_epoch_is_kept_and_evaluated(tmp_path, monkeypatch):
    """The epoch of the highest test top-1 is the ``best`` entry: its weights (``best.pt``) are those after that
    epoch, and its metrics are theirs; the top-level metrics stay the last epoch's."""
    data = tiny_data()
    spec = RunSpec("run", TINY_MODEL, TrainConfig(epochs=3, batch_size=8, lr=0.05, seed=3, shift=AugShiftConfig(max_shift=2)), label="r")
    scripted, states = iter([10.0, 50.0, 30.0]), {}

    def scripted_trace(model, data, place):
        states[len(states) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"test_accuracy": next(scripted)}

    monkeypatch.setattr(runs, "epoch_trace", scripted_trace)
    result = run_one(spec, data, tmp_path / "run", Dist(), progress=False)
    assert [row["test_accuracy"] for row in result["history"]] == [10.0, 50.0, 30.0]
    assert result["best"]["epoch"] == 2
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert saved["epoch"] == 2 and all(torch.equal(saved["model"][k], states[2][k]) for k in states[2])
    model = create_model(TINY_MODEL, 3)
    model.load_state_dict(states[2])
    expected = runs.evaluate_model(model, data, Dist(), progress=False)
    assert {k: result["best"][k] for k in expected} == expected
    model.load_state_dict(states[3])
    assert result["accuracy"] == runs.evaluate_model(model, data, Dist(), progress=False)["accuracy"]
    best = summarize([{**result, "label": "r"}], epoch="best")["r"]
    assert best["best_epoch"] == [2] and best["accuracy"] == result["best"]["accuracy"]
    assert "best epoch" in summary_table({"r": best})


def test_parse_model_rows():
    from sweep import parse_model

    assert parse_model("resnet18") == ("resnet18", None)
    assert parse_model("resnet18+augshift") == ("resnet18", AugShiftConfig())
    assert parse_model("resnetblur18+augshift:mse@0.25") == ("resnetblur18", AugShiftConfig(distance="mse", weight=0.25))
    assert parse_model("resnet18+augshift:l1", defaults=AugShiftConfig(weight=3.0)) == (
        "resnet18", AugShiftConfig(distance="l1", weight=3.0))
    for bad in ("resnet18+blur", "resnet18+augshift:huber", "resnet18+augshift:mse@x", "resnet18+augshift:mse@-1"):
        with pytest.raises(ValueError, match="augshift:DISTANCE@WEIGHT"):
            parse_model(bad)


def test_epoch_shards_are_disjoint_equal_and_cover_one_permutation():
    n, world = 103, 4
    images, labels = torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.zeros(n, dtype=torch.long)

    def shard(epoch: int, place: Dist) -> torch.Tensor:
        return TensorBatches(images, labels, batch_size=world * 2, seed=1, place=place,
                             normalization=Normalization((0.5,), (0.5,), "any")).shard(epoch)

    shards = [shard(2, Dist(rank, world)) for rank in range(world)]
    assert {len(s) for s in shards} == {n // world}
    together = torch.cat(shards)
    assert len(set(together.tolist())) == len(together) == n - n % world
    single = shard(2, Dist())
    assert sorted(together.tolist()) == sorted(single[: n - n % world].tolist())
    assert not torch.equal(single, shard(3, Dist()))


def fake_run(label: str, seed: int, correct: int, agree_r: int, agree_c: int, n: int = 1000) -> dict:
    return {"label": label, "config": {"seed": seed}, "train_seconds": 10.0,
            "accuracy": 100 * correct / n, "consistency_random": 100 * agree_r / n, "consistency_circular": 100 * agree_c / n,
            "counts": {"samples": n, "correct": correct, "agree_random": agree_r, "agree_circular": agree_c},
            "curve_consistency": [[seed * 1.0]], "curve_accuracy": [[2.0]]}


def test_summary_mean_std_pooled_interval_and_differences():
    runs = [fake_run("a", 0, 800, 900, 850), fake_run("a", 1, 820, 910, 870), fake_run("b", 0, 700, 950, 600)]
    summary = summarize(runs)
    a = summary["a"]
    assert a["accuracy"] == pytest.approx(81.0)
    assert a["accuracy_std"] == pytest.approx(statistics.stdev([80.0, 82.0]))
    assert a["accuracy_ci95"] == proportion_ci(1620, 2000)
    assert a["consistency_circular_per_seed"] == [85.0, 87.0]
    assert a["curve_consistency"] == [[0.5]]
    assert summary["b"]["accuracy_std"] == 0.0
    # Newcombe difference interval: contains the difference, symmetric-ish, excludes 0 for a big gap
    lo, hi = difference_ci(1620, 2000, 700, 1000)
    assert lo < 81.0 - 70.0 < hi and lo > 0
    (l1, u1), (l2, u2) = proportion_ci(1620, 2000), proportion_ci(700, 1000)
    assert lo == pytest.approx(11.0 - math.sqrt((81.0 - l1) ** 2 + (u2 - 70.0) ** 2))
    assert hi == pytest.approx(11.0 + math.sqrt((u1 - 81.0) ** 2 + (70.0 - l2) ** 2))
    table = comparison_table(summary, [("a", "b")])
    assert "+11.00" in table and "*" in table
    last = summary_table(summary)
    assert "81.00 ± 1.41" in last
    header, _, first = last.splitlines()[:3]
    assert header.count("|") == first.count("|")  # as many header cells as row cells


def test_cifar_stem_replaces_only_the_stem():
    plain = create_model("resnetblur18", 10)
    cifar = create_model("resnetblur18", 10, stem="cifar")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, torch.nn.Identity)
    assert set(cifar.state_dict()) == set(plain.state_dict())
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="supported"):
        create_model("resnet18", 10, stem="wide")


def test_tradeoff_plot_needs_consistency_values(tmp_path):
    from augshift.reporting.plots import plot_tradeoff

    with pytest.raises(ValueError, match="no consistency_<protocol> values"):
        plot_tradeoff({"model": {"accuracy": 50.0}}, tmp_path / "t.png")
    plot_tradeoff({"model": {"accuracy": 50.0, "consistency_random": 60.0}}, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_two_shards_give_the_results_of_one_sweep_and_collect_names_missing_runs(tmp_path):
    from sweep import collect, parse_shard, run_sweep, shard_of

    data = tiny_data()
    specs = [RunSpec(f"r{seed}", TINY_MODEL, TrainConfig(epochs=1, batch_size=8, lr=0.05, seed=seed, shift=AugShiftConfig(max_shift=2)),
                     label="resnet18") for seed in (0, 1, 2)]
    whole = run_sweep(specs, data, tmp_path / "one", Dist())
    with pytest.raises(UsageError, match="r1"):
        run_sweep(shard_of(specs, parse_shard("0/2")), data, tmp_path / "two", Dist())
        collect(specs, tmp_path / "two")
    run_sweep(shard_of(specs, parse_shard("1/2")), data, tmp_path / "two", Dist())
    sharded = collect(specs, tmp_path / "two")
    for a, b in zip(whole, sharded):
        for key in ("name", "accuracy", "counts", "consistency_random", "consistency_circular", "curve_consistency"):
            assert a[key] == b[key], key
    assert [s.name for s in shard_of(specs, (0, 2))] == ["r0", "r2"]
    for bad in ("2/2", "a/b", "1"):
        with pytest.raises(ValueError, match="I/N"):
            parse_shard(bad)


def test_cifar100_schema_parquet_loads_through_the_benchmark_path(tmp_path):
    """CIFAR-100 cannot be downloaded here: a parquet folder in the exact ``uoft-cs/cifar100`` schema (``img``,
    ``fine_label`` with 100 names, ``coarse_label`` with 20) goes through the benchmarks' loader; the class count
    comes from the ClassLabel (100), not from the labels a small subset happens to hold."""
    import datasets
    import numpy as np
    from PIL import Image

    from sweep import load_data

    features = datasets.Features({"img": datasets.Image(),
                                  "fine_label": datasets.ClassLabel(names=[f"fine{i}" for i in range(100)]),
                                  "coarse_label": datasets.ClassLabel(names=[f"coarse{i}" for i in range(20)])})
    rng = np.random.default_rng(0)
    fine = {"train": [3, 57, 0, 12, 57, 9], "test": [1, 2, 44]}
    for split, labels in fine.items():
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in labels]
        datasets.Dataset.from_dict({"img": images, "fine_label": labels, "coarse_label": [x // 5 for x in labels]},
                                   features=features).to_parquet(str(tmp_path / f"{split}-00000-of-00001.parquet"))
    data = load_data(str(tmp_path), {"train_size": None, "test_size": None})
    assert data.num_classes == 100
    assert data.train[1].tolist() == fine["train"] and data.test[1].tolist() == fine["test"]
    assert data.train[0].shape == (6, 3, 32, 32) and data.train[0].dtype == torch.uint8
    coarse = load_data(str(tmp_path), {"train_size": None, "test_size": None}, label_column="coarse_label")
    assert coarse.num_classes == 20 and coarse.train[1].tolist() == [x // 5 for x in fine["train"]]


def test_run_or_collect_runs_a_shard_and_returns_nothing_then_collects_without_loading(tmp_path):
    import argparse

    from sweep import run_or_collect

    data = tiny_data()
    specs = [RunSpec(f"seed{seed}", "test_resnet", TrainConfig(epochs=1, batch_size=8, seed=seed), label="test_resnet")
             for seed in (0, 1)]
    loads = []

    def load():
        loads.append(1)
        return data

    for shard in ((0, 2), (1, 2)):  # two array tasks, --shard 0/2 and --shard 1/2
        args = argparse.Namespace(collect=False, shard=shard, threads=0)
        assert run_or_collect(specs, args, tmp_path, Dist(), load=load, inputs={"source": "tiny"}) is None
    results = run_or_collect(specs, argparse.Namespace(collect=True, shard=None, threads=0), tmp_path, Dist(),
                             load=lambda: pytest.fail("--collect loaded the data"), inputs={"source": "tiny"})
    assert [result["name"] for result in results] == ["seed0", "seed1"] and len(loads) == 2


@pytest.mark.parametrize("module", ["sweep.matched", "sweep.options", "sweep.outcomes", "sweep.rows", "sweep.runs",
                                    "sweep.shards", "sweep.spec", "sweep.summary"])
def test_the_harness_examples_run(module):
    import doctest
    import importlib

    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE  # as the API pages' examples run (tests/test_api_docs.py)
    results = doctest.testmod(importlib.import_module(module), optionflags=flags)
    assert results.failed == 0 and results.attempted > 0
