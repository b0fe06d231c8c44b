"""The AugShift options, their defaults and their validation, in one place.

`AugShiftConfig` owns the five options (`max_shift`, `mode`, `weight`, `distance`, `normalize`). Every
part that takes one of them -- `RandomShift` and `shift`, the loss, the
objective, the engine's recipe, the APS models' padding, the command line, the benchmark rows, the timm launcher, the
Accelerate and transformers integrations -- validates it with the checks below (`check_*`) or builds an
`AugShiftConfig` through one of its constructors, and never checks it again:

* `AugShiftConfig(**options)` (keyword use);
* `AugShiftConfig.resolve` -- `config=` or loose options, never both (what `AugShift` takes);
* `AugShiftConfig.from_args` -- the options that `add_augshift_arguments` put on an `argparse` parser;
* `AugShiftConfig.parse` -- the compact `DISTANCE@WEIGHT` form of the benchmark rows (`resnet18+augshift:mse@3`).

A wrong type (`max_shift=4.0`) is a programmer's mistake and raises `TypeError`; a wrong value (`mode="wrap"`,
`weight=-1`) is a user's and raises `UsageError` naming what is supported.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional, Union

from .errors import UsageError

MaxShift = Union[int, tuple[int, int]]
SHIFT_MODES = ("zeros", "circular", "reflect", "replicate")  # what fills the border a shift uncovers
DISTANCES = ("mse", "l1", "cosine")  # see augshift.loss.ConsistencyLoss


def check_max_shift(max_shift: MaxShift) -> tuple[int, int]:
    """`(max_dx, max_dy)` of a valid `max_shift` (an int >= 0 or a pair of them), else `TypeError` /
    `UsageError`.

    Examples:
        >>> check_max_shift(4), check_max_shift((2, 0))
        ((4, 4), (2, 0))
    """
    pair = tuple(max_shift) if isinstance(max_shift, (tuple, list)) else (max_shift, max_shift)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise TypeError(f"max_shift must be a whole number of pixels (int) or a pair of ints, got {max_shift!r}")
    if min(pair) < 0:
        raise UsageError(f"max_shift must be >= 0 pixels, got {max_shift!r}")
    return pair


def _one_of(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}; supported: {', '.join(choices)}")
    return value


def check_mode(mode: str, *, what: str = "shift mode") -> str:
    """`mode` if it is one of `SHIFT_MODES`, else `UsageError` (naming the option as `what`).

    Examples:
        >>> check_mode("circular")
        'circular'
    """
    return _one_of(mode, SHIFT_MODES, what)


def check_distance(distance: str) -> str:
    """`distance` if it is one of `DISTANCES`, else `UsageError`.

    Examples:
        >>> check_distance("mse")
        'mse'
    """
    return _one_of(distance, DISTANCES, "distance")


def check_weight(weight: float) -> float:
    """`weight` as a float if it is a finite number >= 0, else `TypeError` / `UsageError`.

    Examples:
        >>> check_weight(3)
        3.0
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise UsageError(f"weight must be a finite number >= 0, got {weight!r}")
    return float(weight)


def check_normalize(normalize: bool) -> bool:
    """`normalize` if it is a bool, else `TypeError`.

    Examples:
        >>> check_normalize(False)
        False
    """
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    return normalize


@dataclass(frozen=True)
class AugShiftConfig:
    """AugShift's options, validated when the config is made.

    Args:
        max_shift: largest shift per axis in pixels, an int or `(max_dx, max_dy)` (4 = the CIFAR pad-4 range).
        mode: what fills the border a shift uncovers, one of `SHIFT_MODES` (`zeros` = pad-and-crop).
        weight: weight of the consistency loss (>= 0).
        distance: `mse` (the paper's loss), `l1` or `cosine` (the default: measured best on CIFAR-10 at CPU
            scale, README "Defaults").
        normalize: L2-normalise the pooled features before an `mse` / `l1` distance.

    Examples:
        >>> AugShiftConfig(max_shift=2, distance="mse").to_dict()
        {'max_shift': 2, 'mode': 'zeros', 'weight': 1.0, 'distance': 'mse', 'normalize': False}
    """

    max_shift: MaxShift = 4
    mode: str = "zeros"
    weight: float = 1.0
    distance: str = "cosine"
    normalize: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_shift, list):
            object.__setattr__(self, "max_shift", tuple(self.max_shift))
        check_max_shift(self.max_shift)
        check_mode(self.mode)
        object.__setattr__(self, "weight", check_weight(self.weight))
        check_distance(self.distance)
        check_normalize(self.normalize)

    def to_dict(self) -> dict:
        """The options as a dict (JSON-ready).

        Examples:
            >>> AugShiftConfig(max_shift=2).to_dict()
            {'max_shift': 2, 'mode': 'zeros', 'weight': 1.0, 'distance': 'cosine', 'normalize': False}
        """
        return asdict(self)

    @property
    def reach(self) -> int:
        """The larger of `max_shift`'s two axes: the range the integrations evaluate consistency over.

        Examples:
            >>> AugShiftConfig(max_shift=(2, 6)).reach
            6
        """
        return max(check_max_shift(self.max_shift))

    def loss_options_changed(self) -> list[str]:
        """The loss options (`weight`, `distance`, `normalize`) that differ from the defaults: what a run
        without the consistency loss would ignore, and so refuses.

        Examples:
            >>> AugShiftConfig(max_shift=2, weight=3.0).loss_options_changed()
            ['weight']
        """
        defaults = type(self)()
        return [name for name in ("weight", "distance", "normalize") if getattr(self, name) != getattr(defaults, name)]

    def shift_only(self) -> "AugShiftConfig":
        """This config's shifts (`max_shift`, `mode`) with the default loss options: what a one-view shift
        augmentation (no consistency loss) is configured with.

        Examples:
            >>> AugShiftConfig(max_shift=2, weight=3.0).shift_only().weight
            1.0
        """
        return type(self)(max_shift=self.max_shift, mode=self.mode)

    @classmethod
    def resolve(cls, config: Optional["AugShiftConfig"] = None, **options: Any) -> "AugShiftConfig":
        """`config`, or a config of the `options` that are not `None`; both at once is a `UsageError`.

        Examples:
            >>> AugShiftConfig.resolve(weight=3.0).weight
            3.0
            >>> AugShiftConfig.resolve(AugShiftConfig(), weight=3.0)
            Traceback (most recent call last):
            ...
            augshift.errors.UsageError: pass either config= or the options (weight), not both: ...
        """
        given = {name: value for name, value in options.items() if value is not None}
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown AugShift option(s) {', '.join(sorted(unknown))}; options: "
                            f"{', '.join(f.name for f in fields(cls))}")
        if config is None:
            return cls(**given)
        if not isinstance(config, cls):
            raise TypeError(f"config must be an AugShiftConfig, got {type(config).__name__}")
        if given:
            raise UsageError(f"pass either config= or the options ({', '.join(given)}), not both: config= would "
                             f"override them; put them into the config (AugShiftConfig(..., {next(iter(given))}=...))")
        return config

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, prefix: str = "") -> "AugShiftConfig":
        """The config of the options added by `add_augshift_arguments` with the same `prefix`.

        Examples:
            >>> parser = argparse.ArgumentParser()
            >>> add_augshift_arguments(parser)
            >>> AugShiftConfig.from_args(parser.parse_args(["--weight", "3"])).weight
            3.0
        """
        dest = prefix.replace("-", "_")
        return cls(**{f.name: getattr(args, dest + f.name) for f in fields(cls)})

    @classmethod
    def parse(cls, text: str, *, base: Optional["AugShiftConfig"] = None) -> "AugShiftConfig":
        """`base` (default: the defaults) with the compact setting `"DISTANCE"`, `"DISTANCE@WEIGHT"` or
        `"@WEIGHT"` applied (`""`: `base` itself), as in the benchmark rows `resnet18+augshift:mse@3`.

        Examples:
            >>> AugShiftConfig.parse("mse@3").to_dict()
            {'max_shift': 4, 'mode': 'zeros', 'weight': 3.0, 'distance': 'mse', 'normalize': False}
        """
        base = base if base is not None else cls()
        distance, _, weight = text.partition("@")
        changes: dict[str, Any] = {}
        if distance:
            changes["distance"] = check_distance(distance)
        if weight:
            try:
                changes["weight"] = float(weight)
            except ValueError:
                raise UsageError(f"AugShift setting {text!r}: the weight after '@' must be a number, got {weight!r} "
                                 f"(form: DISTANCE@WEIGHT, e.g. mse@3; distances: {', '.join(DISTANCES)})") from None
        return cls(**{**base.to_dict(), **changes})


DEFAULTS = AugShiftConfig()


def add_augshift_arguments(parser: Union[argparse.ArgumentParser, argparse._ArgumentGroup], *,
                           prefix: str = "", defaults: AugShiftConfig = DEFAULTS) -> None:
    """Add `--<prefix>max-shift`, `--<prefix>mode`, `--<prefix>weight`, `--<prefix>distance` and
    `--<prefix>normalize` to `parser` (an `ArgumentParser` or an argument group); read them back with
    `AugShiftConfig.from_args`.

    Args:
        parser: an `argparse.ArgumentParser` or an argument group of one.
        prefix: put before every option name (`"augshift-"` gives `--augshift-weight`, read back as
            `args.augshift_weight`); the same `prefix` goes to `AugShiftConfig.from_args`.
        defaults: the `AugShiftConfig` whose values are the options' defaults (default: `DEFAULTS`).

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_augshift_arguments(parser, prefix="augshift-")
        >>> parser.parse_args(["--augshift-mode", "circular"]).augshift_mode
        'circular'
    """
    add = parser.add_argument
    add(f"--{prefix}max-shift", type=int, default=defaults.max_shift, metavar="PX",
        help=f"largest shift per axis, in pixels (default: {defaults.max_shift})")
    add(f"--{prefix}mode", default=defaults.mode, choices=SHIFT_MODES,
        help=f"what fills the uncovered border of a shifted image (default: {defaults.mode})")
    add(f"--{prefix}weight", type=float, default=defaults.weight, metavar="W",
        help=f"weight of the consistency loss (default: {defaults.weight})")
    add(f"--{prefix}distance", default=defaults.distance, choices=DISTANCES,
        help=f"distance between the two views' pooled features (default: {defaults.distance})")
    add(f"--{prefix}normalize", action="store_true", default=defaults.normalize,
        help="L2-normalise the pooled features before an mse / l1 distance")
