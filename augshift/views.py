"""How a consistency protocol makes its views: the `Protocol` interface (`draw` the offsets,
`grid` of the worst case, `view`, `check` the sizes), its kinds --
integer shifts with a border mode (`ShiftProtocol`), crops of larger images (`CropProtocol`), band-limited
real shifts (`FractionalProtocol`) -- and the sizes views are made at (`Geometry`, `crop`,
`centre_crop`).

With a `crop_size` smaller than the images, the crop protocol compares two crops of each larger image and every
other protocol (and the accuracy) starts from its centre crop; without one, the images are evaluated as they are.
Offsets are drawn by a fixed integer hash of `(sample index, salt)` (`hashed_offsets`): no generator state, so
any process replays any sample's views. `augshift.protocols` names the protocols.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, ClassVar, Optional, Union

from .errors import UsageError

if TYPE_CHECKING:  # torch is imported where views are made: the protocol registry's names come without it
    from torch import Tensor

__all__ = ["CropProtocol", "FractionalProtocol", "Geometry", "Protocol", "ShiftProtocol", "centre_crop", "crop",
           "offsets_to"]

FULL = "full"  # a shift protocol's reach: every offset of the image
_MASK = (1 << 31) - 1
_FRACTION_STEPS = 1 << 24  # resolution of the real-valued offsets: 2**-24 of the range

Offset = Union[int, float, "Tensor"]  # one axis's offset: fixed (a grid's) or per image, (N,)


@dataclass(frozen=True)
class Geometry:
    """The sizes a protocol's offsets are drawn for and its views made at.

    Args:
        height: the evaluated height (the crop, with `crop_size`).
        width: the evaluated width.
        max_shift: the evaluator's `max_shift` (the reach of the protocols that name none).
        mode: the evaluator's border mode.
        source: `(height, width)` of the larger image crops are taken from (`None`: no crop, the images are
            the evaluated size).

    Examples:
        >>> geometry = Geometry(224, 224, max_shift=4, mode="zeros", source=(256, 256))
        >>> geometry.crop_range, geometry.centre
        ((32, 32), (16, 16))
        >>> Geometry.of(256, 256, max_shift=4, mode="zeros", crop_size=224) == geometry
        True
    """

    height: int
    width: int
    max_shift: int
    mode: str
    source: Optional[tuple[int, int]] = None

    @classmethod
    def of(cls, height: int, width: int, *, max_shift: int, mode: str, crop_size: Optional[int] = None) -> Geometry:
        """The geometry of images of `height` x `width` evaluated at `crop_size` x `crop_size` (`None`: at
        their own size); `UsageError` for images smaller than the crop.

        Examples:
            >>> Geometry.of(32, 32, max_shift=4, mode="zeros", crop_size=32).source is None  # nothing to crop from
            True
        """
        if crop_size is None:
            return cls(height, width, max_shift, mode)
        if height < crop_size or width < crop_size:
            raise UsageError(f"images of {height}x{width} are smaller than crop_size {crop_size}: give images of at "
                             f"least {crop_size}x{crop_size} (--crop-from) or a smaller crop (--image-size)")
        larger = (height, width) if (height, width) != (crop_size, crop_size) else None
        return cls(crop_size, crop_size, max_shift, mode, larger)

    @property
    def crop_range(self) -> tuple[int, int]:
        """`(rows, cols)`: the number of crop offsets per axis (offsets `0 .. range - 1`)."""
        if self.source is None:
            raise ValueError("no crop: the images are not larger than the evaluated size")
        return self.source[0] - self.height, self.source[1] - self.width

    @property
    def centre(self) -> tuple[int, int]:
        """`(left, top)`: the offset of the centre crop."""
        rows, cols = self.crop_range
        return cols // 2, rows // 2


def crop(images: Tensor, left: Union[int, Tensor], top: Union[int, Tensor], geometry: Geometry) -> Tensor:
    """Per-image crops of `geometry`'s evaluated size from the larger `images`.

    Args:
        images: (N, C, H0, W0), at least `geometry.height` x `geometry.width`.
        left: the crops' first columns: an int, or (N,) integers (one per image).
        top: the crops' first rows, the same way.
        geometry: the evaluated `height` and `width`.

    Returns:
        (N, C, height, width).

    Examples:
        >>> x = torch.arange(16.).view(1, 1, 4, 4)
        >>> crop(x, 1, 2, Geometry(2, 2, max_shift=0, mode="zeros", source=(4, 4)))[0, 0]
        tensor([[ 9., 10.],
                [13., 14.]])
    """
    import torch

    n, device = len(images), images.device
    rows = torch.as_tensor(top).expand(n).to(device).view(-1, 1) + torch.arange(geometry.height, device=device)
    cols = torch.as_tensor(left).expand(n).to(device).view(-1, 1) + torch.arange(geometry.width, device=device)
    batch = torch.arange(n, device=device).view(-1, 1, 1)
    return images.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)].permute(0, 3, 1, 2)


def centre_crop(images: Tensor, geometry: Geometry) -> Tensor:
    """`images` (N, C, H0, W0) at the evaluated size (N, C, height, width): their centre crop, or themselves
    when there is nothing to crop from.

    Examples:
        >>> centre_crop(torch.zeros(2, 3, 8, 8), Geometry(6, 6, max_shift=1, mode="zeros", source=(8, 8))).shape
        torch.Size([2, 3, 6, 6])
    """
    if geometry.source is None:
        return images
    return crop(images, *geometry.centre, geometry)


def hashed_offsets(indices: Tensor, salt: int, count: int) -> Tensor:
    """Deterministic integers in `[0, count)` from sample indices (N,) and a salt (a fixed integer hash).

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
    """Deterministic integers in `[-max_shift, max_shift]` from sample indices (N,) and a salt."""
    return hashed_offsets(indices, salt, 2 * max_shift + 1) - max_shift


def hashed_fractions(indices: Tensor, salt: int, reach: float) -> Tensor:
    """Deterministic reals in `[-reach, reach]` (float64, resolution `2 * reach / 2**24`) from sample indices."""
    return hashed_offsets(indices, salt, _FRACTION_STEPS).double() * (2 * reach / (_FRACTION_STEPS - 1)) - reach


def offsets_to(reach: int) -> tuple[int, ...]:
    """A symmetric grid out to `reach`: every offset up to 4, then powers of two and their 1.5x (0, ±1..±4, ±6, ±8,
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
    """Every offset in `[-reach, reach]`."""
    return tuple(range(-reach, reach + 1))


@dataclass(frozen=True)
class Protocol(ABC):
    """A consistency protocol: how it draws the offsets of an image's two views (`draw`), the per-axis offsets
    of its worst case (`grid`), how it makes a view (`view`) and the images it needs (`check`).
    Registered by name (`augshift.protocols.register_protocol`); `ShiftConsistency` calls only these
    methods, so a new kind of view is one subclass.

    Args:
        name: the protocol's name (`<name>_worst` is its worst case).
        salt: keys its random offsets, fixed for its name; it uses `salt .. salt + 3`, which no other protocol may.

    Examples:
        >>> circular = ShiftProtocol("circular", salt=10, mode="circular")  # PROTOCOLS["circular"]
        >>> geometry = Geometry(8, 8, max_shift=2, mode="zeros")
        >>> circular.grid(geometry)
        (-2, -1, 0, 1, 2)
        >>> images = torch.rand(3, 1, 8, 8)
        >>> (dx, dy), _ = circular.offsets(torch.arange(3), geometry, seed=0)
        >>> torch.equal(circular.view(images, images, dx, dy, geometry)[0],
        ...             torch.roll(images[0], (int(dy[0]), int(dx[0])), (-2, -1)))
        True
    """

    name: str
    _: KW_ONLY
    salt: int
    larger_images: ClassVar[bool] = False  # its views are crops of images larger than the evaluated size

    @property
    def uses_max_shift(self) -> bool:
        """Whether its offsets reach as far as the evaluator's `max_shift` (`max_shift=0`: identical views).

        Examples:
            >>> ShiftProtocol("circular", salt=10, mode="circular").uses_max_shift  # reach: the evaluator's
            True
            >>> ShiftProtocol("random8", salt=20, mode="zeros", reach=8).uses_max_shift  # a reach of its own
            False
        """
        return False

    def offsets(self, indices: Tensor, geometry: Geometry, *, seed: int) -> tuple[tuple[Tensor, Tensor], ...]:
        """`((dx_a, dy_a), (dx_b, dy_b))` (N,) each: its two views' offsets for the samples `indices` (N,),
        keyed by `seed`, the salt and the indices only.

        Examples:
            >>> circular, geometry = ShiftProtocol("circular", salt=10, mode="circular"), Geometry(8, 8, max_shift=2, mode="zeros")
            >>> (dx_a, dy_a), (dx_b, dy_b) = circular.offsets(torch.arange(4), geometry, seed=0)
            >>> dx_a.shape, torch.equal(circular.offsets(torch.arange(2, 4), geometry, seed=0)[0][0], dx_a[2:])
            (torch.Size([4]), True)
        """
        salt = seed * 1000 + self.salt
        return tuple(self.draw(indices, salt + 2 * view, geometry) for view in range(2))

    @abstractmethod
    def draw(self, indices: Tensor, salt: int, geometry: Geometry) -> tuple[Tensor, Tensor]:
        """One view's `(dx, dy)`, (N,) each, for the samples `indices` (N,): `dx` keyed by `salt`, `dy` by
        `salt + 1` (`hashed_offsets`).

        Examples:
            >>> circular, geometry = ShiftProtocol("circular", salt=10, mode="circular"), Geometry(8, 8, max_shift=2, mode="zeros")
            >>> dx, dy = circular.draw(torch.arange(100), 7, geometry)
            >>> int(dx.min()), int(dx.max())  # in [-max_shift, max_shift]
            (-2, 2)
        """

    @abstractmethod
    def grid(self, geometry: Geometry) -> tuple:
        """The S offsets per axis of its worst case (all S x S pairs are evaluated).

        Examples:
            >>> ShiftProtocol("circular", salt=10, mode="circular").grid(Geometry(8, 8, max_shift=1, mode="zeros"))
            (-1, 0, 1)
        """

    @abstractmethod
    def view(self, images: Tensor, base: Tensor, dx: Offset, dy: Offset, geometry: Geometry) -> Tensor:
        """The view (N, C, height, width) at `(dx, dy)` (per image, (N,) each, or one pair for every image), made
        from `images` (N, C, H0, W0) as given or from `base`, them at the evaluated size (N, C, height, width):
        their centre crop, or themselves without a crop.

        Examples:
            >>> circular, geometry = ShiftProtocol("circular", salt=10, mode="circular"), Geometry(8, 8, max_shift=2, mode="zeros")
            >>> images = torch.arange(64.).view(1, 1, 8, 8)
            >>> torch.equal(circular.view(images, images, 1, 0, geometry), torch.roll(images, 1, -1))  # one to the right
            True
        """

    @abstractmethod
    def check(self, geometry: Geometry) -> None:
        """Refuse (`UsageError`, naming the fix) images its views do not fit.

        Examples:
            >>> ShiftProtocol("circular", salt=10, mode="circular").check(Geometry(8, 8, max_shift=2, mode="zeros"))
            >>> ShiftProtocol("circular", salt=10, mode="circular").check(Geometry(2, 2, max_shift=2, mode="zeros"))
            Traceback (most recent call last):
            ...
            augshift.errors.UsageError: ...
        """

    def key(self, dx: Offset, dy: Offset, geometry: Geometry) -> Optional[str]:
        """The name of its view at the fixed offsets `(dx, dy)`, the same for every protocol that makes the same
        view (it is evaluated once), or `None` for `base` itself (the offset `(0, 0)`).

        Examples:
            >>> circular, geometry = ShiftProtocol("circular", salt=10, mode="circular"), Geometry(8, 8, max_shift=2, mode="zeros")
            >>> circular.key(1, -2, geometry), circular.key(0, 0, geometry)
            ('shift/circular/1/-2', None)
        """
        return None if (dx, dy) == (0, 0) else f"{type(self).__name__}/{dx}/{dy}"


@dataclass(frozen=True, kw_only=True)
class ShiftProtocol(Protocol):
    """Integer shifts (`shift`) in `[-reach, reach]` per axis, with a border `mode`.

    Args:
        name: the protocol's name.
        salt: keys its random offsets (see `Protocol`).
        mode: the border (`None`: the evaluator's).
        reach: the offsets' range per axis (`None`: the evaluator's `max_shift`; an int; `FULL`: any
            offset of the image, `[0, W)` x `[0, H)`).

    Examples:
        >>> ShiftProtocol("random16", salt=30, reach=16).grid(Geometry(40, 40, max_shift=4, mode="zeros"))[-3:]
        (8, 12, 16)
    """

    mode: Optional[str] = None
    reach: Union[None, int, str] = None

    @property
    def uses_max_shift(self) -> bool:
        return self.reach is None

    def _reach(self, geometry: Geometry) -> Union[int, str]:
        return geometry.max_shift if self.reach is None else self.reach

    def draw(self, indices: Tensor, salt: int, geometry: Geometry) -> tuple[Tensor, Tensor]:
        reach = self._reach(geometry)
        if reach == FULL:
            return hashed_offsets(indices, salt, geometry.width), hashed_offsets(indices, salt + 1, geometry.height)
        return hashed_shifts(indices, salt, reach), hashed_shifts(indices, salt + 1, reach)

    def grid(self, geometry: Geometry) -> tuple:
        reach = self._reach(geometry)
        return offsets_to(min(geometry.height, geometry.width) // 2 if reach == FULL else reach)

    def view(self, images: Tensor, base: Tensor, dx: Offset, dy: Offset, geometry: Geometry) -> Tensor:
        from .shifts import shift

        return shift(base, dx, dy, self.mode or geometry.mode)

    def check(self, geometry: Geometry) -> None:
        reach, side = self._reach(geometry), min(geometry.height, geometry.width)
        if reach != FULL and reach >= side:
            fix = (f"use a max_shift below {side}" if self.reach is None
                   else f"leave {self.name} out or evaluate images larger than {reach} px")
            raise UsageError(f"shifts up to {reach} px (the {self.name} protocol) do not fit images of "
                             f"H={geometry.height}, W={geometry.width}: {fix}")

    def key(self, dx: Offset, dy: Offset, geometry: Geometry) -> Optional[str]:
        return None if (dx, dy) == (0, 0) else f"shift/{self.mode or geometry.mode}/{dx}/{dy}"


@dataclass(frozen=True, kw_only=True)
class CropProtocol(Protocol):
    """Crops of the evaluated size from larger images, at offsets in `[0, size - crop_size)` per axis from the
    top-left corner (Zhang 2019's ImageNet protocol); its worst case, the crops around the centre crop.

    Examples:
        >>> CropProtocol("crop", salt=50).grid(Geometry(4, 4, max_shift=0, mode="zeros", source=(10, 10)))
        (0, 1, 2, 3, 4, 5)
    """

    larger_images: ClassVar[bool] = True

    def draw(self, indices: Tensor, salt: int, geometry: Geometry) -> tuple[Tensor, Tensor]:
        rows, cols = geometry.crop_range
        return hashed_offsets(indices, salt, cols), hashed_offsets(indices, salt + 1, rows)

    def grid(self, geometry: Geometry) -> tuple:
        side = min(geometry.crop_range)
        centre = side // 2
        return tuple(centre + d for d in offsets_to(centre) if 0 <= centre + d < side)

    def view(self, images: Tensor, base: Tensor, dx: Offset, dy: Offset, geometry: Geometry) -> Tensor:
        return crop(images, dx, dy, geometry)

    def check(self, geometry: Geometry) -> None:
        if geometry.source is None:
            raise UsageError(f"the {self.name} protocol compares crops of larger images, but the images are "
                             f"{geometry.height}x{geometry.width}, the crop size: hand it larger images (--crop-from, "
                             "e.g. 256 for 224 crops)")
        if geometry.source[0] != geometry.source[1] or min(geometry.crop_range) < 2:
            raise UsageError(f"the {self.name} protocol needs square images at least 2 px larger than the crop (two "
                             f"distinct crop offsets), got {geometry.source[0]}x{geometry.source[1]} for "
                             f"{geometry.height} crops (--crop-from resizes and centre-crops to a square, e.g. 256 "
                             "for 224)")

    def key(self, dx: Offset, dy: Offset, geometry: Geometry) -> Optional[str]:
        return None if (dx, dy) == geometry.centre else f"crop/{dx}/{dy}"


FRACTIONAL_GRID = tuple(k / 4 for k in range(-4, 5))  # the fractional worst case: quarter pixels in [-1, 1]


@dataclass(frozen=True, kw_only=True)
class FractionalProtocol(Protocol):
    """Band-limited circular shifts (`fractional_shift`) by real offsets in
    `[-max_shift, max_shift]`; its worst case, the quarter pixels of `[-1, 1]`.

    Examples:
        >>> FractionalProtocol("fractional", salt=60).grid(Geometry(8, 8, max_shift=2, mode="zeros"))[:3]
        (-1.0, -0.75, -0.5)
    """

    @property
    def uses_max_shift(self) -> bool:
        return True

    def draw(self, indices: Tensor, salt: int, geometry: Geometry) -> tuple[Tensor, Tensor]:
        return (hashed_fractions(indices, salt, geometry.max_shift),
                hashed_fractions(indices, salt + 1, geometry.max_shift))

    def grid(self, geometry: Geometry) -> tuple:
        return FRACTIONAL_GRID

    def view(self, images: Tensor, base: Tensor, dx: Offset, dy: Offset, geometry: Geometry) -> Tensor:
        from .shifts import fractional_shift

        return fractional_shift(base, dx, dy)

    def check(self, geometry: Geometry) -> None:
        side = min(geometry.height, geometry.width)
        if geometry.max_shift >= side:
            raise UsageError(f"shifts up to {geometry.max_shift} px (the {self.name} protocol) do not fit images of "
                             f"H={geometry.height}, W={geometry.width}: use a max_shift below {side}")
