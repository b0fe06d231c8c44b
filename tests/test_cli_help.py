"""``augshift --help`` and every subcommand's ``--help`` answer without importing torch (or any other heavy
library): the parser is built from torch-free modules and a command's code is imported only when it runs."""
from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "timm", "torchvision", "transformers", "datasets")
PROBE = """
import sys
from augshift.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print("imported:", sorted(m for m in {heavy!r} if m in sys.modules), "exit:", code)
"""


@pytest.mark.parametrize("command,option", [
    ([], "COMMAND"), (["demo"], "--data"), (["consistency"], "--protocols"), (["locate"], "--grid"),
    (["channels"], "--top"), (["attack"], "--counts"),
])
def test_help_imports_nothing_heavy(command, option):
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *command, "--help"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip().endswith("imported: [] exit: 0")
    assert option in done.stdout


def test_python_m_augshift_cli_answers_help():
    done = subprocess.run([sys.executable, "-m", "augshift.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "consistency" in done.stdout and "locate" in done.stdout


def test_the_command_runs_once_parsed(monkeypatch):
    """The parser names each command's function, imported when called: what the module holds then runs."""
    from augshift.cli import build_parser, main
    from augshift.cli.parser import Command

    assert build_parser().parse_args(["consistency", "--data", "x"]).run == Command("consistency:run")
    monkeypatch.setattr("augshift.cli.consistency.run", lambda args: 7)
    assert main(["consistency", "--data", "x"]) == 7
