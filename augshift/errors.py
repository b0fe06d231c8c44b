"""The one exception type for user mistakes, and the one error boundary of the command-line entry points.

`UsageError` is a `ValueError` (so code that catches `ValueError` keeps working); the `augshift`
commands, `augshift-timm` and the Accelerate example (`run_command`) print its message as one line on
standard error and exit with code 2, as `argparse` does for a bad option. So do the `OSError` s about a path
the user named on the command line (a missing `--checkpoint`, an `--out` that is a file, ...). Anything else
that escapes a command is a bug and keeps its traceback.

`TypeError` stays `TypeError`: it marks a programmer's misuse of the Python API (`max_shift=4.0`, a list
where a tensor belongs); the commands never produce one from user input, because `argparse` types them.
"""
from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Callable, NoReturn, Optional, Sequence

EXIT_USAGE = 2  # argparse's exit status for a bad command line
EXIT_INTERRUPTED = 130  # a shell's status for a command ended by SIGINT
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
EXTRAS = {  # the optional packages and the extra of pyproject.toml that installs each
    "matplotlib": "plots", "datasets": "data", "evaluate": "evaluate", "accelerate": "accelerate",
    "transformers": "transformers", "lightning": "lightning", "torchmetrics": "lightning", "submitit": "cluster",
}


class UsageError(ValueError):
    """A user mistake (bad option, path, data or checkpoint); the message names what was wrong and the fix.

    Raised with one message, one line (its only `args`; no `kwargs`): what was wrong and what to do instead.

    Examples:
        >>> from augshift import AugShiftConfig
        >>> AugShiftConfig(max_shift=-1)
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: max_shift must be >= 0 pixels, got -1
    """


class MissingExtraError(UsageError, ImportError):
    """An optional package is not installed; the message names the extra that installs it (an `ImportError` too,
    so `import augshift.integrations.transformers` without transformers fails as an import does)."""


def require(module: str, *, purpose: str) -> ModuleType:
    """Import an optional package (one of `EXTRAS`), or refuse in one line naming the extra that installs it.

    Args:
        module: the package's import name, e.g. `"matplotlib"`.
        purpose: what needs it, for the message (e.g. `"plotting"`).

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the package is not installed.

    Examples:
        >>> require("matplotlib", purpose="plotting").__name__
        'matplotlib'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:  # the package is there but one of its own imports failed: a broken install
            raise
        raise MissingExtraError(f"{purpose} needs {module}, which is not installed: pip install "
                                f"\"augshift[{EXTRAS[module]}]\" (or \"augshift[all]\")") from None


def exit_unless_installed(prog: str, *modules: str, purpose: str) -> None:
    """For a script run as `python -m`, before it imports `modules`: print `require`'s message as one line and
    exit with `EXIT_USAGE` when one is missing.

    Args:
        prog: the script's name in the message.
        *modules: the optional packages it imports (keys of `EXTRAS`).
        purpose: what needs them, for the message.
    """
    for module in modules:
        try:
            require(module, purpose=purpose)
        except MissingExtraError as error:
            _exit_usage(prog, str(error))


def _exit_usage(prog: str, message: str) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _named_by_user(filename: str, argv: Sequence[str]) -> bool:
    """Whether `filename` is, or lies inside, a path given in `argv` (`PATH` or `--opt=PATH`)."""
    target = os.path.abspath(os.fspath(filename))
    for token in argv:
        value = token.split("=", 1)[1] if token.startswith("-") and "=" in token else token
        if value and not value.startswith("-"):
            named = os.path.abspath(value)
            if target == named or target.startswith(named.rstrip(os.sep) + os.sep):
                return True
    return False


def user_error_message(error: BaseException, argv: Sequence[str]) -> Optional[str]:
    """The one-line message for a user mistake, or `None` for anything else (a bug)."""
    if isinstance(error, UsageError):
        message = str(error)
    elif isinstance(error, PATH_ERRORS) and error.filename is not None and _named_by_user(error.filename, argv):
        message = f"{error.strerror or type(error).__name__}: {error.filename}"
    else:
        return None
    return " ".join(message.split())


def run_command(prog: str, command: Callable[[], Optional[int]], argv: Sequence[str], *,
                interrupted: str = "files already written are whole") -> int:
    """Run `command` (an entry point's work, `argv` its arguments) and return its exit status; a user mistake
    prints `<prog>: error: <message>` on standard error and returns `EXIT_USAGE`; Ctrl-C (`KeyboardInterrupt`)
    prints `<prog>: interrupted; <interrupted>` and returns `EXIT_INTERRUPTED`."""
    try:
        return int(command() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 -- re-raised unless it is a user mistake
        message = user_error_message(error, argv)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
