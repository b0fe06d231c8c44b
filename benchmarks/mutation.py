"""Mutation score of the core: each core module mutated by mutmut and run against the default tests that exercise it.

    python benchmarks/mutation.py                                          # every module in MODULES
    python benchmarks/mutation.py --modules shifts,loss --max-minutes 20    # some of them, at most 20 minutes
    python benchmarks/mutation.py --modules shifts --resume                 # on from where it stopped

mutmut (3.x, the `test` extra) rather than cosmic-ray: it runs one test session, records which tests call each
function, then forks one process per mutant from a warm interpreter (torch, pytest and the test modules imported
once) and runs only the tests that call the mutated function; cosmic-ray starts a fresh test run per mutant, which
on two cores is hours for the core. Each module is mutated in its own work folder (`--work`, a copy of the
sources and tests with the shared `[tool.mutmut]` settings of `pyproject.toml` and the module's own
`only_mutate` and tests), so a module's mutants run its tests only. A run of some modules (`--modules`)
replaces their rows in `--out`'s result and keeps the others, each row naming the commands that measured it;
`--resume` goes on in a module's work folder (its source unchanged): the mutants a run out of time left, and the
survivors once tests were added, run with the current tests; those detected before stay detected.

A surviving mutant listed in `mutation_accepted.json` (beside this script; keyed by the mutated function and the
changed lines, which stay stable when mutmut renumbers) carries its reason into the table: `equivalent` (no
observable change: left out of the score) or `accepted` (a change the tests do not pin, counted as survived).
The score is (killed + timeout) / (mutants - equivalent). Writes `results.md` and `results.json` to `--out`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from augshift.arguments import Parser, positive_float, whole
from augshift.errors import run_command
from augshift.reporting.provenance import command_line, machine
from augshift.reporting.results import write_results

ROOT = Path(__file__).resolve().parent.parent
ACCEPTED = Path(__file__).with_name("mutation_accepted.json")
COPIED = ("augshift", "integrations", "benchmarks", "tests", "pyproject.toml")  # what the tests import and read
DETECTED = ("killed", "timeout")
# each mutant's tests on one thread: --max-children processes of torch's default threads each would oversubscribe
# the cores (a resnet18 forward measured 60x slower that way on two cores)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Target:
    """A module to mutate and the test files (kept few: each mutant runs those of them that call its function).

    `deselect`: words of test names left out (`-k "not ..."`): end-to-end runs of many seconds that reach the
    module's functions only on their way (a surviving mutant runs every test that calls it). `package`: the folder
    the tests import the module's top package from when it is not the checkout (`benchmarks` for `sweep`): the
    copy lifts the package there to the top, so that mutmut's module name is the one the tests import."""

    path: str
    tests: tuple[str, ...]
    deselect: tuple[str, ...] = ()
    package: str = ""

    @property
    def mutated(self) -> str:
        """The module's path in the work folder."""
        return self.path.removeprefix(f"{self.package}/") if self.package else self.path


END_TO_END = ("finetuning", "per_epoch_trace")  # test_comparisons: real training runs of 4-18 s each
# a test that traces with torch.compile(fullgraph=True), which cannot trace mutmut's call recording
UNDER_COMPILE = ("compiling_is_true",)

MODULES: dict[str, Target] = {
    "shifts": Target("augshift/shifts.py", ("tests/test_shift.py",)),
    "views": Target("augshift/views.py", ("tests/test_views.py", "tests/test_protocols.py", "tests/test_metrics.py")),
    "protocols": Target("augshift/protocols.py", ("tests/test_protocols.py",)),
    "loss": Target("augshift/loss.py", ("tests/test_augshift.py",)),
    "features": Target("augshift/features.py", ("tests/test_features.py", "tests/test_augshift.py"),
                       deselect=("swin", "densenet", "vit_", "regnetx", "ddp_wrapped")),
    "augshift": Target("augshift/augshift.py", ("tests/test_augshift.py", "tests/test_labels.py"),
                       deselect=("ddp_wrapped", *UNDER_COMPILE)),
    "metrics": Target("augshift/metrics.py", ("tests/test_metric_checks.py", "tests/test_metrics.py")),
    "intervals": Target("augshift/intervals.py",
                        ("tests/test_intervals.py", "tests/test_comparisons.py", "tests/test_metrics.py"),
                        deselect=END_TO_END),
    "report": Target("augshift/report.py", ("tests/test_report.py", "tests/test_metrics.py", "tests/test_comparisons.py"),
                     deselect=END_TO_END),
    "permute": Target("augshift/permute.py", ("tests/test_permute.py",)),
    "summary": Target("benchmarks/sweep/summary.py",  # the rows and the pairs of runs compared
                      ("tests/test_summary.py", "tests/test_comparisons.py", "tests/test_sweep.py"),
                      deselect=(*END_TO_END, "two_shards", "resume_continues"), package="benchmarks"),
}


def module_list(text: str) -> list[str]:
    """`--modules`: comma-separated names of `MODULES`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODULES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"names among {', '.join(MODULES)}; got {text!r}")
    return names


def prepare(work: Path, target: Target) -> None:
    """A fresh copy of the sources and tests in `work`, with the module's mutmut settings added to the copy of
    `pyproject.toml` (its last table is `[tool.mutmut]`)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "results", "runs", "*.egg-info")
    for name in COPIED:
        source = ROOT / name
        (shutil.copytree(source, work / name, ignore=skip) if source.is_dir() else shutil.copy2(source, work / name))
    if re.findall(r"^\[([^]]+)\]", (work / "pyproject.toml").read_text(), re.MULTILINE)[-1] != "tool.mutmut":
        raise RuntimeError("pyproject.toml must end with its [tool.mutmut] table: the per-module settings go there")
    top = target.mutated.split("/")[0]
    if target.package:
        shutil.move(work / target.package / top, work / top)
    selection = list(target.tests) + (["-k", " and ".join(f"not {word}" for word in target.deselect)]
                                      if target.deselect else [])
    settings = {"source_paths": [top], "only_mutate": [target.mutated],
                "pytest_add_cli_args_test_selection": selection}
    with open(work / "pyproject.toml", "a") as file:
        file.writelines(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


def mutmut(work: Path, *args: str, timeout: float | None = None) -> str:
    """Run `python -m mutmut ARGS` in `work`; its output (a run past `timeout` is stopped: TimeoutError)."""
    return run_python(work, "-m", "mutmut", *args, timeout=timeout)


def run_python(work: Path, *args: str, timeout: float | None = None) -> str:
    """Run `python ARGS` in `work`; its output (a run past `timeout` is stopped: TimeoutError)."""
    process = subprocess.Popen([sys.executable, *args], cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **ONE_THREAD})
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise TimeoutError(f"python {' '.join(args)} ran past its time") from None
    if process.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed in {work}:\n{output[-3000:]}")
    return output


def changed_lines(diff: str) -> list[str]:
    """The removed and added lines of a unified diff, stripped: a survivor's key with its function."""
    return [line[0] + line[1:].strip() for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def function_of(mutant: str) -> str:
    """`augshift.shifts.x_shift__mutmut_3` -> `augshift.shifts.x_shift`."""
    return mutant.rsplit("__mutmut_", 1)[0]


def accepted_table() -> list[dict]:
    """The committed survivors with their reasons."""
    return json.loads(ACCEPTED.read_text())


def reason_for(mutant: str, diff: str, table: list[dict]) -> dict | None:
    key = changed_lines(diff)
    return next((entry for entry in table
                 if entry["function"] == function_of(mutant) and entry["changed"] == key), None)


def measure(name: str, target: Target, work: Path, *, seconds: float, children: int, table: list[dict],
            resume: bool, run: dict) -> dict:
    """Mutate one module in `work` and run its tests: counts by status and the survivors with their diffs (their
    reasons are looked up when the result is written, `classified`).

    With `resume` and a work folder of the same module source, the tests are refreshed there and only the mutants
    not yet detected run (those a run out of time left, and the survivors not explained in the table); the ones
    detected stay detected, which holds while the tests only grow (a module whose test selection changed needs a run
    without `resume`: the selection is written when the folder is made). `run` (command, machine, date) is added to the folder's runs,
    which the row lists; a run out of time is listed too (TimeoutError)."""
    source = hashlib.sha256((ROOT / target.path).read_bytes()).hexdigest()
    record = work / "measured.json"
    resumed = resume and record.exists() and json.loads(record.read_text())["sha256"] == source
    if resumed:
        shutil.rmtree(work / "tests")
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
        statuses = statuses_in(work)
        diffs = diffs_of(work, [mutant for mutant, status in statuses.items() if status == "survived"])
        again = [mutant for mutant, status in statuses.items() if status not in DETECTED
                 and not (status == "survived" and reason_for(mutant, diffs[mutant], table))]
    else:
        prepare(work, target)
        record.write_text(json.dumps({"sha256": source, "runs": []}))
        again = []
    start = time.monotonic()
    runs = json.loads(record.read_text())["runs"]
    try:
        if not resumed or again:
            mutmut(work, "run", "--max-children", str(children), *again, timeout=seconds)
    finally:
        runs.append({**run, "seconds": round(time.monotonic() - start), "resumed": resumed})
        record.write_text(json.dumps({"sha256": source, "runs": runs}))
    statuses = statuses_in(work)
    counts = Counter(statuses.values())
    left = sorted(mutant for mutant, status in statuses.items() if status not in DETECTED)
    diffs = diffs_of(work, left)
    survivors = [{"mutant": mutant, "status": statuses[mutant], "diff": diffs[mutant]} for mutant in left]
    return {"module": name, "path": target.path, "sha256": source, "tests": list(target.tests),
            "deselected": list(target.deselect),
            "mutants": len(statuses), "counts": dict(counts), "detected": sum(counts[s] for s in DETECTED),
            "runs": runs, "survivors": survivors}


def classified(row: dict, table: list[dict]) -> dict:
    """`row` with each survivor's kind and reason from the table, and the score they give."""
    survivors = []
    for survivor in row["survivors"]:
        entry = reason_for(survivor["mutant"], survivor["diff"], table)
        survivors.append({**survivor, "kind": entry["kind"] if entry else None,
                          "reason": entry["reason"] if entry else None})
    equivalent = sum(s["kind"] == "equivalent" for s in survivors)
    return {**row, "survivors": survivors, "equivalent": equivalent,
            "score": 100.0 * row["detected"] / (row["mutants"] - equivalent)}


def diffs_of(work: Path, mutants: list[str]) -> dict[str, str]:
    """`{mutant: its change as a unified diff}`, from one interpreter (`mutmut show` per mutant starts one each)."""
    show = "import sys\nfrom mutmut.__main__ import show\nfor name in sys.argv[1:]:\n    show.callback(name)\n"
    output = run_python(work, "-c", show, *mutants) if mutants else ""
    parts = re.split(r"^# (\S+__mutmut_\d+): .*$", output, flags=re.MULTILINE)[1:]  # name, diff, name, diff, ...
    return {name: diff.strip() for name, diff in zip(parts[::2], parts[1::2])}


def statuses_in(work: Path) -> dict[str, str]:
    """`{mutant: status}` of every mutant of the work folder (`not checked` before it runs)."""
    return dict(re.findall(r"^\s+(\S+__mutmut_\d+): (.+)$", mutmut(work, "results", "--all", "true"), re.MULTILINE))


def markdown(results: list[dict], *, missing: list[str]) -> str:
    total_detected = sum(r["detected"] for r in results)
    total_scored = sum(r["mutants"] - r["equivalent"] for r in results)
    lines = ["# Mutation score of the core", "",
             "Score: (killed + timeout) / (mutants - equivalent survivors); each mutant runs the module's tests "
             "that call the mutated function; the runs that measured each row are under Runs.", "",
             "| module | tests | mutants | killed | timeout | survived | equivalent | score % |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        survived = r["mutants"] - r["detected"]
        tests = ", ".join(Path(t).name for t in r["tests"])
        tests += f" (not: {', '.join(r['deselected'])})" if r.get("deselected") else ""
        lines.append(f"| `{r['path']}` | {tests} | {r['mutants']} | "
                     f"{r['counts'].get('killed', 0)} | {r['counts'].get('timeout', 0)} | {survived} | "
                     f"{r['equivalent']} | {r['score']:.1f} |")
    if total_scored:
        lines += ["", f"Total: {total_detected} of {total_scored} non-equivalent mutants detected, "
                      f"{100.0 * total_detected / total_scored:.1f} %."]
    if missing:
        lines += ["", "Not measured yet: " + ", ".join(missing) + "."]
    lines += ["", "## Runs", "", "| module | measured | command | seconds | machine |", "|---|---|---|---:|---|"]
    lines += [f"| {r['module']} | {run['date']} | `{run['command']}` | {run['seconds']} | {run['machine']} |"
              for r in results for run in r["runs"]]
    lines += ["", "A run past its time stopped there; the next (`--resume`) ran the mutants it left and the survivors "
              "with the tests of that moment."]
    lines += ["", "## Survivors", "", "| mutant | status | kind | reason | change |", "|---|---|---|---|---|"]
    for r in results:
        for s in r["survivors"]:
            change = "<br>".join(f"`{line}`" for line in changed_lines(s["diff"])).replace("|", "\\|")
            lines.append(f"| `{s['mutant']}` | {s['status']} | {s['kind'] or 'unexplained'} | "
                         f"{(s['reason'] or '').replace('|', '/')} | {change} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=module_list, default=list(MODULES),
                        help=f"comma-separated, among {', '.join(MODULES)} (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/mutation")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks/runs/mutation",
                        help="where each module's copy is mutated (replaced on each run, unless --resume)")
    parser.add_argument("--max-minutes", type=positive_float, default=50.0,
                        help="time for all modules; those not reached are named as not measured")
    parser.add_argument("--resume", action="store_true",
                        help="in a module's work folder of the same source: refresh the tests and run the mutants "
                             "not yet detected (left by a run out of time, or survivors after tests were added)")
    parser.add_argument("--reasons-only", action="store_true",
                        help="run nothing: rewrite --out's result with the survivors' reasons of mutation_accepted.json")
    parser.add_argument("--max-children", type=whole(1), default=2, help="mutants run at once")
    args = parser.parse_args(argv)
    table = accepted_table()
    manifest = args.out / "results.json"
    rows = {row["module"]: row for row in json.loads(manifest.read_text())["modules"]} if manifest.exists() else {}
    run = {"command": command_line(), "machine": machine("cpu"),
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    deadline = time.monotonic() + 60 * args.max_minutes
    for name in [] if args.reasons_only else args.modules:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            row = rows[name] = measure(name, MODULES[name], args.work / name, seconds=left,
                                       children=args.max_children, table=table, resume=args.resume, run=run)
            print(f"{name}: {row['detected']} of {row['mutants']} mutants detected", flush=True)
        except TimeoutError:
            print(f"{name}: out of time (--max-minutes {args.max_minutes:g}); --resume goes on from where it "
                  "stopped", flush=True)
        write_rows(args.out, rows, table)  # each module's row as it lands
    if args.reasons_only:
        write_rows(args.out, rows, table)
    return 0


def write_rows(out: Path, rows: dict, table: list[dict]) -> None:
    """Write `out`'s result of `rows`, with the survivors' reasons of `table` as they are now."""
    results = [classified(rows[name], table) for name in MODULES if name in rows]
    missing = [name for name in MODULES if name not in {row["module"] for row in results}]
    write_results(out, "results", {"modules": results, "not_measured": missing}, markdown(results, missing=missing))


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
