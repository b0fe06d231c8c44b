"""The ``augshift`` command line: ``augshift demo``, ``augshift consistency``, and the position commands.

Each command lives in its own module, which defines ``register(subparsers)``; the parser adds a
``run(args) -> int`` function as ``args.run``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

COMMAND_MODULES = ("augshift.demo", "augshift.consistency_cli", "augshift.position_cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augshift", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
