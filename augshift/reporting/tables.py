"""Markdown tables of results: consistency rows with their intervals, and plain grids."""
from __future__ import annotations

from typing import Mapping, Sequence


def _fmt(value: float, ci: Sequence[float] | None = None) -> str:
    return f"{value:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci is not None else f"{value:.2f}"


def markdown_table(rows: Mapping[str, Mapping], columns: Sequence[str] | None = None) -> str:
    """One row per model from `ConsistencyReport.to_dict()`-like dicts; values with their 95% CI.

    Args:
        rows: `{model name: {"accuracy": %, "consistency_<protocol>": %, "<key>_ci95": (lo, hi), ...}}`.
        columns: the keys shown, in order (default: `accuracy` and every `consistency_<protocol>` the rows
            have with its `_ci95` interval); a row without one leaves its cell empty.

    Returns:
        The markdown table, one line per row, ending with a newline.

    Examples:
        >>> rows = {"baseline": {"accuracy": 90.0, "consistency_random": 85.0, "consistency_random_ci95": (83.0, 87.0)},
        ...         "augshift": {"accuracy": 89.5, "consistency_random": 95.0}}
        >>> print(markdown_table(rows))
        | model | accuracy | consistency_random |
        |---|---|---|
        | baseline | 90.00 | 85.00 [83.0, 87.0] |
        | augshift | 89.50 | 95.00 |
        <BLANKLINE>
    """
    if columns is None:
        keys = dict.fromkeys(key for row in rows.values() for key in row)
        columns = ["accuracy"] + [k for k in keys if k.startswith("consistency_") and f"{k}_ci95" in keys]
    header = "| model | " + " | ".join(columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [_fmt(row[c], row.get(f"{c}_ci95")) if c in row else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_grid(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table with `header` and `rows` of cells (formatted with `str`).

    Args:
        header: the column titles.
        rows: the rows, each a sequence of cells (one per column).

    Returns:
        The markdown table, ending with a newline.

    Examples:
        >>> print(markdown_grid(["model", "epochs"], [["resnet18", 30], ["aps_resnet18", 30]]))
        | model | epochs |
        |---|---|
        | resnet18 | 30 |
        | aps_resnet18 | 30 |
        <BLANKLINE>
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
