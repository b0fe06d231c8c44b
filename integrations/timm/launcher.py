"""`augshift-timm`: run an unmodified timm `train.py` with AugShift flags.

```bash
augshift-timm path/to/train.py <train.py arguments> --augshift --augshift-max-shift 4
torchrun --nproc_per_node 2 -m augshift.integrations.timm path/to/train.py <arguments> --augshift
```

The launcher imports the user's `train.py` as a module, checks the small contract it relies on
(`.script`), adds the `--augshift*` flags to its `parser` (so they show in `--help`,
are saved in `args.yaml` and can come from `-c config.yaml`) and, once the arguments are parsed,
replaces the module attributes `ClassificationTask` (AugShift / PermuteNet task),
`train_one_epoch` (adds the epoch's loss parts) and `validate` (adds shift consistency columns).
Without any `--augshift*` flag nothing is replaced: the run is plain `python train.py`.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import logging
import math
import os
import sys
from contextlib import suppress
from types import ModuleType
from typing import Callable, Optional, Sequence

import torch

from augshift.config import AugShiftConfig, add_augshift_arguments
from augshift.seeding import Stream, stream_generator
from augshift.errors import run_command
from augshift.intervals import proportion_ci
from augshift.permute import POOL, permute_channels
from augshift.protocols import CONSISTENCY_COLUMN, add_protocols_argument, consistency_column, crop_protocols

from .consistency import loader_shift_consistency
from .script import SUPPORTED_TRAIN_SCRIPTS, load_train_script
from .task import AugShiftTask, PortableClassificationTask

_logger = logging.getLogger(__name__)

# each AugShift option and the flags of which at least one must be given for it to be used
OPTION_NEEDS = {
    "augshift_max_shift": ("augshift", "augshift_consistency"), "augshift_mode": ("augshift", "augshift_consistency"),
    "augshift_weight": ("augshift",), "augshift_distance": ("augshift",), "augshift_normalize": ("augshift",),
    "augshift_protocols": ("augshift_consistency",),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `--augshift*` flags (an argument group) to `parser`.

    The flags: `--augshift` (train with AugShift), its options `--augshift-max-shift`, `--augshift-mode`,
    `--augshift-weight`, `--augshift-distance`, `--augshift-normalize`
    (`add_augshift_arguments`), `--augshift-permute [LAYER]` (PermuteNet),
    `--augshift-consistency` (shift consistency columns in validation) and `--augshift-protocols`.

    Args:
        parser: an `argparse.ArgumentParser` (train.py's `parser`); changed in place.

    Examples:
        >>> import argparse
        >>> parser = argparse.ArgumentParser()
        >>> add_arguments(parser)
        >>> args = parser.parse_args(["--augshift", "--augshift-max-shift", "8", "--augshift-permute"])
        >>> args.augshift, args.augshift_max_shift, args.augshift_permute, args.augshift_consistency
        (True, 8, 'pool', False)
    """
    group = parser.add_argument_group("AugShift parameters (augshift-timm)")
    group.add_argument("--augshift", action="store_true", default=False,
                       help="train with AugShift: two shifted views per image in one forward, the train loss on "
                            "both plus a consistency loss on the pooled features")
    add_augshift_arguments(group, prefix="augshift-")
    group.add_argument("--augshift-permute", nargs="?", const=POOL, default=None, metavar="LAYER",
                       help="PermuteNet: a fresh random channel permutation on every forward, after global "
                            f"pooling (no value, or '{POOL}') or after the named module (e.g. layer3)")
    group.add_argument("--augshift-consistency", action="store_true", default=False,
                       help="validation also reports the shift consistency in %% (summary.csv columns "
                            "shift_consistency for the random protocol, shift_consistency_<protocol> for the others; "
                            "usable as --eval-metric)")
    add_protocols_argument(group, "--augshift-protocols")


def augshift_requested(args: argparse.Namespace) -> bool:
    """Whether any flag that changes the run was given."""
    return bool(args.augshift or args.augshift_permute or args.augshift_consistency)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject flag combinations the integration does not support (`parser.error` exits with 2)."""
    eval_metric = getattr(args, "eval_metric", None) or ""
    if eval_metric.startswith(CONSISTENCY_COLUMN) and not args.augshift_consistency:
        parser.error(f"--eval-metric {eval_metric} needs --augshift-consistency")
    columns = [consistency_column(p) for p in args.augshift_protocols]
    if eval_metric.startswith(CONSISTENCY_COLUMN) and eval_metric not in columns:
        parser.error(f"--eval-metric {eval_metric} is not a column of --augshift-protocols "
                     f"{','.join(args.augshift_protocols)}: use one of {', '.join(columns)}")
    crops = crop_protocols(args.augshift_protocols)
    if crops:
        parser.error(f"--augshift-protocols {crops[0]} needs images larger than the model's, which train.py's "
                     "validation loader does not give; measure it with augshift consistency --crop-from")
    ignored = [f"--{name.replace('_', '-')}" for name, needs in OPTION_NEEDS.items()
               if getattr(args, name) != parser.get_default(name) and not any(getattr(args, n) for n in needs)]
    if ignored:
        parser.error(f"{', '.join(ignored)} would be ignored: add --augshift (or --augshift-consistency for "
                     "--augshift-max-shift / --augshift-mode)")
    if not augshift_requested(args):
        return
    unsupported = {
        "--kd-model-name (distillation tasks)": getattr(args, "kd_model_name", None),
        "--naflex-loader": getattr(args, "naflex_loader", False),
        "--torchscript (hooks cannot be scripted)": getattr(args, "torchscript", False),
    }
    if args.augshift:
        unsupported["--jsd-loss / --aug-splits (they split the batch AugShift doubles)"] = (
            getattr(args, "jsd_loss", False) or getattr(args, "aug_splits", 0))
    if args.augshift_consistency:
        unsupported["--tta"] = getattr(args, "tta", 0) > 1
    given = [name for name, value in unsupported.items() if value]
    if given:
        parser.error(f"the --augshift flags do not support {', '.join(given)}")
    try:
        AugShiftConfig.from_args(args, prefix="augshift-")
    except (TypeError, ValueError) as error:
        parser.error(f"--augshift options: {error}")


def task_factory(args: argparse.Namespace) -> Callable[..., PortableClassificationTask]:
    """Stand-in for `train.ClassificationTask` configured from the parsed `args`.

    Called as train.py calls the class (`model=..., criterion=..., device=..., ...`); applies the
    PermuteNet hook to the model and returns an `AugShiftTask` (`--augshift`) or a
    `PortableClassificationTask`.
    """

    def build(model: torch.nn.Module, *task_args, **task_kwargs) -> PortableClassificationTask:
        rank = getattr(args, "rank", 0)
        if args.augshift_permute:
            permute_channels(model, args.augshift_permute, generator=stream_generator(args.seed, Stream.PERMUTE, rank))
        if not args.augshift:
            return PortableClassificationTask(model, *task_args, **task_kwargs)
        return AugShiftTask(
            model, *task_args, config=AugShiftConfig.from_args(args, prefix="augshift-"),
            generator=stream_generator(args.seed, Stream.SHIFT, rank), log_interval=args.log_interval, **task_kwargs,
        )

    return build


def with_loss_parts(train_one_epoch: Callable) -> Callable:
    """Wrap train.py's `train_one_epoch` so its metrics (summary.csv `train_*` columns) also hold
    the epoch's `augshift_criterion` and `augshift_consistency`, averaged over all processes."""
    signature = inspect.signature(train_one_epoch)

    @functools.wraps(train_one_epoch)
    def wrapped(*args, **kwargs):
        call = signature.bind(*args, **kwargs).arguments
        task = call.get("task")
        if not isinstance(task, AugShiftTask):
            return train_one_epoch(*args, **kwargs)
        task.loss_parts(sync=False, reset=True)
        metrics = train_one_epoch(*args, **kwargs)
        parts = task.loss_parts(sync=True, reset=True)
        metrics.update((f"augshift_{name}", value) for name, value in parts.items())
        if not all(math.isfinite(value) for value in parts.values()):
            _logger.warning(f"AugShift epoch {call.get('epoch')}: the loss parts are not finite ({parts}): the images "
                            "or the weights hold NaN or inf (a diverged run? lower the learning rate; check the data)")
        if task.verbose:
            _logger.info(
                f"AugShift epoch {call.get('epoch')}: criterion {parts['criterion']:#.4g}  "
                f"consistency {parts['consistency']:#.4g}"
            )
        return metrics

    return wrapped


def with_shift_consistency(validate: Callable) -> Callable:
    """Wrap train.py's `validate` so its OrderedDict also holds a consistency column (%) per protocol
    (`consistency_column`)."""
    signature = inspect.signature(validate)

    @functools.wraps(validate)
    def wrapped(*args, **kwargs):
        metrics = validate(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        train_args, model = call["args"], call["model"]
        model.eval()
        primary = getattr(train_args, "rank", 0) == 0
        report = loader_shift_consistency(
            model, call["loader"],
            device=call.get("device"), to_device=not train_args.prefetcher,
            channels_last=train_args.channels_last, model_dtype=call.get("model_dtype"),
            amp_autocast=call.get("amp_autocast", suppress), progress=primary,
            max_shift=train_args.augshift_max_shift, mode=train_args.augshift_mode,
            protocols=train_args.augshift_protocols, chunk_size=train_args.validation_batch_size or train_args.batch_size,
        )
        for protocol in train_args.augshift_protocols:
            metrics[consistency_column(protocol)] = report.consistency(protocol)
        if primary:
            text = ", ".join(
                f"{protocol} {report.consistency(protocol):.2f}% (95% CI {low:.1f}-{high:.1f})"
                for protocol in train_args.augshift_protocols
                for low, high in [proportion_ci(report.agree[protocol], report.samples)]
            )
            _logger.info(f"Shift consistency{call.get('log_suffix', '')}: {text} over {report.samples} samples")
        return metrics

    return wrapped


def configure(train: ModuleType, args: argparse.Namespace) -> None:
    """Check `args` and replace train.py's module attributes for the requested flags."""
    check_args(train.parser, args)
    if not augshift_requested(args):
        return
    train.ClassificationTask = task_factory(args)
    if args.augshift:
        train.train_one_epoch = with_loss_parts(train.train_one_epoch)
    if args.augshift_consistency:
        train.validate = with_shift_consistency(train.validate)


def install(train: ModuleType) -> None:
    """Add the flags to `train.parser` and hook `train._parse_args` so that the parsed arguments
    configure the run (see `configure`)."""
    add_arguments(train.parser)
    parse_args = train._parse_args

    def _parse_args():
        args, args_text = parse_args()
        configure(train, args)
        return args, args_text

    train._parse_args = _parse_args


def usage() -> str:
    parser = argparse.ArgumentParser(
        prog="augshift-timm",
        usage="augshift-timm TRAIN_PY [train.py arguments] [AugShift arguments]",
        description="Run timm's train.py (pytorch-image-models) unmodified, with AugShift, PermuteNet and "
                    "shift-consistency flags. Also: torchrun --nproc_per_node N -m augshift.integrations.timm "
                    "TRAIN_PY ..., and accelerate launch ... -m augshift.integrations.timm TRAIN_PY ...",
        epilog=f"Supports {SUPPORTED_TRAIN_SCRIPTS}. 'augshift-timm TRAIN_PY --help' lists all train.py arguments.",
        add_help=False,
    )
    add_arguments(parser)
    return parser.format_help()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console script: `augshift-timm TRAIN_PY [arguments]`; returns the exit status.

    `TRAIN_PY` is loaded (`load_train_script`), the `--augshift*` flags are added to its parser and
    its `main()` runs with `sys.argv` set as `python TRAIN_PY [arguments]` would (`sys.argv` and
    `sys.path` are put back after). `-h` / `--help` alone prints the launcher's usage on standard output
    (0); no argument prints it on standard error (2); a user mistake (e.g. a `TrainScriptError`) prints
    `augshift-timm: error: <message>` on standard error (2).

    Args:
        argv: the arguments, `TRAIN_PY` first; default `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 2 for a usage error.

    Examples:
        >>> import contextlib, io, os, tempfile
        >>> out = io.StringIO()
        >>> with contextlib.redirect_stdout(out):
        ...     status = main(["--help"])
        >>> status, out.getvalue().splitlines()[0]
        (0, 'usage: augshift-timm TRAIN_PY [train.py arguments] [AugShift arguments]')
        >>> "--augshift-consistency" in out.getvalue()
        True
        >>> err = io.StringIO()
        >>> with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stderr(err):
        ...     path = os.path.join(folder, "train.py")
        ...     with open(path, "w") as handle:
        ...         _ = handle.write("main = print")
        ...     status = main([path, "--augshift"])
        >>> status, err.getvalue().startswith("augshift-timm: error: ")
        (2, True)
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    script, train_argv = argv[0], argv[1:]
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *train_argv]  # as `python train.py ...` would see them
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))

    def run() -> None:
        train = load_train_script(script)
        install(train)
        train.main()

    try:
        return run_command("augshift-timm", run, argv)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
