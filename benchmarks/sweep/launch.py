"""A sweep submitted to a cluster through submitit (`--launcher submitit`): the missing runs as one job array,
each array task exactly the run `--shard K/N` would execute (`run_one` into `<workdir>/<name>`: the same seed
streams, the same resumable `checkpoint.pt` and `result.json`), then a wait with a progress bar and the runs
that failed named, each with the end of its log and the command that reruns it alone.

A preempted or timed-out task (submitit's signal, `USR2`) is requeued (`RunJob.checkpoint`) and continues from
the run's last finished epoch; a run over several GPUs is one task of `--gpus-per-task` processes that join one
process group as under `torchrun`. The same code runs on one machine with `--cluster local` (real
subprocesses), which is how it is tested.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from augshift.distributed import init_distributed
from augshift.errors import require
from augshift.progress import progress_bar
from augshift.reporting.provenance import command_line

from .runs import RunData, run_one
from .spec import RunSpec

LAUNCHERS = ("local", "submitit")
CLUSTERS = ("slurm", "local", "debug")
LOG_LINES = 20  # lines of a failed run's log in its report
# the launcher's options: those taking a value, and the flags (dropped from the command that reruns one run)
VALUED = ("--launcher", "--cluster", "--slurm-partition", "--slurm-account", "--gpus-per-task", "--cpus-per-task",
          "--mem-gb", "--timeout-min", "--slurm-array-parallelism", "--slurm-additional-parameters",
          "--poll-seconds", "--shard")
FLAGS = ("--no-wait", "--collect")


class RunsFailed(RuntimeError):
    """Runs of a submitted sweep failed; the message names each, with the end of its log and how to rerun it."""


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    """The options of `--launcher submitit`: the cluster, each run's resources, and waiting.

    Adds `--launcher`, `--cluster`, `--slurm-partition`, `--slurm-account`, `--gpus-per-task`,
    `--cpus-per-task`, `--mem-gb`, `--timeout-min`, `--slurm-array-parallelism`,
    `--slurm-additional-parameters KEY=VALUE` (repeatable), `--no-wait` and `--poll-seconds`.

    Args:
        parser: the benchmark script's parser, changed in place.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_launch_args(parser)
        >>> args = parser.parse_args(["--launcher", "submitit", "--gpus-per-task", "2",
        ...                           "--slurm-additional-parameters", "qos=high"])
        >>> args.launcher, args.cluster, args.gpus_per_task, args.slurm_additional_parameters, args.no_wait
        ('submitit', None, 2, ['qos=high'], False)
    """
    group = parser.add_argument_group("cluster (--launcher submitit; needs the cluster extra)")
    add = group.add_argument
    add("--launcher", choices=LAUNCHERS, default="local",
        help="local: run here (or this --shard); submitit: submit the missing runs as one job array, wait, collect")
    add("--cluster", choices=CLUSTERS, default=None,
        help="submitit's executor (default: slurm where sbatch exists, else local processes on this machine)")
    add("--slurm-partition", default=None, help="the partition each run is queued on")
    add("--slurm-account", default=None, help="the account each run is charged to")
    add("--gpus-per-task", type=int, default=1,
        help="GPUs of one run (one array task); more than 1: the run is data-parallel, one process per GPU")
    add("--cpus-per-task", type=int, default=None, help="CPU cores of each process of a run")
    add("--mem-gb", type=float, default=None, help="memory of one run's node share, in GB")
    add("--timeout-min", type=int, default=24 * 60,
        help="wall time of one array task; a run still training then is requeued and resumes from its last epoch")
    add("--slurm-array-parallelism", type=int, default=256, help="array tasks running at once")
    add("--slurm-additional-parameters", action="append", default=[], metavar="KEY=VALUE",
        help="any other sbatch option, e.g. qos=high or constraint=a100 (repeatable)")
    add("--no-wait", action="store_true",
        help="submit and return at once; the same command with --collect writes the tables when the runs are done")
    add("--poll-seconds", type=float, default=30.0, help="how often the waiting command asks the jobs' states")


def parameters(args: argparse.Namespace, *, name: str) -> dict[str, Any]:
    """submitit's parameters (`AutoExecutor.update_parameters`) for the options of `add_launch_args`.

    Args:
        args: the parsed options.
        name: the job name.

    Returns:
        The parameters: one node per run, `--gpus-per-task` processes (one per GPU; one on CPU), the Slurm
        options given.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_launch_args(parser)
        >>> args = parser.parse_args(["--gpus-per-task", "4", "--slurm-partition", "gpu", "--timeout-min", "60",
        ...                           "--slurm-additional-parameters", "qos=high"])
        >>> params = parameters(args, name="invariance")
        >>> params["tasks_per_node"], params["gpus_per_node"], params["slurm_partition"], params["timeout_min"]
        (4, 4, 'gpu', 60)
        >>> params["slurm_additional_parameters"]
        {'qos': 'high'}
    """
    extra = {}
    for item in args.slurm_additional_parameters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--slurm-additional-parameters takes KEY=VALUE, got {item!r}")
        extra[key.replace("-", "_")] = value
    gpus = max(0, args.gpus_per_task)
    optional = {"slurm_partition": args.slurm_partition, "slurm_account": args.slurm_account,
                "cpus_per_task": args.cpus_per_task, "mem_gb": args.mem_gb}
    return {"name": name, "nodes": 1, "tasks_per_node": max(1, gpus), "gpus_per_node": gpus,
            "timeout_min": args.timeout_min, "slurm_array_parallelism": args.slurm_array_parallelism,
            **{k: v for k, v in optional.items() if v is not None},
            **({"slurm_additional_parameters": extra} if extra else {})}


def make_executor(args: argparse.Namespace, folder: Path, *, name: str) -> Any:
    """The `submitit.AutoExecutor` of the options, its logs under `folder` (`%j`: one per job).

    Args:
        args: the parsed options of `add_launch_args`.
        folder: where submitit keeps each job's pickles and logs.
        name: the job name.

    Returns:
        The executor, its parameters set (`parameters`); parameters its cluster does not know (Slurm's on
        `local`) are left out.
    """
    submitit = require("submitit", purpose="--launcher submitit")
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=args.cluster)
    known = {**{k: v for k, v in parameters(args, name=name).items()
                if not k.startswith("slurm_") or executor.cluster == "slurm"}}
    executor.update_parameters(**known)
    return executor


@dataclass
class RunJob:
    """One array task: the run `run_one` trains into `run_dir` (resuming from its checkpoint), on the data
    `load` gives, in every process of the task (several: one process group, as under `torchrun`).

    submitit requeues it when the task is preempted or runs out of time (`checkpoint`, submitit's
    `Checkpointable` protocol); the requeued task continues from the run's last finished epoch.

    Args:
        spec: the run.
        load: returns the `RunData` (called in the task; it must pickle: a function without an in-process cache).
        run_dir: the run's folder (`<workdir>/<name>`).
        device: the device option of the script (`None`: `cuda:<LOCAL_RANK>` when there is one, else CPU).
        threads: torch threads (0: torch's choice).
    """

    spec: RunSpec
    load: Callable[[], RunData]
    run_dir: Path
    device: str | None = None
    threads: int = 0

    def __call__(self) -> str:
        submitit = require("submitit", purpose="--launcher submitit")
        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        run_one(self.spec, self.load(), self.run_dir, init_distributed(self.device))
        return self.spec.name

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """The same job again (submitit requeues it); the run's state is its `checkpoint.pt`."""
        submitit = require("submitit", purpose="--launcher submitit")
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def rerun_command(command: str, index: int, count: int) -> str:
    """The command that runs one run of a sweep here: `command` without the launcher's options, with
    `--shard index/count` (the shard of that run alone when `count` is the number of runs).

    Examples:
        >>> rerun_command("python benchmarks/invariance.py --launcher submitit --slurm-partition gpu --no-wait "
        ...               "--epochs 2", 3, 8)
        'python benchmarks/invariance.py --epochs 2 --shard 3/8'
    """
    words, kept, skip = shlex.split(command), [], False
    for word in words:
        name = word.split("=", 1)[0]
        if skip or name in FLAGS or name in VALUED:
            skip = not skip and name in VALUED and "=" not in word
            continue
        kept.append(word)
    return shlex.join([*kept, "--shard", f"{index}/{count}"])


def log_tail(job: Any, lines: int = LOG_LINES) -> str:
    """The last `lines` lines of a job's error log (else its output), indented."""
    text = job.stderr() or job.stdout() or "(no log yet)"
    return "\n".join("    " + line for line in text.rstrip().splitlines()[-lines:])


def submit_runs(specs: Sequence[RunSpec], args: argparse.Namespace, work: Path, *,
                load: Callable[[], RunData]) -> list[str]:
    """Submit the runs of `specs` without a `result.json` as one job array, wait for them (unless
    `--no-wait`) and report those that failed.

    Args:
        specs: the sweep's runs, in order (the ones already finished are not submitted).
        args: the parsed options (`add_launch_args`, and `device`, `threads` of the scripts).
        work: the sweep's folder; submitit's logs go to `<work>/submitit/<job id>`.
        load: returns the `RunData`, called in each task.

    Returns:
        The names of the runs submitted.

    Raises:
        RunsFailed: after every run ended, when some failed: each named with the end of its log and the
            command that reruns it alone (`--shard K/N`); the others' results are in their folders.
    """
    todo = [(i, spec) for i, spec in enumerate(specs) if not (work / spec.name / "result.json").is_file()]
    if not todo:
        return []
    executor = make_executor(args, work / "submitit", name=f"augshift-{work.name}")
    submitit_environment()
    jobs = _map(executor, todo, args, work, load)
    first = jobs[0].job_id.split("_")[0]
    print(f"submitted {len(jobs)} run(s) of {work} as job array {first} on {executor.cluster}; logs in "
          f"{work / 'submitit'}", flush=True)
    if args.no_wait:
        print("once they have finished, the same command with --collect instead of --no-wait writes the tables",
              flush=True)
        return [spec.name for _, spec in todo]
    wait(jobs, [spec for _, spec in todo], [i for i, _ in todo], len(specs), poll_seconds=args.poll_seconds)
    return [spec.name for _, spec in todo]


def _map(executor: Any, todo: Sequence[tuple[int, RunSpec]], args: argparse.Namespace, work: Path,
         load: Callable[[], RunData]) -> list[Any]:
    with executor.batch():
        return [executor.submit(RunJob(spec, load, work / spec.name, args.device, args.threads)) for _, spec in todo]


def wait(jobs: Sequence[Any], specs: Sequence[RunSpec], indices: Sequence[int], count: int, *,
         poll_seconds: float) -> None:
    """Wait for every job with a progress bar; raise `RunsFailed` naming the failed runs once all ended.

    Args:
        jobs: the submitted jobs, one per run.
        specs: their runs.
        indices: each run's position in the sweep (for its `--shard` rerun command).
        count: the number of runs in the sweep.
        poll_seconds: how often the jobs' states are asked.
    """
    submitit = require("submitit", purpose="--launcher submitit")
    by_id = {job.job_id: (job, spec, index) for job, spec, index in zip(jobs, specs, indices)}
    failed = []
    with progress_bar(desc="runs", total=len(jobs), leave=True) as bar:
        for job in submitit.helpers.as_completed(list(jobs), poll_frequency=poll_seconds):
            _, spec, index = by_id[job.job_id]
            try:
                job.result()
            except Exception as error:  # noqa: BLE001 -- every failure is reported with its log, the rest go on
                failed.append((job, spec, index, error))
                print(f"run {spec.name} failed (job {job.job_id}: {type(error).__name__})", file=sys.stderr,
                      flush=True)
            bar.update(1)
    if failed:
        command = command_line()
        raise RunsFailed("\n".join(
            [f"{len(failed)} of {len(jobs)} run(s) failed; the others' results are in their folders."]
            + [f"run {spec.name} (job {job.job_id}), the end of {job.paths.stderr}:\n{log_tail(job)}\n"
               f"  rerun it alone here: {rerun_command(command, index, count)}"
               for job, spec, index, _ in failed]
            + ["or the same command again: it submits only the runs without a result.json"]))


def submitit_environment() -> None:
    """Make the harness importable in the jobs (they unpickle `RunJob`): `benchmarks/` on `PYTHONPATH`, which
    the local processes and Slurm's tasks inherit."""
    here = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if here not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([here, *paths])
