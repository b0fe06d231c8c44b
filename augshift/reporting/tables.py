"""Markdown tables of results: consistency rows with their intervals, and plain grids."""
from __future__ import annotations

from typing import Mapping, Sequence


def _fmt(value: float, ci: Sequence[float] | None = None) -> str:
    return f"{value:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]" if ci is not None else f"{value:.2f}"


def markdown_table(rows: Mapping[str, Mapping], columns: Sequence[str] | None = None) -> str:
    """One row per model from ``ConsistencyReport.to_dict()``-like dicts; values with their 95% CI. ``columns``
    default: ``accuracy`` and every ``consistency_<protocol>`` the rows have."""
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
    """A markdown table with ``header`` and ``rows`` of cells (formatted with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
