"""Shift-consistency protocols: how the two views of an image are made, keyed by the protocol's name.

Each protocol draws, for every image, two views at independent random offsets and compares the classifier's
predictions; its ``_worst`` variant instead evaluates every offset of a grid and counts an image only if all its
predictions agree (and, as worst-case accuracy, only if all are correct).

========================  ======================================================  ========================================
name                      the two views                                           reproduces
========================  ======================================================  ========================================
``random``                shifts in ``[-max_shift, max_shift]`` per axis, border   Zhang 2019's CIFAR protocol (pad-and-crop
                          ``mode`` (``zeros`` = pad-and-crop)                      with ``zeros``); the project's headline
``random8``, ``random16`` the same at ``[-8, 8]`` / ``[-16, 16]`` px               harsher CIFAR shifts (the paper gives
                                                                                   none)
``circular``              ``torch.roll`` in ``[-max_shift, max_shift]``            Chaman & Dokmanic 2021 (APS): circular
                                                                                   consistency
``circular_full``         ``torch.roll`` by any offset of the image                Zhang 2019's CIFAR figures
``crop``                  two ``crop_size`` crops of the larger image at offsets   Zhang 2019 on ImageNet
                          in ``[0, size - crop_size)`` per axis (256 -> 224:       (``validate_shift``: resize 256, centre
                          ``[0, 32)``), per image                                  crop 256, two random 224 crops)
``fractional``            band-limited circular shifts by real offsets in          Michaeli et al. 2023 (alias-free
                          ``[-max_shift, max_shift]`` (:func:`~.shift.             convnets): sub-pixel shifts
                          fractional_shift`)
========================  ======================================================  ========================================

Worst-case grids (``<name>_worst``): the shift protocols every offset of ``[-r, r]`` per axis up to ``r = 4`` and a
sparse grid beyond (:func:`offsets_to`: 0, 1..4, 6, 8, 12, 16, ...), ``circular_full`` out to half the image,
``fractional`` the quarter-pixel grid of ``[-1, 1]`` (sub-pixel offsets; whole pixels are ``circular_worst``'s),
``crop`` the crop offsets around the centre crop on the same grid. With ``crop`` every other protocol and the
accuracy use the centre ``crop_size`` crop.

A protocol's random offsets depend only on its own fixed ``salt``, the evaluation seed and the sample's dataset index
-- never on which other protocols run or in which order, on the batch or on the process.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch  # noqa: F401  (the examples use it)
from torch import Tensor

from .errors import UsageError

__all__ = ["ALL_PROTOCOLS", "DEFAULT_PROTOCOLS", "PROTOCOLS", "PROTOCOL_FAMILY", "Geometry", "Protocol",
           "add_protocols_argument", "check_crop_options", "offsets_to", "pair_offsets", "protocol_list", "worst_grid"]

FULL = "full"  # a protocol's reach: every offset of the image
WORST = "_worst"  # suffix of a protocol's worst-case variant
_MASK = (1 << 31) - 1
_FRACTION_STEPS = 1 << 24  # resolution of the real-valued offsets: 2**-24 of the range


@dataclass(frozen=True)
class Protocol:
    """How a protocol makes its two views (the values of :data:`PROTOCOLS`, keyed by the protocol's name).

    Args:
        kind: ``shift`` (integer shifts with a border ``mode``), ``crop`` (crops of a larger image) or
            ``fractional`` (band-limited real shifts).
        mode: the border mode of a ``shift`` protocol (``None``: the evaluator's).
        reach: the offsets' range per axis (``None``: the evaluator's ``max_shift``; an int; :data:`FULL`: the whole
            image).
        salt: keys the protocol's random offsets, fixed for its name (``random`` and ``circular`` keep the offsets
            of earlier versions).

    Examples:
        >>> PROTOCOLS["circular"]
        Protocol(kind='shift', mode='circular', reach=None, salt=10)
        >>> PROTOCOLS["random16"].reach, PROTOCOLS["circular_full"].reach
        (16, 'full')
    """

    kind: str
    mode: Optional[str]
    reach: Union[None, int, str]
    salt: int


PROTOCOLS = {
    "random": Protocol("shift", None, None, 0),
    "circular": Protocol("shift", "circular", None, 10),
    "random8": Protocol("shift", None, 8, 20),
    "random16": Protocol("shift", None, 16, 30),
    "circular_full": Protocol("shift", "circular", FULL, 40),
    "crop": Protocol("crop", None, None, 50),
    "fractional": Protocol("fractional", None, None, 60),
}
PAIR_PROTOCOLS = tuple(PROTOCOLS)
WORST_PROTOCOLS = tuple(name + WORST for name in PROTOCOLS)
ALL_PROTOCOLS = PAIR_PROTOCOLS + WORST_PROTOCOLS
# what `augshift consistency` and every benchmark report: the 32 px family (crop needs larger images, worst-case
# grids cost a forward per offset); the metric's own default is the two cheap ones
PROTOCOL_FAMILY = ("random", "circular", "random8", "random16", "circular_full", "fractional")
DEFAULT_PROTOCOLS = ("random", "circular")
if len({p.salt for p in PROTOCOLS.values()}) != len(PROTOCOLS):  # two protocols would draw the same offsets
    raise RuntimeError("every protocol needs a salt of its own")


def protocol_list(text: str) -> tuple[str, ...]:
    """Comma-separated protocol names -> a tuple (an ``argparse`` type: unknown names are an ``ArgumentTypeError``).

    Args:
        text: protocol names of :data:`ALL_PROTOCOLS`, separated by commas (repeats are dropped, the order kept).

    Returns:
        The names, a tuple of str.

    Examples:
        >>> protocol_list("random,crop_worst")
        ('random', 'crop_worst')
    """
    names = tuple(dict.fromkeys(name for name in text.split(",") if name))
    unknown = [name for name in names if name not in ALL_PROTOCOLS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown protocol(s) {', '.join(unknown) or repr(text)}; choose from "
                                         f"{', '.join(ALL_PROTOCOLS)}")
    return names


def add_protocols_argument(parser: argparse.ArgumentParser, option: str = "--protocols", *,
                           default: tuple[str, ...] = DEFAULT_PROTOCOLS) -> None:
    """Add ``option`` (comma-separated protocol names, :func:`protocol_list`) to ``parser``.

    Args:
        parser: the ``argparse.ArgumentParser`` (or argument group).
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
                             f"{', '.join(ALL_PROTOCOLS)}: <protocol>_worst is the worst case over a grid of offsets, a "
                             "forward each; crop needs images larger than the model's)")


def check_crop_options(protocols: Sequence[str], crop_from: Optional[int], crop_size: Optional[int]) -> None:
    """Refuse (:class:`~augshift.errors.UsageError`) a ``crop`` protocol without the larger images, or larger images
    not larger than the crop.

    Args:
        protocols: the protocol names asked for.
        crop_from: the side the evaluated images are resized and centre-cropped to (``--crop-from``), or None.
        crop_size: the crop, the model's input size (``--image-size``), or None.

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
    """The names among ``names`` whose views are crops of larger images (``crop``, ``crop_worst``).

    Examples:
        >>> crop_protocols(("random", "crop_worst"))
        ['crop_worst']
    """
    return [name for name in names if PROTOCOLS[split_name(name)[0]].kind == "crop"]


CONSISTENCY_COLUMN = "shift_consistency"  # what the training integrations log: random's; <it>_<protocol> the others'


def consistency_column(protocol: str) -> str:
    """The name the training integrations log a protocol's consistency under (timm's ``summary.csv`` column, the
    ``transformers`` Trainer's metric after its ``eval_`` prefix): ``shift_consistency`` for ``random``, else
    ``shift_consistency_<protocol>``.

    Examples:
        >>> consistency_column("random"), consistency_column("circular_worst")
        ('shift_consistency', 'shift_consistency_circular_worst')
    """
    return CONSISTENCY_COLUMN if protocol == "random" else f"{CONSISTENCY_COLUMN}_{protocol}"


def split_name(name: str) -> tuple[str, bool]:
    """``("random", True)`` for ``"random_worst"``, ``("random", False)`` for ``"random"``."""
    return (name[: -len(WORST)], True) if name.endswith(WORST) else (name, False)


def hashed_offsets(indices: Tensor, salt: int, count: int) -> Tensor:
    """Deterministic integers in ``[0, count)`` from sample indices (N,) and a salt (a fixed integer hash).

    Examples:
        >>> hashed_offsets(torch.arange(4), 7, 10).tolist() == hashed_offsets(torch.arange(4), 7, 10).tolist()
        True
    """
    x = (indices.long() * 1103515245 + (salt * 12345 + 1013904223)) & _MASK
    for _ in range(2):
        x = x ^ (x >> 16)
        x = (x * 0x45D9F3B) & _MASK
    x = x ^ (x >> 16)
    return x.remainder(count)


def hashed_shifts(indices: Tensor, salt: int, max_shift: int) -> Tensor:
    """Deterministic integers in ``[-max_shift, max_shift]`` from sample indices (N,) and a salt."""
    return hashed_offsets(indices, salt, 2 * max_shift + 1) - max_shift


def hashed_fractions(indices: Tensor, salt: int, reach: float) -> Tensor:
    """Deterministic reals in ``[-reach, reach]`` (float64, resolution ``2 * reach / 2**24``) from sample indices."""
    return hashed_offsets(indices, salt, _FRACTION_STEPS).double() * (2 * reach / (_FRACTION_STEPS - 1)) - reach


def offsets_to(reach: int) -> tuple[int, ...]:
    """A symmetric grid out to ``reach``: every offset up to 4, then powers of two and their 1.5x (0, ±1..±4, ±6, ±8,
    ±12, ±16, ...): 17 offsets per axis (289 shifts) out to 16 px instead of 33 (1089).

    Examples:
        >>> offsets_to(16)
        (-16, -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12, 16)
    """
    steps = set(range(min(reach, 4) + 1))
    d = 4
    while d < reach:
        steps.update(v for v in (d + d // 2, 2 * d) if v <= reach)
        d *= 2
    steps.add(reach)
    return tuple(sorted({-d for d in steps} | steps))


def dense_offsets(reach: int) -> tuple[int, ...]:
    """Every offset in ``[-reach, reach]``."""
    return tuple(range(-reach, reach + 1))


FRACTIONAL_GRID = tuple(k / 4 for k in range(-4, 5))  # the fractional worst case: quarter pixels in [-1, 1]


@dataclass(frozen=True)
class Geometry:
    """The sizes a protocol's offsets are drawn for.

    Args:
        height: the evaluated height (the crop, with ``crop_size``).
        width: the evaluated width.
        max_shift: the evaluator's ``max_shift`` (the reach of the protocols that name none).
        mode: the evaluator's border mode.
        source: ``(height, width)`` of the larger image crops are taken from (``None``: no crop, the images are
            the evaluated size).

    Examples:
        >>> Geometry(224, 224, max_shift=4, mode="zeros", source=(256, 256)).crop_range
        (32, 32)
    """

    height: int
    width: int
    max_shift: int
    mode: str
    source: Optional[tuple[int, int]] = None

    @property
    def crop_range(self) -> tuple[int, int]:
        """``(rows, cols)``: the number of crop offsets per axis (offsets ``0 .. range - 1``)."""
        if self.source is None:
            raise ValueError("no crop: the images are not larger than the evaluated size")
        return self.source[0] - self.height, self.source[1] - self.width


def reach_of(protocol: Protocol, geometry: Geometry) -> Union[int, str]:
    return geometry.max_shift if protocol.reach is None else protocol.reach


def pair_offsets(name: str, indices: Tensor, geometry: Geometry, seed: int) -> tuple[tuple[Tensor, Tensor], ...]:
    """The offsets of protocol ``name``'s two views for samples ``indices`` (N,): ``((dx_a, dy_a), (dx_b, dy_b))``,
    each (N,): integer shifts (``shift``), crop offsets from the top-left corner (``crop``) or float64 shifts
    (``fractional``). They depend on the protocol's salt, ``seed`` and the indices only.

    Args:
        name: a protocol of :data:`PROTOCOLS` (without ``_worst``).
        indices: (N,) integer dataset indices of the samples.
        geometry: the evaluated sizes, ``max_shift`` and border mode (:class:`Geometry`).
        seed: the evaluation seed.

    Returns:
        ``((dx_a, dy_a), (dx_b, dy_b))``, four (N,) tensors.

    Examples:
        >>> (a, b) = pair_offsets("random", torch.arange(3), Geometry(32, 32, max_shift=4, mode="zeros"), seed=0)
        >>> all(v.abs().max() <= 4 for v in (*a, *b))
        True
    """
    protocol = PROTOCOLS[name]
    salt0 = seed * 1000 + protocol.salt
    views = []
    for view in range(2):
        salt = salt0 + view * 2
        if protocol.kind == "crop":
            rows, cols = geometry.crop_range
            views.append((hashed_offsets(indices, salt, cols), hashed_offsets(indices, salt + 1, rows)))
        elif protocol.kind == "fractional":
            reach = reach_of(protocol, geometry)
            views.append((hashed_fractions(indices, salt, reach), hashed_fractions(indices, salt + 1, reach)))
        elif reach_of(protocol, geometry) == FULL:
            views.append((hashed_offsets(indices, salt, geometry.width), hashed_offsets(indices, salt + 1, geometry.height)))
        else:
            reach = reach_of(protocol, geometry)
            views.append((hashed_shifts(indices, salt, reach), hashed_shifts(indices, salt + 1, reach)))
    return tuple(views)


def worst_grid(name: str, geometry: Geometry) -> tuple[tuple, ...]:
    """The per-axis offsets of ``name``'s worst case (``name`` without the suffix): shifts for ``shift`` and
    ``fractional`` protocols, crop offsets for ``crop``.

    Args:
        name: a protocol of :data:`PROTOCOLS` (``random`` for ``random_worst``).
        geometry: the evaluated sizes and the evaluator's ``max_shift`` (:class:`Geometry`).

    Returns:
        The S offsets per axis, a tuple; the worst case evaluates all S x S pairs.

    Examples:
        >>> worst_grid("random", Geometry(32, 32, max_shift=4, mode="zeros"))
        (-4, -3, -2, -1, 0, 1, 2, 3, 4)
        >>> worst_grid("fractional", Geometry(32, 32, max_shift=4, mode="zeros"))
        (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
    """
    protocol = PROTOCOLS[name]
    if protocol.kind == "fractional":
        return FRACTIONAL_GRID
    if protocol.kind == "crop":
        rows, cols = geometry.crop_range
        centre = min(rows, cols) // 2
        return tuple(centre + d for d in offsets_to(centre) if 0 <= centre + d < min(rows, cols))
    reach = reach_of(protocol, geometry)
    return offsets_to(min(geometry.height, geometry.width) // 2 if reach == FULL else reach)


def largest_shift(names: tuple[str, ...], geometry: Geometry) -> int:
    """The largest integer shift the protocols ``names`` make (for the size check)."""
    largest = 0
    for name in names:
        base, worst = split_name(name)
        protocol = PROTOCOLS[base]
        if protocol.kind == "shift" and reach_of(protocol, geometry) != FULL:
            largest = max(largest, reach_of(protocol, geometry))
        elif protocol.kind == "fractional":
            largest = max(largest, math.ceil(reach_of(protocol, geometry)))
    return largest
