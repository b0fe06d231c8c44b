"""Output: result files written atomically (:mod:`.files`), markdown tables (:mod:`.tables`) and plots (:mod:`.plots`)."""
from .files import write_bytes_atomic, write_json_atomic, write_text_atomic
from .plots import plot_consistency_curves, plot_tradeoff
from .tables import markdown_grid, markdown_table

__all__ = ["markdown_grid", "markdown_table", "plot_consistency_curves", "plot_tradeoff", "write_bytes_atomic",
           "write_json_atomic", "write_text_atomic"]
