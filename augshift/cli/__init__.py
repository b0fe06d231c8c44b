"""The `augshift` command line: `augshift demo`, `augshift consistency` and the position commands
(`locate`, `channels`, `attack`).

The parser (`.parser`) imports nothing heavy, so `--help` answers at once; the function that runs the command
(`args.run`, a `.parser.Command`) is imported only when called, after parsing. `main` is the error boundary: a user
mistake (`UsageError`, a path the user named that is missing or unusable, a bad option) prints one line on standard
error and exits with 2 (so does a missing optional package, named with its extra, before any work); anything
else keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from ..errors import require, run_command
from .options import check_outputs
from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run `augshift` with `argv` (default: `sys.argv[1:]`); returns the exit status (2: a user mistake)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv

    def command() -> int:
        require("matplotlib", purpose=f"augshift {args.command} (its figures)")  # before any work, not at the end
        check_outputs(args)
        return int(args.run(args) or 0)

    out = getattr(args, "out", None)
    return run_command("augshift", command, argv, interrupted=f"the previous result in {out} is intact" if out else
                       "files already written are whole")
