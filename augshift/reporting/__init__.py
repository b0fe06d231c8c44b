"""Output: one result writer (`.results`: markdown, plots and a JSON manifest as one unit), atomic files
(`.files`), markdown tables (`.tables`), plots (`.plots`) and the one progress bar (`.progress`)."""
from .plots import plot_consistency_curves, plot_tradeoff
from .results import write_results
from .tables import markdown_table

__all__ = [
    "write_results",
    "markdown_table",
    "plot_consistency_curves",
    "plot_tradeoff",
]
