"""The ``augshift`` command line: ``augshift demo``, ``augshift consistency`` and the position commands
(``locate``, ``channels``, ``attack``).

Each command group lives in its own module with ``register(subparsers)``; the parser sets ``args.run``.
`main` is the error boundary: a user mistake (`UsageError`, a path the user named
that is missing or unusable, a bad option) prints one line on standard error and exits with 2; anything else
keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..errors import run_command
from . import consistency, demo, locate, position
from .options import Parser, check_outputs

COMMAND_GROUPS = (demo, consistency, locate, position)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="augshift", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``augshift`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status (2: a user mistake)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv

    def command() -> int:
        check_outputs(args)
        return int(args.run(args) or 0)

    return run_command("augshift", command, argv)
