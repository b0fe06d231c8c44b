"""Command-line options every entry point shares (the `augshift` commands, the examples, the benchmark scripts):
`argparse` types for counts and sizes, a parser whose errors take one line like every other user error, and the
sample limits, splits and normalisation options, named alike everywhere. Imports no torch."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, NoReturn, Optional

class Parser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors print one line (`<prog>: error: ... (see <prog> --help)`)
    instead of the usage text, and exit with 2 as before; its sub-parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def whole(minimum: int) -> Callable[[str], int]:
    """An `argparse` type: a whole number >= `minimum`."""

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
    """An `argparse` type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


class _RenamedOption(argparse.Action):
    """Stores the value; an old spelling of the option (listed after its name) still works, with a note naming the
    new one, so committed commands keep running."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        if option_string is not None and option_string != self.option_strings[0]:
            print(f"{parser.prog}: note: {option_string} is now {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_limit_arguments(parser: argparse.ArgumentParser, *, train: Optional[tuple[str, Optional[int]]] = None,
                        evaluate: tuple[str, Optional[int]], help_train: str = "train on the first N images",
                        help_eval: str = "evaluate on the first N images") -> None:
    """The sample limits, named alike in every command and script: `--train-limit N` (commands that train) and
    `--eval-limit N`. `train` / `evaluate` are `(dest, default)`; each command's former names (`--limit`,
    `--train-size` / `--test-size`, `--test-limit`, `--train-samples` / `--eval-samples`) still work,
    with a note."""
    if train is not None:
        parser.add_argument("--train-limit", "--train-size", "--train-samples", dest=train[0], default=train[1],
                            type=whole(1), metavar="N", action=_RenamedOption, help=help_train)
    parser.add_argument("--eval-limit", "--test-limit", "--test-size", "--eval-samples", "--limit", dest=evaluate[0],
                        default=evaluate[1], type=whole(1), metavar="N", action=_RenamedOption, help=help_eval)


def add_split_arguments(parser: argparse.ArgumentParser, *, train: bool) -> None:
    """`--eval-split` (every command; `--test-split` and `--split` are its other names) and, for commands that
    train, `--train-split`. The evaluated split defaults to the source's `test`, else `validation` / `val`
    (`augshift.data.eval_split`)."""
    if train:
        parser.add_argument("--train-split", default="train", help="split of --data to train on (default: train)")
    parser.add_argument("--eval-split", "--test-split", "--split", dest="eval_split", default=None, metavar="SPLIT",
                        help="split of --data to evaluate (default: test if the source has one, else validation or "
                             "val; a source without named splits has 'train' and 'test' = every 5th image)")


def add_normalization_arguments(parser: argparse.ArgumentParser) -> None:
    """`--mean` / `--std`: the statistics to normalise with, overriding what the model's weights record (or, for a
    model from scratch, the data's own)."""
    parser.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                        help="per-channel mean (with --std); default: what the checkpoint or the pretrained weights "
                             "record, else the statistics of the data (training data for a model trained here)")
    parser.add_argument("--std", type=float, nargs="+", default=None, metavar="S", help="per-channel std, with --mean")
