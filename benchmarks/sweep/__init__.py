"""The benchmark harness (not installed with augshift; the scripts of `benchmarks/` import it as `sweep`): the rows (`.rows`), resumable runs (`.runs`), shards and finished results (`.shards`), their summaries with
intervals (`.summary`: paired over the test images), consistency at matched accuracy (`.matched`), per-image
outcomes (`.outcomes`) and the options the benchmark scripts share (`.options`)."""
from .options import add_common_args, check_common_args, load_data, overrides, recipe, run_inputs, run_or_collect
from .rows import parse_model, parse_row, split_rows
from .runs import EVAL, RunData, RunSpec, evaluate_model, run_one, run_sweep
from .shards import collect, missing_runs, parse_shard, read_result, shard_of
from .summary import comparison_table, paired_differences, reported_metrics, summarize, summary_table

__all__ = [  # what the benchmark scripts import
    "EVAL", "RunData", "RunSpec", "add_common_args", "check_common_args", "collect", "comparison_table",
    "evaluate_model", "load_data", "missing_runs", "overrides", "paired_differences", "parse_model", "parse_row", "parse_shard",
    "read_result", "recipe", "reported_metrics", "run_inputs", "run_one", "run_or_collect", "run_sweep", "shard_of",
    "split_rows", "summarize", "summary_table",
]
