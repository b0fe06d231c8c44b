"""The bookkeeping of a sweep spread over processes or machines: which runs a shard takes (`parse_shard`,
`shard_of`) and the finished runs' results read back, checked to be the runs asked for (`read_result`,
`collect`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from augshift.errors import UsageError

from .spec import RunSpec


def parse_shard(text: str) -> tuple[int, int]:
    """`"2/8"` -> `(2, 8)`: shard 2 (counting from 0) of 8 (the `--shard` option's type).

    Args:
        text: `"I/N"` with `0 <= I < N`; anything else raises `ValueError`.

    Returns:
        `(I, N)`.

    Examples:
        >>> parse_shard("2/8")
        (2, 8)
        >>> parse_shard("8/8")
        Traceback (most recent call last):
            ...
        ValueError: --shard takes I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got '8/8'
    """
    index, _, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (-1, 0)
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4 for the first of 4 shards), got {text!r}")
    return shard


def shard_of(specs: Sequence[RunSpec], shard: Optional[tuple[int, int]]) -> list[RunSpec]:
    """The specs of one shard `(i, n)`: every n-th from the i-th (all specs without a shard).

    Args:
        specs: the sweep's runs, in order.
        shard: `(i, n)` (`parse_shard`), or `None` for all of them.

    Returns:
        The shard's specs, in order; the `n` shards together hold every spec once.

    Examples:
        >>> from augshift.engine import TrainConfig
        >>> from sweep import RunSpec
        >>> specs = [RunSpec(f"seed{seed}", "resnet18", TrainConfig(seed=seed)) for seed in range(5)]
        >>> [spec.name for spec in shard_of(specs, (1, 2))], len(shard_of(specs, None))
        (['seed1', 'seed3'], 5)
    """
    return list(specs) if shard is None else list(specs[shard[0]::shard[1]])


def collect(specs: Sequence[RunSpec], work: Path, *, allow_missing: bool = False) -> list[dict]:
    """The results of finished runs, in the order of `specs`; raises naming the runs that have none yet.

    Args:
        specs: the sweep's runs.
        work: the sweep's folder, holding `<name>/result.json` for each spec.
        allow_missing: return the finished runs' results only (the tables of a sweep some of whose runs failed
            name the others, `missing_runs`) instead of refusing.

    Returns:
        Each spec's result (`read_result`). A spec without a `result.json` raises `UsageError`
        naming the missing runs (unless `allow_missing`).

    Examples:
        >>> from augshift.engine import TrainConfig
        >>> from sweep import RunSpec
        >>> import tempfile
        >>> spec = RunSpec("seed0", "resnet18", TrainConfig(seed=0), label="resnet18")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     work = Path(folder)
        ...     (work / spec.name).mkdir()
        ...     _ = (work / spec.name / "result.json").write_text(json.dumps({**spec.to_dict(), "accuracy": 50.0}))
        ...     results = collect([spec], work)
        ...     try:
        ...         collect([spec, RunSpec("seed1", "resnet18", TrainConfig(seed=1))], work)
        ...     except UsageError as error:
        ...         print(error)
        1 run(s) have no result.json in ... yet: seed1; run the missing shards first
        >>> [result["accuracy"] for result in results]
        [50.0]
    """
    missing = [spec.name for spec in specs if not (work / spec.name / "result.json").is_file()]
    if missing and not allow_missing:
        raise UsageError(f"{len(missing)} run(s) have no result.json in {work} yet: {', '.join(missing[:8])}; "
                         "run the missing shards first")
    return [read_result(spec, work / spec.name / "result.json") for spec in specs if spec.name not in missing]


def missing_runs(specs: Sequence[RunSpec], results: Sequence[dict]) -> list[str]:
    """The names of the runs of `specs` that have no result among `results` (runs that failed).

    Examples:
        >>> from augshift.engine import TrainConfig
        >>> specs = [RunSpec(f"seed{seed}", "resnet18", TrainConfig(seed=seed)) for seed in range(3)]
        >>> missing_runs(specs, [{"name": "seed0"}, {"name": "seed2"}])
        ['seed1']
    """
    finished = {result["name"] for result in results}
    return [spec.name for spec in specs if spec.name not in finished]


def identity_differences(asked: dict, stored: dict, prefix: str = "") -> list[str]:
    """The entries where a stored run identity differs from the one asked for, as `key: asked here, stored there`
    (nested keys dotted; an entry the stored one lacks counts as a difference).

    Examples:
        >>> identity_differences({"config": {"epochs": 1, "lr": 0.1}, "inputs": {"train_size": 20}},
        ...                      {"config": {"epochs": 3, "lr": 0.1}, "inputs": {"train_size": 40}})
        ['config.epochs: 1 asked, 3 stored', 'inputs.train_size: 20 asked, 40 stored']
    """
    out = []
    for key, value in asked.items():
        other = stored.get(key) if isinstance(stored, dict) else None
        if isinstance(value, dict) and isinstance(other, dict):
            out += identity_differences(value, other, f"{prefix}{key}.")
        elif value != other:
            out.append(f"{prefix}{key}: {value} asked, {other} stored")
    return out


def check_identity(spec: RunSpec, stored: dict, where: Path) -> None:
    """Refuse (`UsageError`, one line naming what differs) a run found in the work folder that another command
    made: its stored identity (`RunSpec.to_dict`) must equal `spec`'s.

    Args:
        spec: the run asked for.
        stored: the identity found (a `result.json`'s entries, a checkpoint's `identity`).
        where: the file it was found in, for the message.
    """
    differences = identity_differences(spec.to_dict(), stored)
    if differences:
        shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise UsageError(f"{where} holds run {spec.name} made with other options ({shown}): pass another --workdir "
                         "for these options, or the options it was made with")


def read_result(spec: RunSpec, path: Path) -> dict:
    """The `result.json` at `path`, checked to be `spec`'s run (`check_identity`).

    Args:
        spec: the run the result must have been written for: every entry of `RunSpec.to_dict` must match.
        path: a `result.json` written by `run_one`.

    Returns:
        The result, as a dict.

    Examples:
        >>> from augshift.engine import TrainConfig
        >>> from sweep import RunSpec
        >>> import tempfile
        >>> spec = RunSpec("seed0", "resnet18", TrainConfig(seed=0), label="resnet18")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "result.json"
        ...     _ = path.write_text(json.dumps({**spec.to_dict(), "accuracy": 50.0}))
        ...     result = read_result(spec, path)
        ...     try:
        ...         read_result(RunSpec("seed0", "resnet18", TrainConfig(seed=1), label="resnet18"), path)
        ...     except UsageError as error:
        ...         print(error)
        /.../result.json holds run seed0 made with other options (config.seed: 1 asked, 0 stored): pass another --workdir for these options, or the options it was made with
        >>> result["accuracy"]
        50.0
    """
    result = json.loads(path.read_text())
    check_identity(spec, result, path)
    return result
