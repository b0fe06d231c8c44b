"""Checked command-line values: ``argparse`` types for counts and sizes, a parser whose errors take one line
like every other user error, and the output paths, checked before a command does any work."""
from __future__ import annotations

import argparse
from typing import Callable, NoReturn

from ..reporting.files import check_output_file, check_output_folder

OUTPUT_FOLDERS = ("out",)  # argument names (dest) of output folders and output files, checked before any work
OUTPUT_FILES = {"save_model": "--save-model"}


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors print one line (``<prog>: error: ... (see <prog> --help)``)
    instead of the usage text, and exit with 2 as before; its sub-parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole(minimum: int) -> Callable[[str], int]:
    """An ``argparse`` type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An ``argparse`` type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse (:class:`~augshift.errors.UsageError`) an output folder or file that cannot be written, before any work."""
    for name in OUTPUT_FOLDERS:
        if getattr(args, name, None):
            check_output_folder(getattr(args, name), option=f"--{name}")
    for name, option in OUTPUT_FILES.items():
        if getattr(args, name, None):
            check_output_file(getattr(args, name), option=option)
