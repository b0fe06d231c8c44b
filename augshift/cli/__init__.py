"""The ``augshift`` command line: ``augshift demo``, ``augshift consistency`` and the position commands
(``locate``, ``channels``, ``attack``).

Each command group lives in its own module with ``register(subparsers)``; the parser sets ``args.run``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import consistency, demo, position

COMMAND_GROUPS = (demo, consistency, position)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augshift", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return int(args.run(args) or 0)
