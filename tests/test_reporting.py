"""The one result writer (augshift.reporting.results) and the one progress bar (augshift.progress)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import augshift.distributed
from augshift.errors import UsageError
from augshift.progress import progress_bar
from augshift.reporting.results import write_results

ROOT = Path(__file__).resolve().parents[1]


def draw_bytes(content: bytes):
    """A figure: a function writing ``content`` to the path it is given."""
    return lambda path: path.write_bytes(content)


def folder_state(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` (hidden ones too) and its bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_the_writer_writes_markdown_json_and_figures_with_a_manifest_of_their_hashes(tmp_path, capsys):
    stem = write_results(tmp_path / "out", "run.v2", {"accuracy": 91.5, "rows": [1, 2]}, "| a | b |\n\n",
                         figures={"curves.png": draw_bytes(b"curves"), "maps.png": draw_bytes(b"maps")})
    out = tmp_path / "out"
    assert stem == out / "run.v2"
    assert sorted(folder_state(out)) == ["curves.png", "maps.png", "run.v2.json", "run.v2.md"]
    assert (out / "run.v2.md").read_text() == "| a | b |\n"
    manifest = json.loads((out / "run.v2.json").read_text())
    assert manifest["accuracy"] == 91.5 and manifest["rows"] == [1, 2]
    assert manifest["files"] == {name: hashlib.sha256((out / name).read_bytes()).hexdigest()
                                 for name in ("curves.png", "maps.png", "run.v2.md")}
    printed = capsys.readouterr().out
    assert printed.startswith("| a | b |\n") and f"wrote {out / 'curves.png'}" in printed


def test_an_error_while_drawing_leaves_the_folder_as_it_was(tmp_path):
    write_results(tmp_path, "result", {"run": 1}, "first", figures={"plot.png": draw_bytes(b"first plot")})
    before = folder_state(tmp_path)

    def broken(path: Path) -> None:
        path.write_bytes(b"half a plot")
        raise RuntimeError("the plot failed")

    with pytest.raises(RuntimeError, match="the plot failed"):
        write_results(tmp_path, "result", {"run": 2}, "second", figures={"new.png": draw_bytes(b"new"), "plot.png": broken})
    assert folder_state(tmp_path) == before  # no new file, no staging folder left, the first run whole


def test_a_rerun_replaces_its_unit_whole_and_leaves_other_results_in_the_folder(tmp_path):
    write_results(tmp_path, "table1", {"rows": []}, "table", figures={"extra.png": draw_bytes(b"extra")})
    write_results(tmp_path, "locate-g3", {"cell": 1}, "cell", figures={"locate-g3.png": draw_bytes(b"cell")})
    write_results(tmp_path, "table1", {"rows": [1]}, "table again")  # draws no extra.png this time
    assert sorted(folder_state(tmp_path)) == ["locate-g3.json", "locate-g3.md", "locate-g3.png", "table1.json",
                                               "table1.md"]
    with pytest.raises(UsageError, match="name another --out folder"):  # a file another manifest lists
        write_results(tmp_path, "table2", {}, "x", figures={"locate-g3.png": draw_bytes(b"taken")})


@pytest.mark.parametrize("figures,data,message", [
    ({"plots/curves.png": draw_bytes(b"")}, {}, "not a plain file name"),
    ({"result.md": draw_bytes(b"")}, {}, "give the figure another name"),
    ({}, {"files": {}}, "leave it out"),
])
def test_the_writer_refuses_what_a_unit_cannot_hold_before_writing(tmp_path, figures, data, message):
    with pytest.raises(UsageError, match=message):
        write_results(tmp_path / "out", "result", data, "text", figures=figures)
    assert not (tmp_path / "out").exists()


def test_the_commands_and_the_benchmarks_share_the_writer(tmp_path, monkeypatch):
    from augshift.cli import common

    assert common.write_results is write_results
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import position

    out = tmp_path / "table1"
    result = {"results": {"correct": [9, 8], "total": [10, 10]}, "best": {"results": {"correct": [10, 9],
              "total": [10, 10]}, "epoch": 2}, "history": [{}, {}], "train_images": 100, "command": "x"}
    stem = "locate-permutenet-resnet18_stride16-location-g3"  # a command's unit in the benchmark's folder
    write_results(out, stem, result, "cell", figures={f"{stem}.png": draw_bytes(b"cell")})
    assert position.main(["--preset", "paper", "--collect", "--grids", "3", "--tasks", "location", "--out",
                          str(out)]) == 0
    table = json.loads((out / "table1.json").read_text())
    assert table["files"] == {"table1.md": hashlib.sha256((out / "table1.md").read_bytes()).hexdigest()}
    assert json.loads((out / f"{stem}.json").read_text())["files"].keys() == {f"{stem}.md", f"{stem}.png"}


def test_a_progress_bar_goes_to_stderr_only(capsys):
    assert list(progress_bar(range(3), desc="counting", leave=True)) == [0, 1, 2]  # the finished bar stays
    with progress_bar(desc="by hand", total=4, initial=1) as bar:
        bar.update(3)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "counting: 100%" in captured.err and "3/3" in captured.err and "by hand" in captured.err


def test_a_disabled_bar_or_another_rank_draws_nothing(capsys, monkeypatch):
    assert list(progress_bar(range(3), desc="off", enabled=False)) == [0, 1, 2]
    with progress_bar(desc="off by hand", total=2, enabled=False) as bar:
        bar.update(2)
    assert capsys.readouterr() == ("", "")
    monkeypatch.setattr(augshift.distributed, "rank", lambda: 1)
    assert list(progress_bar(range(3), desc="rank 1")) == [0, 1, 2]
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("repeat", range(3))  # a process-directed signal may reach any thread: never early
def test_a_signal_during_the_move_is_delivered_after_the_unit_is_whole(tmp_path, monkeypatch, repeat,
                                                                        ctrl_c_raises):
    import os
    import signal

    from augshift.reporting import files

    moved = []
    real_replace = os.replace

    def replace_then_interrupt(source, target):  # a Ctrl-C arrives while the unit's files are being moved
        real_replace(source, target)
        moved.append(Path(target).name)
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(files.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with files.result_unit(tmp_path, manifest="r.json") as staging:
            (staging / "r.md").write_text("new")
            (staging / "r.json").write_text("new")
    assert sorted(moved) == ["r.json", "r.md"]  # both moved before the interrupt was delivered
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"r.md": "new", "r.json": "new"}
