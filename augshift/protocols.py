"""Shift-consistency protocols: how the two views of an image are made, one `Protocol` object per name.

Each protocol draws, for every image, two views at independent random offsets and compares the classifier's
predictions; its `_worst` variant instead evaluates every offset of a grid and counts an image only if all its
predictions agree (and, as worst-case accuracy, only if all are correct).

| name | the two views | reproduces |
|---|---|---|
| `random` | shifts in `[-max_shift, max_shift]` per axis, border `mode` (`zeros` = pad-and-crop) | Zhang 2019's CIFAR protocol (pad-and-crop with `zeros`); the project's headline |
| `random8`, `random16` | the same at `[-8, 8]` / `[-16, 16]` px | harsher CIFAR shifts (the paper gives none) |
| `circular` | `torch.roll` in `[-max_shift, max_shift]` | Chaman & Dokmanic 2021 (APS): circular consistency |
| `circular_full` | `torch.roll` by any offset of the image | Zhang 2019's CIFAR figures |
| `crop` | two `crop_size` crops of the larger image at offsets in `[0, size - crop_size)` per axis (256 -> 224: `[0, 32)`), per image | Zhang 2019 on ImageNet (`validate_shift`: resize 256, centre crop 256, two random 224 crops) |
| `fractional` | band-limited circular shifts by real offsets in `[-max_shift, max_shift]` (`fractional_shift`) | Michaeli et al. 2023 (alias-free convnets): sub-pixel shifts |
| `reflect` | shifts in `[-max_shift, max_shift]` with a mirrored border (`F.pad(mode="reflect")`: the edge pixel is not repeated) | (no paper's) a border of image content, neither zeros nor the opposite edge |

Worst-case grids (`<name>_worst`): the shift protocols every offset of `[-r, r]` per axis up to `r = 4` and a
sparse grid beyond (`offsets_to`: 0, 1..4, 6, 8, 12, 16, ...), `circular_full` out to half the image,
`fractional` the quarter-pixel grid of `[-1, 1]` (sub-pixel offsets; whole pixels are `circular_worst`'s),
`crop` the crop offsets around the centre crop on the same grid. With `crop` every other protocol and the
accuracy use the centre `crop_size` crop.

A protocol's random offsets depend only on its own fixed `salt`, the evaluation seed and the sample's dataset index
-- never on which other protocols run or in which order, on the batch or on the process.

A new kind of view is one subclass of `Protocol` (`draw`, `grid`, `view`, `check`)
and one `register_protocol` call; every list of protocol names, the command line's `--protocols` and
`ShiftConsistency` take the protocols from the registry.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional, Sequence

from .errors import UsageError
from .views import FULL, CropProtocol, FractionalProtocol, Geometry, Protocol, ShiftProtocol

if TYPE_CHECKING:  # importing the registry (the command line's --protocols) does not import torch
    from torch import Tensor

__all__ = ["Protocol", "register_protocol"]  # a new kind: subclass Protocol, register it by name

WORST = "_worst"  # suffix of a protocol's worst-case variant
SALT_SPAN = 4  # the salts a protocol uses: salt .. salt + 3 (two views, two axes)
PROTOCOLS: dict[str, Protocol] = {}  # name -> protocol, in the order registered


def register_protocol(protocol: Protocol) -> Protocol:
    """Make `protocol` (and its worst case, `<name>_worst`) a protocol by its name.

    Args:
        protocol: a `Protocol` whose name and salts (`salt .. salt + 3`, in `[0, 1000)`) no registered
            protocol has.

    Returns:
        `protocol`.

    Raises:
        UsageError: for a name already taken or ending in `_worst`, or a salt that another protocol's offsets use.

    Examples:
        >>> register_protocol(ShiftProtocol("random", salt=0))
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: a protocol named 'random' exists: give the new protocol a name of its own
    """
    if not isinstance(protocol, Protocol):
        raise TypeError(f"register_protocol takes a Protocol, got {type(protocol).__name__}")
    if not isinstance(protocol.name, str) or not isinstance(protocol.salt, int) or isinstance(protocol.salt, bool):
        raise UsageError(f"a protocol's name is a str and its salt an int, got name={protocol.name!r}, "
                         f"salt={protocol.salt!r}; registered: {', '.join(PROTOCOLS)}")
    if protocol.name in PROTOCOLS:
        raise UsageError(f"a protocol named {protocol.name!r} exists: give the new protocol a name of its own")
    if not protocol.name or protocol.name.endswith(WORST) or "," in protocol.name:
        raise UsageError(f"a protocol's name must be non-empty, without commas and not end in {WORST} (its worst "
                         f"case's suffix), got {protocol.name!r}")
    taken = sorted(p.salt for p in PROTOCOLS.values())
    if not 0 <= protocol.salt <= 1000 - SALT_SPAN or any(abs(s - protocol.salt) < SALT_SPAN for s in taken):
        raise UsageError(f"the salt {protocol.salt} of {protocol.name!r} would draw another protocol's offsets: choose "
                         f"one in [0, {1000 - SALT_SPAN}] at least {SALT_SPAN} away from those taken ({taken})")
    PROTOCOLS[protocol.name] = protocol
    return protocol


for _protocol in (  # the salts of random and circular keep the offsets of earlier versions
    ShiftProtocol("random", salt=0), ShiftProtocol("circular", salt=10, mode="circular"),
    ShiftProtocol("random8", salt=20, reach=8), ShiftProtocol("random16", salt=30, reach=16),
    ShiftProtocol("circular_full", salt=40, mode="circular", reach=FULL), CropProtocol("crop", salt=50),
    FractionalProtocol("fractional", salt=60), ShiftProtocol("reflect", salt=70, mode="reflect"),
):
    register_protocol(_protocol)


def pair_protocols() -> tuple[str, ...]:
    """The registered protocols' names, in the order registered, read from the registry now (a protocol registered
    at run time is in it).

    Examples:
        >>> pair_protocols()[:2]
        ('random', 'circular')
    """
    return tuple(PROTOCOLS)


def worst_protocols() -> tuple[str, ...]:
    """The worst-case variants of the registered protocols (`<name>_worst`), read from the registry now."""
    return tuple(name + WORST for name in PROTOCOLS)


def protocol_names() -> tuple[str, ...]:
    """Every registered protocol's name, then every worst case's (`<name>_worst`), read from the registry now."""
    return (*pair_protocols(), *worst_protocols())

# what `augshift consistency` and every benchmark report: the 32 px family (crop needs larger images, worst-case
# grids cost a forward per offset); the metric's own default is the two cheap ones
PROTOCOL_FAMILY = ("random", "circular", "random8", "random16", "circular_full", "fractional")
DEFAULT_PROTOCOLS = ("random", "circular")


def protocol_of(name: str) -> tuple[Protocol, bool]:
    """`(protocol, worst)` of a protocol name: `(PROTOCOLS["random"], True)` for `"random_worst"`.

    Examples:
        >>> protocol_of("reflect_worst")[0].mode, protocol_of("reflect_worst")[1]
        ('reflect', True)
    """
    base, worst = split_name(name)
    if base not in PROTOCOLS:
        raise UsageError(f"unknown protocol {name!r}; choose from {', '.join(protocol_names())}")
    return PROTOCOLS[base], worst


def split_name(name: str) -> tuple[str, bool]:
    """`("random", True)` for `"random_worst"`, `("random", False)` for `"random"`."""
    return (name[: -len(WORST)], True) if name.endswith(WORST) else (name, False)


def protocol_list(text: str) -> tuple[str, ...]:
    """Comma-separated protocol names -> a tuple (an `argparse` type: unknown names are an `ArgumentTypeError`).

    Args:
        text: registered protocol names, each optionally with `_worst`, separated by commas (repeats are dropped,
            the order kept).

    Returns:
        The names, a tuple of str.

    Examples:
        >>> protocol_list("random,crop_worst")
        ('random', 'crop_worst')
    """
    names = tuple(dict.fromkeys(name for name in text.split(",") if name))
    unknown = [name for name in names if name not in protocol_names()]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown protocol(s) {', '.join(unknown) or repr(text)}; choose from "
                                         f"{', '.join(protocol_names())}")
    return names


def add_protocols_argument(parser: argparse.ArgumentParser, option: str = "--protocols", *,
                           default: tuple[str, ...] = DEFAULT_PROTOCOLS) -> None:
    """Add `option` (comma-separated protocol names, `protocol_list`) to `parser`.

    Args:
        parser: the `argparse.ArgumentParser` (or argument group).
        option: the option's name.
        default: the protocols when the option is not given.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_protocols_argument(parser)
        >>> parser.parse_args(["--protocols", "random,circular_worst"]).protocols
        ('random', 'circular_worst')
        >>> parser.parse_args([]).protocols
        ('random', 'circular')
    """
    parser.add_argument(option, type=protocol_list, default=default, metavar="NAMES",
                        help=f"comma-separated consistency protocols (default: {','.join(default)}; of "
                             f"{', '.join(protocol_names())}: <protocol>_worst is the worst case over a grid of "
                             "offsets, a forward each; crop needs images larger than the model's)")


def check_crop_options(protocols: Sequence[str], crop_from: Optional[int], crop_size: Optional[int]) -> None:
    """Refuse (`UsageError`) a `crop` protocol without the larger images, or larger images
    not larger than the crop.

    Args:
        protocols: the protocol names asked for.
        crop_from: the side the evaluated images are resized and centre-cropped to (`--crop-from`), or None.
        crop_size: the crop, the model's input size (`--image-size`), or None.

    Examples:
        >>> check_crop_options(("crop",), crop_from=256, crop_size=224)
        >>> check_crop_options(("crop",), crop_from=None, crop_size=224)
        Traceback (most recent call last):
        ...
        augshift.errors.UsageError: the crop protocol compares crops of larger images: pass --crop-from N ...
    """
    crops = crop_protocols(protocols)
    if crops and crop_from is None:
        raise UsageError(f"the {crops[0]} protocol compares crops of larger images: pass --crop-from N (e.g. 256) with "
                         "--image-size the model's input size (e.g. 224)")
    if crop_from is not None and (crop_size is None or crop_size >= crop_from):
        raise UsageError(f"--crop-from {crop_from} needs --image-size, the crop, smaller than it (e.g. --crop-from 256 "
                         "--image-size 224)")


def crop_protocols(names: Sequence[str]) -> list[str]:
    """The names among `names` whose views are crops of larger images (`crop`, `crop_worst`).

    Examples:
        >>> crop_protocols(("random", "crop_worst"))
        ['crop_worst']
    """
    return [name for name in names if protocol_of(name)[0].larger_images]


CONSISTENCY_COLUMN = "shift_consistency"  # what the training integrations log: random's; <it>_<protocol> the others'


def consistency_column(protocol: str) -> str:
    """The name the training integrations log a protocol's consistency under (timm's `summary.csv` column, the
    `transformers` Trainer's metric after its `eval_` prefix): `shift_consistency` for `random`, else
    `shift_consistency_<protocol>`.

    Examples:
        >>> consistency_column("random"), consistency_column("circular_worst")
        ('shift_consistency', 'shift_consistency_circular_worst')
    """
    return CONSISTENCY_COLUMN if protocol == "random" else f"{CONSISTENCY_COLUMN}_{protocol}"


def pair_offsets(name: str, indices: Tensor, geometry: Geometry, seed: int) -> tuple[tuple[Tensor, Tensor], ...]:
    """The offsets of protocol `name`'s two views for samples `indices` (N,) (`Protocol.offsets`):
    integer shifts, crop offsets from the top-left corner (`crop`) or float64 shifts (`fractional`).

    Args:
        name: a registered protocol (without `_worst`).
        indices: (N,) integer dataset indices of the samples.
        geometry: the evaluated sizes, `max_shift` and border mode (`Geometry`).
        seed: the evaluation seed.

    Returns:
        `((dx_a, dy_a), (dx_b, dy_b))`, four (N,) tensors, keyed by the protocol's salt, `seed` and the indices.

    Examples:
        >>> import torch
        >>> (a, b) = pair_offsets("random", torch.arange(3), Geometry(32, 32, max_shift=4, mode="zeros"), seed=0)
        >>> all(v.abs().max() <= 4 for v in (*a, *b))
        True
    """
    return PROTOCOLS[name].offsets(indices, geometry, seed=seed)


def worst_grid(name: str, geometry: Geometry) -> tuple:
    """The per-axis offsets of `name`'s worst case (`name` without the suffix; `Protocol.grid`).

    Args:
        name: a registered protocol (`random` for `random_worst`).
        geometry: the evaluated sizes and the evaluator's `max_shift` (`Geometry`).

    Returns:
        The S offsets per axis, a tuple; the worst case evaluates all S x S pairs.

    Examples:
        >>> worst_grid("random", Geometry(32, 32, max_shift=4, mode="zeros"))
        (-4, -3, -2, -1, 0, 1, 2, 3, 4)
        >>> worst_grid("fractional", Geometry(32, 32, max_shift=4, mode="zeros"))
        (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
    """
    return PROTOCOLS[name].grid(geometry)
