"""Start-up time of the `augshift` command line: `augshift --help` and `augshift consistency --help` against
`python -c "import torch"`, the cost the help no longer pays.

    python benchmarks/cli_startup.py               # 5 rounds
    python benchmarks/cli_startup.py --repeats 3

Each candidate is a fresh interpreter (`subprocess`, this one's `sys.executable`), timed on the wall clock from
start to exit. After one untimed warm-up call of each (the file cache), every round runs each candidate once, the
order rotating from round to round, so a machine busy with other work slows all of them alike. Reported: the median
per candidate and the ratio of each help's median to `import torch`'s, with the load average before and after.
Writes `results.json` and `results.md` to `--out` (default `benchmarks/results/cli_startup`).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from paths import RESULTS

from augshift.errors import run_command
from augshift.arguments import Parser, whole
from augshift.reporting.provenance import command_line, machine
from augshift.reporting.results import write_results

BASELINE = "import torch"
CANDIDATES = {
    BASELINE: [sys.executable, "-c", "import torch"],
    "augshift --help": [sys.executable, "-m", "augshift.cli", "--help"],
    "augshift consistency --help": [sys.executable, "-m", "augshift.cli", "consistency", "--help"],
}


def wall_seconds(command: list[str]) -> float:
    """Seconds `command` takes from start to exit (its output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(repeats: int) -> dict[str, list[float]]:
    """`{candidate: [seconds of each round]}`: one warm-up call each, then `repeats` rounds, the order rotating."""
    names = list(CANDIDATES)
    for name in names:
        wall_seconds(CANDIDATES[name])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(wall_seconds(CANDIDATES[name]))
            print(f"round {round_index + 1}/{repeats}: {name}: {seconds[name][-1]:.3f} s", flush=True)
    return seconds


def markdown(medians: dict[str, float], ratios: dict[str, float], repeats: int, summary: dict) -> str:
    """The result in words: one row per candidate (median seconds, ratio to `import torch`)."""
    rows = "".join(f"| `{name}` | {medians[name]:.3f} | {ratios[name]:.3f} |\n" for name in medians)
    load = summary["load_average_1min"]
    return (f"# Command-line start-up\n\nCommand: `{summary['command']}`\n\nMachine: {summary['machine']}; "
            f"Python {summary['python']}; load average (1 min) {load['before']:.2f} before, {load['after']:.2f} "
            f"after.\n\nWall time of a fresh interpreter running each candidate, median of {repeats} rounds (each "
            f"round runs every candidate once, the order rotating; one untimed warm-up call each).\n\n"
            f"| candidate | median s | ratio to `{BASELINE}` |\n|---|---|---|\n{rows}")


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=whole(1), default=5, help="timed rounds (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "cli_startup", help="output folder")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    seconds = measure(args.repeats)
    load_after = os.getloadavg()[0]
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ratios = {name: medians[name] / medians[BASELINE] for name in medians}
    summary = {"command": command_line(), "machine": machine("cpu"), "python": sys.version.split()[0],
               "repeats": args.repeats, "commands": {name: command[1:] for name, command in CANDIDATES.items()},
               "load_average_1min": {"before": load_before, "after": load_after},
               "seconds": seconds, "median_seconds": medians, "ratio_to_import_torch": ratios}
    write_results(args.out, "results", summary, markdown(medians, ratios, args.repeats, summary))
    return 0


if __name__ == "__main__":
    sys.exit(run_command(Path(__file__).name, main, sys.argv[1:],
                         interrupted="result files already written are whole"))
