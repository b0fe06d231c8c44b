"""Benchmark sweeps: resumable runs (`.runs`), shards and finished results (`.shards`), their summaries with
intervals (`.summary`: paired over the test images), consistency at matched accuracy (`.matched`), per-image
outcomes (`.outcomes`) and the options the benchmark scripts share (`.options`)."""
from .options import add_common_args, load_data, overrides, recipe, run_or_collect
from .runs import EVAL, RunData, RunSpec, evaluate_model, parse_model, parse_row, run_one, run_sweep, split_rows
from .shards import collect, parse_shard, read_result, shard_of
from .summary import METRICS, comparison_table, paired_differences, reported_metrics, summarize, summary_table

__all__ = [
    "RunSpec",
    "comparison_table",
    "run_sweep",
    "summarize",
    "summary_table",
]
