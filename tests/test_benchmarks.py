"""Machinery of the benchmark suite: resumable runs, sharding, intervals, summaries, cost table."""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_common as bc  # noqa: E402

from augshift.metrics import proportion_ci  # noqa: E402
from augshift.training import TrainConfig  # noqa: E402


def tiny_data(n_train: int = 24, n_test: int = 20) -> bc.RunData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (n_train + n_test,), generator=g)
    return bc.RunData((images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:]), 3,
                      curve_size=6, eval_batch_size=8, description="random")


def tiny_spec(augshift: bool = True) -> bc.RunSpec:
    config = TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=3, augshift=augshift, max_shift=2)
    return bc.RunSpec("run", "resnet18", config, label="resnet18+augshift" if augshift else "resnet18")


def test_resume_continues_exactly_and_skips_finished(tmp_path, monkeypatch):
    data, spec = tiny_data(), tiny_spec()
    reference = bc.run_one(spec, data, tmp_path / "straight", bc.Dist(), progress=False)

    # interrupt the second epoch: a checkpoint of epoch 1, no result, no temporary files
    calls = {"n": 0}
    step = bc.Trainer.step

    def failing_step(self, images, labels):
        calls["n"] += 1
        if calls["n"] == 4:  # 3 steps per epoch: the first step of epoch 2
            raise KeyboardInterrupt
        return step(self, images, labels)

    monkeypatch.setattr(bc.Trainer, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        bc.run_one(spec, data, tmp_path / "resumed", bc.Dist(), progress=False)
    monkeypatch.setattr(bc.Trainer, "step", step)
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == ["checkpoint.pt"]
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["epoch"] == 1

    resumed = bc.run_one(spec, data, tmp_path / "resumed", bc.Dist(), progress=False)
    for key in ("accuracy", "consistency_random", "consistency_circular", "counts", "curve_consistency"):
        assert resumed[key] == reference[key], key
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in reference["history"]], rel=1e-6)

    # a finished run is not trained again
    monkeypatch.setattr(bc, "create_model", lambda *a, **k: pytest.fail("finished run was retrained"))
    again = bc.run_one(spec, data, tmp_path / "resumed", bc.Dist(), progress=False)
    assert again == json.loads((tmp_path / "resumed" / "result.json").read_text())
    # ... and a result of another recipe is refused
    with pytest.raises(ValueError, match="another recipe"):
        bc.run_one(tiny_spec(augshift=False), data, tmp_path / "resumed", bc.Dist(), progress=False)


def test_epoch_shards_are_disjoint_equal_and_cover_one_permutation():
    n, world = 103, 4
    shards = [bc.epoch_shard(n, seed=1, epoch=2, place=bc.Dist(rank, world)) for rank in range(world)]
    assert {len(s) for s in shards} == {n // world}
    together = torch.cat(shards)
    assert len(set(together.tolist())) == len(together) == n - n % world
    single = bc.epoch_shard(n, seed=1, epoch=2, place=bc.Dist())
    assert sorted(together.tolist()) == sorted(single[: n - n % world].tolist())
    assert not torch.equal(single, bc.epoch_shard(n, seed=1, epoch=3, place=bc.Dist()))


def fake_run(label: str, seed: int, correct: int, agree_r: int, agree_c: int, n: int = 1000) -> dict:
    return {"label": label, "config": {"seed": seed}, "train_seconds": 10.0,
            "accuracy": 100 * correct / n, "consistency_random": 100 * agree_r / n, "consistency_circular": 100 * agree_c / n,
            "counts": {"samples": n, "correct": correct, "agree_random": agree_r, "agree_circular": agree_c},
            "curve_consistency": [[seed * 1.0]], "curve_accuracy": [[2.0]]}


def test_summary_mean_std_pooled_interval_and_differences():
    runs = [fake_run("a", 0, 800, 900, 850), fake_run("a", 1, 820, 910, 870), fake_run("b", 0, 700, 950, 600)]
    summary = bc.summarize(runs)
    a = summary["a"]
    assert a["accuracy"] == pytest.approx(81.0)
    assert a["accuracy_std"] == pytest.approx(statistics.stdev([80.0, 82.0]))
    assert a["accuracy_ci95"] == proportion_ci(1620, 2000)
    assert a["consistency_circular_per_seed"] == [85.0, 87.0]
    assert a["curve_consistency"] == [[0.5]]
    assert summary["b"]["accuracy_std"] == 0.0
    # Newcombe difference interval: contains the difference, symmetric-ish, excludes 0 for a big gap
    lo, hi = bc.difference_ci(1620, 2000, 700, 1000)
    assert lo < 81.0 - 70.0 < hi and lo > 0
    (l1, u1), (l2, u2) = proportion_ci(1620, 2000), proportion_ci(700, 1000)
    assert lo == pytest.approx(11.0 - math.sqrt((81.0 - l1) ** 2 + (u2 - 70.0) ** 2))
    assert hi == pytest.approx(11.0 + math.sqrt((u1 - 81.0) ** 2 + (70.0 - l2) ** 2))
    table = bc.comparison_table(summary, [("a", "b")])
    assert "+11.00" in table and "*" in table
    assert "81.00 ± 1.41" in bc.summary_table(summary)


def test_cifar_stem_replaces_only_the_stem():
    plain = bc.create_model("resnetblur18", 10)
    cifar = bc.create_model("resnetblur18", 10, stem="cifar")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, torch.nn.Identity)
    assert set(cifar.state_dict()) == set(plain.state_dict())
    assert cifar(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="supported"):
        bc.create_model("resnet18", 10, stem="wide")


def test_cost_table_ratios():
    import cost

    rows = [dict(model="resnet18", size=32, batch=8, step_s=0.1, peak_step_mib=100.0, infer_s=0.02),
            dict(model="resnetblur18", size=32, batch=8, step_s=0.15, peak_step_mib=120.0, infer_s=0.03),
            dict(model="resnet18+augshift", size=32, batch=8, step_s=0.19, peak_step_mib=190.0),
            dict(model="resnet18+augshift", size=32, batch=4, step_s=0.1, peak_step_mib=99.0),
            dict(model="resnet18", size=32, batch=16, step_s=0.22, peak_step_mib=200.0)]
    lines = cost.ratios(rows).splitlines()
    assert "| 32 | resnetblur18 | 8 | 150 | 1.50 | 120 | 1.20 | 30 | 1.50 |" in lines
    assert "| 32 | resnet18+augshift | 8 | 190 | 1.90 | 190 | 1.90 | 20 | 1.00 |" in lines
    assert "| 32 | resnet18+augshift (half batch) | 4 | 100 | 1.00 | 99 | 0.99 | 20 | 1.00 |" in lines
    assert "| 32 | resnet18 (double batch, reference) | 16 | 220 | 2.20 | 200 | 2.00 | - | - |" in lines


def test_ablation_variants_are_distinct_and_recommendation_respects_accuracy():
    import ablation

    table = ablation.variants()
    settings = [tuple(sorted(v.items())) for v in table.values() if v is not None]
    assert len(settings) == len(set(settings)) == len(table) - 1
    assert sum(name.endswith("(defaults)") for name in table) == 1
    assert len({ablation.slug(name) for name in table}) == len(table)
    names = list(table)
    summary = {
        ablation.PLAIN: dict(accuracy=70.0, consistency_random=70.0, consistency_circular=70.0),
        names[2]: dict(accuracy=60.0, consistency_random=99.0, consistency_circular=99.0),  # accuracy drop: excluded
        names[3]: dict(accuracy=69.0, consistency_random=80.0, consistency_circular=75.0),
        names[4]: dict(accuracy=71.0, consistency_random=78.0, consistency_circular=76.0),
    }
    assert ablation.recommend(summary, 1.5) == (names[3], table[names[3]])
    assert ablation.recommend(summary, 0.5) == (names[4], table[names[4]])


def test_same_recipe_ignores_augshift_settings_of_plain_runs_only():
    import dataclasses

    plain, augshift = tiny_spec(augshift=False), tiny_spec(augshift=True)
    def changed(spec, **kw):
        return dataclasses.replace(spec, config=dataclasses.replace(spec.config, **kw))

    assert bc.same_recipe(changed(plain, weight=5.0, distance="l1").to_dict(), plain)
    assert not bc.same_recipe(changed(plain, max_shift=1).to_dict(), plain)  # the baseline's augmentation
    assert not bc.same_recipe(changed(augshift, weight=5.0).to_dict(), augshift)
    assert not bc.same_recipe(plain.to_dict(), augshift)


def test_replot_draws_each_benchmark_from_its_results_and_links_once(tmp_path):
    import shutil

    import replot

    results = ROOT / "benchmarks" / "results"
    folders = {"cost": results / "cost" / "cuda", "ablation": results / "ablation" / "quick",
               "invariance": results / "invariance" / "gpu-short"}
    copies = []
    for name, source in folders.items():
        copy = tmp_path / name
        copy.mkdir()
        shutil.copy(source / "results.json", copy)
        (copy / "results.md").write_text("# results\n")
        copies.append(copy)
    for _ in range(2):
        assert replot.main([str(c) for c in copies]) == 0
    expected = {"cost": ["cost.png"], "ablation": ["tradeoff.png"],
                "invariance": ["consistency_vs_shift_cifar10.png", "tradeoff_cifar10.png"]}
    for copy in copies:
        text = (copy / "results.md").read_text()
        assert sorted(p.name for p in copy.glob("*.png")) == expected[copy.name]
        for png in expected[copy.name]:
            assert (copy / png).read_bytes()[:4] == b"\x89PNG" and text.count(f"({png})") == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps({"command": "x"}))
    with pytest.raises(ValueError, match="supported: invariance, ablation, cost"):
        replot.replot(tmp_path / "other")


def test_tradeoff_plot_needs_consistency_values(tmp_path):
    from augshift.report import plot_tradeoff

    with pytest.raises(ValueError, match="consistency_random / consistency_circular"):
        plot_tradeoff({"model": {"accuracy": 50.0}}, tmp_path / "t.png")
    plot_tradeoff({"model": {"accuracy": 50.0, "consistency_random": 60.0}}, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
