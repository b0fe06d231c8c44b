"""Output paths, checked before a command does any work (the checked option types are `augshift.arguments`)."""
from __future__ import annotations

import argparse

from ..reporting.files import check_output_file, check_output_folder

OUTPUT_FOLDERS = ("out",)  # argument names (dest) of output folders and output files, checked before any work
OUTPUT_FILES = {"save_model": "--save-model"}


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse (`UsageError`) an output folder or file that cannot be written, before any work."""
    for name in OUTPUT_FOLDERS:
        if getattr(args, name, None):
            check_output_folder(getattr(args, name), option=f"--{name}")
    for name, option in OUTPUT_FILES.items():
        if getattr(args, name, None):
            check_output_file(getattr(args, name), option=option)
