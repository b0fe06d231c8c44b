"""The benchmark scripts' own logic: cost ratios, ablation variants, redrawing plots from saved results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from augshift.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch):
    """The scripts import each other (``paths``, ``cost``, ...) as ``python benchmarks/<script>.py`` does."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


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


def test_combine_puts_runs_of_two_results_in_one_table_counts_a_run_once_and_refuses_two_different_ones(tmp_path):
    import combine
    import torch

    from augshift.report import ConsistencyReport
    from sweep.outcomes import pack_outcomes

    def run(label: str, seed: int, bits: list[int]) -> dict:  # a finished run's result, reduced to what is combined
        report = ConsistencyReport(len(bits), sum(bits), {}, outcomes={
            "index": torch.arange(len(bits)), "correct": torch.tensor(bits, dtype=torch.bool)})
        return {"label": label, "config": {"seed": seed}, "train_seconds": 1.0, "accuracy": 100 * sum(bits) / len(bits),
                "consistency_random": 60.0, "counts": {"samples": len(bits), "correct": sum(bits), "agree_random": 3},
                "outcomes": pack_outcomes(report)}

    def results(folder: Path, runs: list[dict]) -> Path:
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps({"datasets": {"cifar10": {"runs": runs}}}))
        return folder

    plain = {seed: run("resnet18", seed, bits) for seed, bits in ((0, [1, 1, 0, 0, 1, 0, 1, 0]), (1, [1, 0, 0, 0]))}
    aps = run("aps_resnet18", 0, [1, 1, 1, 0, 1, 0, 1, 1])
    first = results(tmp_path / "a", [plain[0], plain[1]])
    second = results(tmp_path / "b", [plain[0], aps])  # the same seed-0 run again (one work folder) and a new row
    assert combine.main([str(first), str(second), "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    summary = written["summaries"]["cifar10"]
    assert summary["resnet18"]["seeds"] == [0, 1] and summary["aps_resnet18"]["seeds"] == [0]  # seed 0 once
    assert summary["resnet18"]["accuracy_counts"] == [4 + 1, 8 + 4]
    # the difference is that of the seed both rows have (75 - 50 on seed 0), not 75 - 37.5 of the means over seeds
    line = next(x for x in (tmp_path / "out" / "results.md").read_text().splitlines() if x.startswith("| aps_resnet18 − "))
    assert line.startswith("| aps_resnet18 − resnet18 | +25.00 [") and "] (seeds 0) | " in line
    assert written["compared"]["cifar10"]["paired"]["aps_resnet18 − resnet18"]["accuracy"]["seeds"] == [0]
    other = results(tmp_path / "c", [run("resnet18", 0, [0, 0, 0, 0, 1, 1, 1, 1])])  # another run as seed 0
    with pytest.raises(ValueError, match="different run of a row and seed already taken.*resnet18 seed 0"):
        combine.main([str(first), str(other), "--out", str(tmp_path / "again")])


def test_the_time_budget_plans_table2_from_measured_rates_by_hand():
    """Rates: each model's `compiled xN` row (the largest N; already the whole device's images/s); a :mse@W row at its
    +augshift model's, blur + AugShift from AugShift's measured factor; epochs: what fits the budget after the fixed
    seconds, at most 200."""
    import time_budget

    throughput = {"rows": [
        dict(model="resnet18", path="compiled", images_per_s=40_000.0),
        dict(model="resnet18", path="compiled x5", images_per_s=100_000.0),
        dict(model="resnetblur18", path="compiled x5", images_per_s=50_000.0),
        dict(model="resnet18+augshift", path="compiled x2", images_per_s=30_000.0),
        dict(model="resnet18+augshift", path="compiled x5", images_per_s=40_000.0),
        dict(model="resnet18", path="fast", images_per_s=99_999.0),  # eager: not what the budgeted run trains with
    ]}
    rates = time_budget.aggregate_rates(throughput)
    assert rates == {"resnet18": 100_000.0, "resnetblur18": 50_000.0, "resnet18+augshift": 40_000.0}
    assert time_budget.model_rate("resnet18+augshift:mse@3", rates) == 40_000.0
    assert time_budget.model_rate("resnetblur18+augshift", rates) == 50_000.0 * 0.4
    models = ["resnet18", "resnetblur18+augshift"]
    per_epoch = (50_000 + 5 * 10_000 / 3) / 100_000 + (50_000 + 5 * 10_000 / 3) / 20_000  # trace: 5 forwards/image
    epochs, seconds = time_budget.table2_epochs(rates, models, 400.0, fixed_s=100.0)
    assert seconds == pytest.approx(per_epoch) and epochs == int(300 // per_epoch)
    assert time_budget.table2_epochs(rates, models, 1e9, fixed_s=0.0)[0] == 200  # the paper's length at most
    assert time_budget.table2_epochs(rates, models, 10.0, fixed_s=100.0)[0] == 1
    with pytest.raises(KeyError, match="measure aps_resnet18"):
        time_budget.model_rate("aps_resnet18", rates)


def test_position_collect_lists_cells_that_did_not_run(tmp_path):
    import position

    out = tmp_path / "table1"
    out.mkdir()
    result = {"results": {"correct": [9, 8], "total": [10, 10]}, "best": {"results": {"correct": [10, 9],
              "total": [10, 10]}, "epoch": 2}, "history": [{}, {}, {}], "train_images": 50_000, "command": "x"}
    (out / "locate-permutenet-resnet18_stride16-location-g3.json").write_text(json.dumps(result))
    assert position.main(["--preset", "paper", "--collect", "--grids", "3", "--tasks", "location", "--out",
                          str(out)]) == 0
    table = (out / "table1.md").read_text()
    assert "| permutenet | resnet18_stride16 | location | 3x3 | 85.00 [" in table and "| 50000 x 3 | 78.8 |" in table
    assert "| gapnet | resnet18_stride16 | location | 3x3 | not run | not run (epoch -) | 0 x 0 | 100.0 |" in table


def test_a_preset_under_a_time_budget_runs_the_most_epochs_that_fit_by_hand():
    """Per run: steps x step seconds + traced test images, each epoch, and the final evaluation once."""
    import time_budget

    from augshift.config import AugShiftConfig
    from augshift.engine import TrainConfig
    from sweep import RunSpec

    def specs(epochs):
        return [RunSpec("a", "resnet18", TrainConfig(epochs=epochs, batch_size=100)),
                RunSpec("b", "resnet18", TrainConfig(epochs=2 * epochs, batch_size=50, shift=AugShiftConfig(),
                                                     augshift=True))]

    measured = {"step_seconds": {"resnet18@100": 0.5, "resnet18+augshift@50": 0.4},
                "trace_seconds_per_image": {"resnet18": 0.001}, "evaluation_seconds_per_image": {"resnet18": 0.01}}
    # 1,000 training images, 200 test images: a: 10 steps x 0.5 + 0.2 per epoch; b: 20 x 0.4 + 0.2; evaluation 2 each
    per_epoch = (10 * 0.5 + 0.2) + 2 * (20 * 0.4 + 0.2)
    assert time_budget.preset_seconds(specs(3), measured, 1000, 200) == pytest.approx(3 * per_epoch + 4.0)
    cost = lambda epochs: time_budget.preset_seconds(specs(epochs), measured, 1000, 200)  # noqa: E731
    assert time_budget.longest_fitting(cost, 4 + 5 * per_epoch + 1, cap=20) == 5
    assert time_budget.longest_fitting(cost, 1e9, cap=20) == 20  # the preset's length at most
    with pytest.raises(UsageError, match=r"fits no epoch: one epoch of the preset needs about 0.43 min"):
        time_budget.longest_fitting(cost, 1.0, cap=20)  # refused, not one epoch without a word


def test_the_time_budget_is_recorded_with_the_chosen_length(tmp_path, monkeypatch):
    """With measurements fixed by hand (0.1 s per step, one step per epoch, free evaluations), a budget of 0.24 s
    holds 2 of the preset's 3 epochs; the plan is recorded, and --collect reads it back."""
    import invariance
    import time_budget

    measured = {"step_seconds": {"test_resnet@128": 0.1}, "trace_seconds_per_image": {"test_resnet": 0.0},
                "evaluation_seconds_per_image": {"test_resnet": 0.0}}
    monkeypatch.setattr(time_budget, "measure_preset", lambda *args, **kwargs: measured)
    common = ["--preset", "quick", "--data", "cifar10=shapes", "--train-limit", "64", "--eval-limit", "16",
              "--epochs", "3", "--seeds", "0", "--curve-size", "0", "--protocols", "random", "--models", "test_resnet",
              "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--time-budget", "0.004"]
    assert invariance.main(common) == 0
    block = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["cifar10"]
    assert block["time_budget"]["minutes"] == 0.004 and block["time_budget"]["epochs"] == 2
    assert [len(run["history"]) for run in block["runs"]] == [2]
    assert "time budget of 0.004 min on this machine: **2** epochs" in (tmp_path / "out" / "results.md").read_text()
    monkeypatch.setattr(time_budget, "measure_preset", lambda *args, **kwargs: pytest.fail("planned again"))
    assert invariance.main([*common, "--collect"]) == 0  # --collect reads the plan kept in the work folder
