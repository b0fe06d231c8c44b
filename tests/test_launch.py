"""``--launcher submitit``: a sweep submitted through submitit's local executor (real subprocesses, real pickles,
real result files) ends with the tables of the same sweep run with ``--shard 0/1``; a run that raises is named with
its log and the others are kept; a run interrupted by submitit's timeout signal mid-epoch resumes and ends equal to
an uninterrupted one; ``--no-wait`` then ``--collect``. The Slurm executor's sbatch script holds the resources
asked for (written without a cluster)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("submitit")

from augshift.errors import UsageError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "quick", "--models", "test_resnet,test_resnet+augshift", "--seeds", "0,1", "--train-limit", "200",
        "--eval-limit", "100", "--epochs", "1", "--batch-size", "50", "--curve-size", "20", "--threads", "1",
        "--protocols", "random,circular"]
SUBMITIT = ["--launcher", "submitit", "--cluster", "local", "--gpus-per-task", "0", "--poll-seconds", "0.5"]
RUNS = ["test_resnet_seed0", "test_resnet+augshift_seed0", "test_resnet_seed1", "test_resnet+augshift_seed1"]


def without_timings(value):
    """``value`` without what differs between two invocations of one sweep: wall times, the command, file hashes."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if "seconds" not in k and k not in ("command", "files")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def invariance(folder: Path, *extra: str, data: Path) -> int:
    import invariance as script

    return script.main([*TINY, "--data", f"cifar10={data}", "--workdir", str(folder / "work"),
                        "--out", str(folder / "out"), *extra])


def tables(folder: Path) -> dict:
    return without_timings(json.loads((folder / "out" / "results.json").read_text()))


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, cifar10_dir) -> dict:
    """The tiny sweep run here as one shard (``--shard 0/1``), then collected: the reference tables."""
    folder = tmp_path_factory.mktemp("sharded")
    assert invariance(folder, "--shard", "0/1", data=cifar10_dir) == 0
    assert invariance(folder, "--collect", data=cifar10_dir) == 0
    return tables(folder)


def test_the_slurm_script_asks_for_the_resources_of_the_options(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from sweep.launch import add_launch_args, make_executor

    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun here
    parser = argparse.ArgumentParser()
    add_launch_args(parser)
    args = parser.parse_args(["--launcher", "submitit", "--cluster", "slurm", "--slurm-partition", "gpu",
                              "--slurm-account", "lab", "--gpus-per-task", "4", "--cpus-per-task", "8",
                              "--timeout-min", "90", "--slurm-array-parallelism", "3",
                              "--slurm-additional-parameters", "qos=high", "--slurm-additional-parameters",
                              "constraint=a100"])
    executor = make_executor(args, tmp_path, name="augshift-cifar10")
    slurm = executor._executor
    slurm.parameters["map_count"] = 7  # what a 7-run map_array / batch() sets
    text = slurm._make_submission_file_text("python -u -m submitit.core._submit x", "uid")
    lines = set(text.splitlines())
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --ntasks-per-node=4", "#SBATCH --cpus-per-task=8", "#SBATCH --time=90",
                 "#SBATCH --array=0-6%3", "#SBATCH --qos=high", "#SBATCH --constraint=a100", "#SBATCH --nodes=1",
                 "#SBATCH --job-name=augshift-cifar10", "#SBATCH --signal=USR2@90", "#SBATCH --open-mode=append"):
        assert line in lines, (line, text)
    assert f"#SBATCH --output={tmp_path}/%A_%a/%A_%a_0_log.out" in lines  # the logs under the sweep's folder
    assert text.rstrip().endswith(" python -u -m submitit.core._submit x") and "\nsrun " in text


def test_the_launcher_options_are_refused_with_shard(tmp_path):
    with pytest.raises(UsageError, match="drop --shard"):
        invariance(tmp_path, *SUBMITIT, "--shard", "0/2", data=Path("unused"))


@pytest.mark.slow
def test_a_submitted_sweep_gives_the_tables_of_one_shard(tmp_path, cifar10_dir, sharded, capsys):
    assert invariance(tmp_path, *SUBMITIT, data=cifar10_dir) == 0
    assert "submitted 4 run(s)" in capsys.readouterr().out
    assert tables(tmp_path) == sharded
    logs = sorted((tmp_path / "work" / "cifar10" / "submitit").glob("*/*_log.out"))
    assert len(logs) == 4  # one job per run, its log under the work folder
    # every run was trained in a job: its summary line is in exactly one job's log
    assert sorted(line.split(":")[0] for log in logs for line in log.read_text().splitlines()
                  if ": accuracy " in line) == sorted(RUNS)


@pytest.mark.slow
def test_no_wait_returns_at_once_and_collect_writes_the_tables_later(tmp_path, cifar10_dir, sharded):
    assert invariance(tmp_path, *SUBMITIT, "--no-wait", data=cifar10_dir) == 0
    assert not (tmp_path / "out" / "results.json").exists()
    with pytest.raises(UsageError, match="run the missing shards first"):
        invariance(tmp_path, *SUBMITIT, "--collect", data=cifar10_dir)  # the jobs are still starting
    results = [tmp_path / "work" / "cifar10" / name / "result.json" for name in RUNS]
    deadline = time.time() + 300
    while not all(path.is_file() for path in results) and time.time() < deadline:
        time.sleep(0.5)
    assert invariance(tmp_path, *SUBMITIT, "--collect", data=cifar10_dir) == 0
    assert tables(tmp_path) == sharded


@pytest.mark.slow
def test_a_failing_run_is_named_with_its_log_and_the_others_finish(tmp_path, cifar10_dir, sharded, capsys):
    broken = tmp_path / "work" / "cifar10" / "test_resnet_seed1"
    broken.mkdir(parents=True)
    (broken / "checkpoint.pt").write_bytes(b"not a checkpoint")  # the run raises when it reads its state
    capsys.readouterr()
    assert invariance(tmp_path, *SUBMITIT, data=cifar10_dir) == 1  # tables written, not of every run
    message = capsys.readouterr().err
    assert "1 of 4 run(s) failed" in message
    assert "run test_resnet_seed1 (job " in message and "UnpicklingError" in message and "checkpoint.pt" in message
    assert "--shard 2/4" in message
    others = [name for name in RUNS if name != "test_resnet_seed1"]
    assert all((tmp_path / "work" / "cifar10" / name / "result.json").is_file() for name in others)
    partial = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["cifar10"]
    assert partial["missing"] == ["test_resnet_seed1"] and sorted(r["name"] for r in partial["runs"]) == sorted(others)
    assert "**Missing runs** (they failed" in (tmp_path / "out" / "results.md").read_text()
    # the printed command reruns the failed run alone; then the tables are those of the unsharded sweep
    (broken / "checkpoint.pt").unlink()
    rerun = message.split("rerun it alone here: ")[1].splitlines()[0].split()
    assert invariance(tmp_path, *rerun[rerun.index("--shard"):], data=cifar10_dir) == 0
    assert invariance(tmp_path, "--collect", data=cifar10_dir) == 0
    assert tables(tmp_path) == sharded


def _task_of(work: Path) -> int:
    """The pid of the submitit task (``submitit.core._submit``) whose job folder is under ``work``."""
    for proc in Path("/proc").iterdir():
        try:
            words = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in words and any(str(work).encode() in w for w in words):
            return int(proc.name)
    return 0


@pytest.mark.slow
def test_a_run_signalled_mid_epoch_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path, cifar10_dir):
    longer = ["--models", "test_resnet", "--seeds", "0", "--train-limit", "3000", "--epochs", "2", "--batch-size",
              "25"]
    reference = tmp_path / "reference"
    assert invariance(reference, *longer, "--shard", "0/1", data=cifar10_dir) == 0
    command = [sys.executable, str(ROOT / "benchmarks" / "invariance.py"), *TINY, *longer, *SUBMITIT, "--data",
               f"cifar10={cifar10_dir}", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks"),
                                                        os.environ.get("PYTHONPATH", "")])}
    sweep = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "work" / "cifar10" / "test_resnet_seed0"
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").is_file() and time.time() < deadline:  # the first epoch is done
        time.sleep(0.05)
    task = _task_of(tmp_path / "work")
    assert task and not (run / "result.json").exists()
    os.kill(task, signal.SIGUSR2)  # submitit's timeout / preemption signal, in the middle of the second epoch
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, output
    (log,) = (tmp_path / "work" / "cifar10" / "submitit").glob("*/*_log.out")
    text = log.read_text()
    assert "Caught signal SIGUSR2" in text and "Requeued job" in text
    assert "test_resnet_seed0: resuming after epoch 1" in text  # continued from its checkpoint, not from scratch
    resumed = without_timings(json.loads((run / "result.json").read_text()))
    uninterrupted = without_timings(json.loads((reference / "work" / "cifar10" / run.name / "result.json").read_text()))
    assert resumed == uninterrupted


@pytest.mark.slow
def test_the_imagenet_preset_runs_end_to_end_on_a_tiny_image_folder(tmp_path, capsys):
    """The ImageNet preset's code path (image folder train/ + val/, images resized to the input side, the test set
    kept larger for Zhang's crop protocols, fractional and crop_worst, the projected GPU-hours printed before
    submitting) on 3 classes of tiny generated images, one row, one epoch, through submitit's local executor."""
    import numpy as np
    from PIL import Image

    import invariance as script

    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for label in ("a", "b", "c"):
            folder = tmp_path / "imagenet" / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    argv = ["--preset", "imagenet", "--data", f"imagenet={tmp_path / 'imagenet'}", "--models", "resnet50",
            "--seeds", "0", "--epochs", "1", "--batch-size", "8", "--image-size", "32", "--crop-from", "40",
            "--curve-size", "0", "--threads", "1", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
            *SUBMITIT]
    assert script.main(argv) == 0
    assert "imagenet: 1 runs, projected" in capsys.readouterr().out
    block = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["imagenet"]
    summary = block["summary"]["resnet50"]
    assert {"consistency_crop", "consistency_crop_worst", "consistency_fractional", "accuracy_crop_worst"} <= set(summary)
    run = block["runs"][0]
    assert run["inputs"]["protocols"] == ["random", "circular", "fractional", "crop", "crop_worst"]
    assert run["counts"]["samples"] == 12 and (tmp_path / "work" / "imagenet" / "resnet50_seed0" / "best.pt").is_file()
