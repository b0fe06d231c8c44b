"""Summaries of finished runs (`sweep.summary`) from hand-made results: every number and table cell against a
hand computation (means, sample standard deviations, per-image paired differences) or a spelled-out table."""
from __future__ import annotations

import math
import statistics

import pytest
import torch

from augshift.errors import UsageError
from augshift.intervals import difference_ci, proportion_ci
from augshift.report import ConsistencyReport
from sweep.outcomes import pack_outcomes
from sweep.summary import comparison_table, paired_differences, summarize, summary_table


def result(label: str, seed: int, correct: list[int], agree: list[int], *, outcomes: bool = True, **extra) -> dict:
    """A finished run's result of `len(correct)` test images: accuracy and `random` consistency in percent,
    their counts and (with `outcomes`) the packed per-image outcomes."""
    n = len(correct)
    report = ConsistencyReport(n, sum(correct), {"random": sum(agree)}, outcomes={
        "index": torch.arange(n), "correct": torch.tensor(correct, dtype=torch.bool),
        "agree_random": torch.tensor(agree, dtype=torch.bool)})
    run = {"label": label, "config": {"seed": seed}, "accuracy": report.accuracy,
           "consistency_random": report.consistency("random"), "train_seconds": 10.0 * (seed + 1),
           "counts": {"samples": n, "correct": sum(correct), "agree_random": sum(agree)}, **extra}
    return {**run, "outcomes": pack_outcomes(report)} if outcomes else run


A0 = result("a", 0, [1, 1, 1, 0, 1], [1, 1, 0, 1, 1], image_passes=2e6, curve_consistency=[[100.0, 80.0]],
            curve_accuracy=[[80.0, 40.0]], curve_offsets=[0, 1])
A1 = result("a", 1, [1, 1, 0, 0, 1], [1, 1, 1, 1, 1], image_passes=4e6, curve_consistency=[[100.0, 60.0]],
            curve_accuracy=[[60.0, 20.0]], curve_offsets=[0, 1])
B0 = result("b", 0, [1, 0, 1, 0, 0], [0, 1, 0, 1, 1])
B1 = result("b", 1, [0, 0, 0, 0, 1], [1, 0, 0, 1, 1])
B2 = result("b", 2, [1, 1, 1, 1, 1], [1, 1, 1, 1, 1])


def test_a_row_is_the_mean_sample_std_and_pooled_counts_of_its_seeds():
    row = summarize([A0, A1, B0])["a"]
    assert row["seeds"] == [0, 1]
    assert row["accuracy"] == pytest.approx(70.0) and row["accuracy_per_seed"] == [80.0, 60.0]
    assert row["accuracy_std"] == pytest.approx(statistics.stdev([80.0, 60.0]))
    assert row["accuracy_counts"] == [7, 10] and row["accuracy_ci95"] == proportion_ci(7, 10)
    assert row["consistency_random"] == pytest.approx(90.0) and row["consistency_random_counts"] == [9, 10]
    assert row["curve_consistency"] == [[100.0, 70.0]] and row["curve_accuracy"] == [[70.0, 30.0]]
    assert row["curve_offsets"] == [0, 1]
    assert row["train_seconds"] == 15.0 and row["image_passes"] == 3e6
    single = summarize([B0])["b"]  # one seed: no spread, and no image passes recorded: none reported
    assert single["accuracy_std"] == 0.0 and "image_passes" not in single and "curve_consistency" not in single
    partial = summarize([A0, {k: v for k, v in A1.items() if k != "accuracy"}])["a"]  # a metric one run lacks
    assert "accuracy" not in partial and partial["consistency_random"] == pytest.approx(90.0)  # the others kept


def test_a_summary_of_best_epochs_takes_each_runs_best_entry():
    best = {"epoch": 2, "accuracy": 40.0, "counts": {"samples": 5, "correct": 2, "agree_random": 5}}
    runs = [{**A0, "best": {**best, "epoch": 3}}, {**A1, "best": best}]
    row = summarize(runs, epoch="best")["a"]
    assert row["best_epoch"] == [3, 2] and row["accuracy"] == 40.0 and row["accuracy_counts"] == [4, 10]
    assert row["consistency_random"] == pytest.approx(90.0)  # a metric the best entry lacks: the run's own
    with pytest.raises(UsageError, match=r"^some results have no best epoch \(written before best epochs were kept\): "
                                         r"summarize their last epoch, or rerun them$"):
        summarize([A0, runs[1]], epoch="best")
    for summarized in (summarize, paired_differences):
        with pytest.raises(ValueError, match=r"^epoch must be one of \('last', 'best'\), got 'first'$"):
            summarized([A0], *([[("a", "b")]] if summarized is paired_differences else []), epoch="first")


def paired_by_hand(a: list[list[int]], b: list[list[int]]) -> tuple[float, float, float]:
    """The paired difference and 95 % interval (points): per image the mean over seeds of a - b, then mean +-
    1.96 sample sd / sqrt(N)."""
    d = [statistics.mean(x[i] - y[i] for x, y in zip(a, b)) for i in range(len(a[0]))]
    half = 1.96 * statistics.stdev(d) / math.sqrt(len(d))
    return 100 * statistics.mean(d), 100 * (statistics.mean(d) - half), 100 * (statistics.mean(d) + half)


def test_paired_differences_pair_seed_with_seed_over_the_seeds_both_rows_have():
    out = paired_differences([A0, A1, B1, B2], [("a", "b"), ("a", "missing"), ("missing", "a"), ("b", "a")])
    assert list(out) == ["a − b", "b − a"]  # a pair naming a missing row is left out, the next one kept
    cell = out["a − b"]["accuracy"]
    assert cell["seeds"] == [1]  # a has 0, 1; b has 1, 2
    difference, low, high = paired_by_hand([[1, 1, 0, 0, 1]], [[0, 0, 0, 0, 1]])
    assert (cell["difference"], *cell["paired_ci95"]) == pytest.approx((difference, low, high))
    assert cell["unpaired_ci95"] == list(difference_ci(3, 5, 1, 5))
    both = paired_differences([A0, A1, B0, B1], [("a", "b")])["a − b"]["consistency_random"]
    expected = paired_by_hand([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1]], [[0, 1, 0, 1, 1], [1, 0, 0, 1, 1]])
    assert both["seeds"] == [0, 1] and (both["difference"], *both["paired_ci95"]) == pytest.approx(expected)


def test_pairs_without_outcomes_are_left_out_and_a_missing_count_skips_only_its_metric():
    bare = result("c", 0, [1, 0, 1, 0, 1], [1, 1, 1, 0, 1], outcomes=False)
    no_correct = {**B0, "label": "d", "outcomes": {k: v for k, v in B0["outcomes"].items() if k != "correct"}}
    out = paired_differences([A0, bare, no_correct], [("a", "c"), ("a", "d")])
    assert list(out) == ["a − d"] and list(out["a − d"]) == ["consistency_random"]
    best = [{**run, "best": {**run, "outcomes": pack_outcomes(ConsistencyReport(5, 5, {"random": 5}, outcomes={
        "index": torch.arange(5), "correct": torch.ones(5, dtype=torch.bool),
        "agree_random": torch.ones(5, dtype=torch.bool)}))}} for run in (A0, B0)]
    cell = paired_differences(best, [("a", "b")], epoch="best")["a − b"]["accuracy"]
    assert cell["difference"] == 0.0  # both best entries right on every image: their outcomes, not the last ones
    assert paired_differences([best[0], B0], [("a", "b")], epoch="best") == {}  # b's run has no best epoch


def test_the_summary_table_spells_out_each_row():
    summary = summarize([A0, A1, B0])
    ci = [f"[{low:.1f}, {high:.1f}]" for low, high in (proportion_ci(7, 10), proportion_ci(9, 10),
                                                         proportion_ci(2, 5), proportion_ci(3, 5))]
    assert summary_table(summary) == (
        "| model | seeds | top-1 % | cons. random % | train s/run |\n"
        "|---|---|---|---|---|\n"
        f"| a | 2 | 70.00 ± 14.14 {ci[0]} | 90.00 ± 14.14 {ci[1]} | 15 |\n"
        f"| b | 1 | 40.00 ± 0.00 {ci[2]} | 60.00 ± 0.00 {ci[3]} | 10 |\n")
    summary["b"]["image_passes"], summary["a"]["best_epoch"], summary["b"]["best_epoch"] = 1.995e6, [3, 2], [1]
    lines = summary_table(summary).splitlines()
    assert lines[0] == "| model | seeds | top-1 % | cons. random % | best epoch | image-passes (M) | train s/run |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2].endswith(f"{ci[1]} | 3,2 | 3.00 | 15 |")
    assert lines[3].endswith(f"{ci[3]} | 1 | 2.00 | 10 |")  # 1.995 M rounds up
    worst = {"r": {"seeds": [0], "accuracy_random_worst": 50.0, "accuracy_random_worst_std": 0.0,
                   "accuracy_random_worst_ci95": (10.0, 90.0), "train_seconds": 1.0}}
    assert summary_table(worst).splitlines()[0] == "| model | seeds | top-1 random_worst % | train s/run |"


def test_the_comparison_table_marks_intervals_that_exclude_zero_and_the_seeds_and_kind_of_each_cell():
    summary = {label: {"seeds": seeds, "accuracy": value, "accuracy_counts": counts}
               for label, seeds, value, counts in (("a", [0, 1], 70.0, [7, 10]), ("b", [0], 40.0, [2, 5]),
                                                   ("c", [0, 1], 50.0, [5, 10]))}
    low, high = difference_ci(7, 10, 2, 5)
    unpaired = f"+30.00 [{low:+.1f}, {high:+.1f}]"
    footer = ("* the 95% interval excludes 0; intervals unpaired (Newcombe), pooled over seeds; seed-to-seed spread "
              "not included.")
    assert comparison_table(summary, [("a", "x"), ("a", "b")]) == (
        f"| comparison | Δ top-1 |\n|---|---|\n| a − b | {unpaired} |\n{footer}\n")

    def cell(difference, low, high, seeds):
        return {"accuracy": {"difference": difference, "paired_ci95": [low, high], "seeds": seeds}}

    paired = {"a − b": cell(30.0, 0.0, 60.0, [0]), "c − a": cell(-20.0, -40.0, 0.0, [0, 1]),
              "a − c": cell(20.0, -3.0, 0.5, [0, 1]), "b − c": cell(-10.0, -12.0, -1.0, [0])}
    lines = comparison_table(summary, [("a", "b"), ("c", "a"), ("a", "c"), ("b", "c"), ("c", "b")],
                             paired=paired).splitlines()
    low, high = difference_ci(5, 10, 2, 5)
    assert lines[2:7] == ["| a − b | +30.00 [+0.0, +60.0] (seeds 0) |",  # a has seed 1 too; 0 is not outside
                          "| c − a | -20.00 [-40.0, +0.0] |",
                          "| a − c | +20.00 [-3.0, +0.5] |",
                          "| b − c | -10.00 [-12.0, -1.0] * (seeds 0) |",
                          f"| c − b | +10.00 [{low:+.1f}, {high:+.1f}] (u) |"]  # no paired cell: Newcombe's
    assert lines[7].startswith("* the 95% interval excludes 0; intervals paired over the same test images and views "
                               "(seed s against seed s; (seeds ...): only those seeds are in both rows); (u): "
                               "unpaired (Newcombe), for results without per-image outcomes; seed-to-seed")


def test_the_comparison_table_separates_its_cells_and_lists_every_common_seed():
    summary = {label: {"seeds": [0, 1, 2], "accuracy": value, "accuracy_counts": [7, 10],
                       "consistency_random": value, "consistency_random_counts": [7, 10]}
               for label, value in (("a", 70.0), ("b", 70.0))}
    cell = {"difference": 0.0, "paired_ci95": [-1.0, 1.0], "seeds": [0, 1]}
    lines = comparison_table(summary, [("a", "b")], paired={"a − b": {"accuracy": cell,
                                                                      "consistency_random": cell}}).splitlines()
    assert lines[0] == "| comparison | Δ top-1 | Δ cons. random |"
    assert lines[2] == "| a − b | +0.00 [-1.0, +1.0] (seeds 0, 1) | +0.00 [-1.0, +1.0] (seeds 0, 1) |"
