"""The timm `train.py` augshift-timm runs: the small contract it relies on (`CONTRACT`), checked before any of
the script's code runs (`module_level_names`) and after it is imported (`check_contract`), and
`load_train_script`, which imports it as a module."""
from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import os
import sys
from types import ModuleType

from augshift.errors import UsageError

TRAIN_MODULE = "augshift_timm_train"  # sys.modules name of the loaded train.py
CONTRACT = ("parser", "_parse_args", "main", "ClassificationTask", "train_one_epoch", "validate")
VALIDATE_PARAMETERS = ("model", "loader", "args")
SUPPORTED_TRAIN_SCRIPTS = (
    "train.py of pytorch-image-models with timm >= 1.0.27 (the versions whose main() builds a "
    "timm.task.ClassificationTask with get_trainable_module(); tested with train.py 1.0.29.dev0 and timm 1.0.31)"
)


class TrainScriptError(UsageError):
    """The given train.py does not fit the contract this launcher relies on (a user mistake: one line, exit 2).

    A `UsageError`: `main` prints `augshift-timm: error: <message>` and returns 2.

    Args:
        args: the message, as for any exception: what is wrong with the file and what is supported
            (`SUPPORTED_TRAIN_SCRIPTS`).
        kwargs: none are accepted (built-in exceptions take no keyword arguments).

    Examples:
        >>> error = TrainScriptError("train.py has no module-level parser")
        >>> isinstance(error, UsageError), str(error)
        (True, 'train.py has no module-level parser')
    """


def check_contract(train: ModuleType) -> None:
    """Raise `TrainScriptError` naming what of `CONTRACT` the imported `train` gets wrong (that the
    names exist is checked before import, by `load_train_script`)."""
    import timm
    import timm.task

    where = getattr(train, "__file__", train.__name__)
    if not isinstance(train.parser, argparse.ArgumentParser):
        raise TrainScriptError(f"{where}: 'parser' is a {type(train.parser).__name__}, not an argparse.ArgumentParser")
    if train.ClassificationTask is not timm.task.ClassificationTask:
        raise TrainScriptError(
            f"{where}: 'ClassificationTask' is not timm.task.ClassificationTask; augshift-timm supports {SUPPORTED_TRAIN_SCRIPTS}"
        )
    if not hasattr(timm.task.ClassificationTask, "get_trainable_module"):
        raise TrainScriptError(f"the installed timm {timm.__version__} is too old; augshift-timm supports {SUPPORTED_TRAIN_SCRIPTS}")
    parameters = inspect.signature(train.validate).parameters
    lacking = [name for name in VALIDATE_PARAMETERS if name not in parameters]
    if lacking:
        raise TrainScriptError(
            f"{where}: validate() has no parameter {', '.join(lacking)}; augshift-timm supports {SUPPORTED_TRAIN_SCRIPTS}"
        )


def module_level_names(path: str) -> set[str]:
    """The names a Python file binds at module level (defs, classes, assignments, imports), read without running it."""
    with open(path, "rb") as handle:
        try:
            tree = ast.parse(handle.read(), filename=path)
        except (SyntaxError, ValueError) as error:
            raise TrainScriptError(f"{path} is not a Python file ({error}); give the path of your timm train.py") from None
    names: set[str] = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.If, ast.Try, ast.With)):  # module-level blocks bind module-level names too
            nodes.extend(node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", [])
                         + [n for handler in getattr(node, "handlers", []) for n in handler.body])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def load_train_script(path: str) -> ModuleType:
    """Import `path` (a timm train.py) as the module `TRAIN_MODULE` and check its contract; a file that
    does not bind every name of `CONTRACT` at module level is refused before any of its code runs.

    Once imported, `parser` must be an `argparse.ArgumentParser`, `ClassificationTask` timm's, the installed
    timm recent enough, and `validate` must take `model`, `loader` and `args`.

    Args:
        path: the train.py file (a folder, a missing file or a file that is not Python is refused).

    Returns:
        The imported module (also `sys.modules[TRAIN_MODULE]`).

    Raises:
        TrainScriptError: when the file does not fit the contract, or importing it fails for a missing module;
            the message says what is wrong and what is supported (`SUPPORTED_TRAIN_SCRIPTS`).

    Examples:
        >>> import os, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "train.py")
        ...     with open(path, "w") as handle:
        ...         _ = handle.write("print('ran'); import argparse; parser = argparse.ArgumentParser()")
        ...     load_train_script(path)  # refused without running it: nothing is printed
        Traceback (most recent call last):
        ...
        augshift.integrations.timm.script.TrainScriptError: /.../train.py has no module-level _parse_args, main,
        ClassificationTask, train_one_epoch, validate; augshift-timm supports train.py of pytorch-image-models ...
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     load_train_script(folder)
        Traceback (most recent call last):
        ...
        augshift.integrations.timm.script.TrainScriptError: /... is a folder; give the path of your timm train.py
        file first
    """
    if os.path.isdir(path):
        raise TrainScriptError(f"{path} is a folder; give the path of your timm train.py file first")
    if not os.path.isfile(path):
        raise TrainScriptError(f"no such file: {path}; give the path of your timm train.py first")
    missing = [name for name in CONTRACT if name not in module_level_names(path)]
    if missing:
        raise TrainScriptError(f"{path} has no module-level {', '.join(missing)}; augshift-timm supports {SUPPORTED_TRAIN_SCRIPTS}")
    spec = importlib.util.spec_from_file_location(TRAIN_MODULE, path)
    if spec is None or spec.loader is None:
        raise TrainScriptError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[TRAIN_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        raise TrainScriptError(f"importing {path} failed ({error}); augshift-timm supports {SUPPORTED_TRAIN_SCRIPTS}") from error
    check_contract(module)
    return module
