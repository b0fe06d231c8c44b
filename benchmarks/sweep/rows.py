"""A benchmark row: the model (`ARCH`, `ARCH+augshift[:DISTANCE][@WEIGHT]`) and its own recipe
(`[epochs=N,batch=N]`), as the `--models` option lists them."""
from __future__ import annotations

from typing import Optional

from augshift.config import AugShiftConfig
from augshift.errors import UsageError


def parse_model(name: str, *, defaults: AugShiftConfig = AugShiftConfig()) -> tuple[str, Optional[AugShiftConfig]]:
    """A benchmark row's model: `"resnet18"` -> `("resnet18", None)`; `"resnet18+augshift"` -> AugShift with
    `defaults`; `"resnet18+augshift:mse"` with that distance; `"resnet18+augshift:mse@0.1"` and weight
    (`AugShiftConfig.parse`).

    Args:
        name: the row's model, `ARCH` or `ARCH+augshift[:DISTANCE][@WEIGHT]` (`ARCH` a timm name); another
            form raises `UsageError`.
        defaults: the AugShift options the setting after `+augshift` is applied to.

    Returns:
        `(arch, config)`: the architecture's name and its `AugShiftConfig`, or `None`
        for a model trained without AugShift.

    Examples:
        >>> parse_model("resnet18")
        ('resnet18', None)
        >>> arch, config = parse_model("resnet18+augshift:mse@0.1")
        >>> arch, config.distance, config.weight
        ('resnet18', 'mse', 0.1)
        >>> parse_model("resnet18+augshift", defaults=AugShiftConfig(max_shift=2))[1].max_shift
        2
    """
    arch, plus, suffix = name.partition("+")
    if not plus:
        return arch, None
    method, _, setting = suffix.partition(":")
    form = ("expected a timm name, optionally followed by '+augshift', '+augshift:DISTANCE' or "
            "'+augshift:DISTANCE@WEIGHT', e.g. resnet18+augshift:mse@0.1")
    if method != "augshift":
        raise UsageError(f"model {name!r}: {form}")
    try:
        return arch, AugShiftConfig.parse(setting, base=defaults)
    except UsageError as error:
        raise UsageError(f"model {name!r}: {error}; {form}") from None


ROW_OPTIONS = {"epochs": "epochs", "batch": "batch_size"}  # a row's own recipe: `MODEL[epochs=N,batch=N]`


def parse_row(row: str) -> tuple[str, dict]:
    """A benchmark row with its own recipe: `"resnet18[epochs=12]"` -> `("resnet18", {"epochs": 12})`; the
    equal-compute rows (twice the epochs, half the epochs or half the batch) are written this way.

    Args:
        row: `MODEL` or `MODEL[KEY=N,...]` with keys `epochs` and `batch` (the global batch size);
            another form raises `UsageError`.

    Returns:
        `(model, changes)`: the model (`parse_model`'s form) and the `TrainConfig` fields the row changes.

    Examples:
        >>> parse_row("resnet18+augshift[epochs=3,batch=64]")
        ('resnet18+augshift', {'epochs': 3, 'batch_size': 64})
        >>> parse_row("resnet18")
        ('resnet18', {})
    """
    model, bracket, rest = row.partition("[")
    if not bracket:
        return row, {}
    form = f"row {row!r}: expected MODEL[KEY=N,...] with keys {', '.join(ROW_OPTIONS)}, e.g. resnet18[epochs=12]"
    if not rest.endswith("]"):
        raise UsageError(form)
    changes = {}
    for item in rest[:-1].split(","):
        key, _, value = item.partition("=")
        if key not in ROW_OPTIONS or not value.isdigit() or int(value) < 1:
            raise UsageError(form)
        if ROW_OPTIONS[key] in changes:
            raise UsageError(f"row {row!r} gives {key} twice: give each key once")
        changes[ROW_OPTIONS[key]] = int(value)
    return model, changes


def split_rows(text: str) -> list[str]:
    """A `--models` list: split at the commas outside a row's brackets; an empty list, an empty entry, unbalanced
    brackets or a row given twice (one run counted as two seeds) is a `UsageError`.

    Examples:
        >>> split_rows("resnet18,resnet18+augshift[epochs=3,batch=64]")
        ['resnet18', 'resnet18+augshift[epochs=3,batch=64]']
        >>> split_rows("resnet18,resnet18")
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: --models names resnet18 twice: each row is run once per seed; name it once
    """
    rows, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            rows.append(text[start:i].strip())
            start = i + 1
    if depth != 0 or not all(rows):
        raise UsageError(f"--models {text!r}: expected comma-separated rows (MODEL or MODEL[KEY=N,...]), none empty")
    twice = sorted({row for row in rows if rows.count(row) > 1})
    if twice:
        raise UsageError(f"--models names {', '.join(twice)} twice: each row is run once per seed; name it once")
    return rows

