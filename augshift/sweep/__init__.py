"""Benchmark sweeps: the rows (`.rows`), resumable runs (`.runs`), shards and finished results (`.shards`), their summaries with
intervals (`.summary`: paired over the test images), consistency at matched accuracy (`.matched`), per-image
outcomes (`.outcomes`) and the options the benchmark scripts share (`.options`)."""
from .options import add_common_args, load_data, overrides, recipe, run_or_collect
from .rows import parse_model, parse_row, split_rows
from .runs import EVAL, RunData, RunSpec, evaluate_model, run_one, run_sweep
from .shards import collect, parse_shard, read_result, shard_of
from .summary import METRICS, comparison_table, paired_differences, reported_metrics, summarize, summary_table

__all__ = [
    "RunSpec",
    "comparison_table",
    "run_sweep",
    "summarize",
    "summary_table",
]
