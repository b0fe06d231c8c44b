"""Batched per-sample integer shifts of image batches.

`shift(x, dx, dy, mode)` moves the content of every image of an `(N, C, H, W)` batch by its own
`(dx, dy)` (no Python loop over samples): the batch is padded once by the largest shift with the border
mode, then every output row is copied from its window of the padded rows in one `index_select` (rows of
W values, or of W * C values for channels-last batches). Positive `dx` moves content right, positive
`dy` down, exactly as `torch.roll(x, (dy, dx), (-2, -1))` does; the modes differ only in what fills
the uncovered border.

`RandomShift` draws the per-sample shifts (`sample`) separately from applying them (`forward`), so
the same parameters can be replayed on another batch or view (kornia style).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MaxShift, check_max_shift, check_mode
from .errors import UsageError
from .seeding import process_generator

ShiftAmount = Union[int, Tensor]


def check_images(x: Tensor, name: str = "images", *, floating: bool = False) -> None:
    """Raise a clear error unless `x` is a non-empty `(N, C, H, W)` tensor (floating if asked)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got {x.dim()}-D shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N=0); expected at least one image")
    if floating and not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor (float32/float16/bfloat16, normalised), got {x.dtype}; "
            "convert uint8 images with x.float() / 255 and normalise them first"
        )


def _as_shift_tensor(value: ShiftAmount, n: int, name: str, device: torch.device) -> Tensor:
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex():
            raise TypeError(f"{name} must hold integers, got dtype {value.dtype}")
        if value.dim() == 0:
            value = value.expand(n)
        if value.shape != (n,):
            raise ValueError(f"{name} must be an int or a length-N tensor with N={n}, got shape {tuple(value.shape)}")
        return value.to(device=device, dtype=torch.long)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or a length-N integer tensor, got {type(value).__name__}")
    return torch.full((n,), value, dtype=torch.long, device=device)


def _source_index(target: Tensor, size: int, mode: str) -> Tensor:
    """Map (possibly out-of-range) source coordinates into `[0, size)` for the border `mode`."""
    if mode == "circular":
        return target.remainder(size)
    if mode == "reflect":  # like F.pad(mode="reflect"): the edge pixel is not repeated
        if size == 1:
            return torch.zeros_like(target)
        period = 2 * (size - 1)
        folded = target.remainder(period)
        return torch.where(folded >= size, period - folded, folded)
    return target.clamp(0, size - 1)  # replicate


def _reach(dx: ShiftAmount, dy: ShiftAmount, dx_t: Tensor, dy_t: Tensor) -> tuple[int, int]:
    """`(max |dx|, max |dy|)`: ints as given, tensors read back together (one synchronisation on CUDA)."""
    tensors = [t for raw, t in ((dx, dx_t), (dy, dy_t)) if isinstance(raw, Tensor)]
    read = iter(torch.stack([t.abs().max() for t in tensors]).tolist() if tensors else [])
    return tuple(int(next(read)) if isinstance(raw, Tensor) else abs(raw) for raw in (dx, dy))


def shift(x: Tensor, dx: ShiftAmount, dy: ShiftAmount, mode: str = "zeros") -> Tensor:
    """Shift each image of `x` (N, C, H, W) by its own integer `(dx, dy)`.

    Positive `dx` moves content right, positive `dy` down. Tensor shifts are range-checked with one read back
    to the host (one device synchronisation on CUDA).

    Args:
        x: images (N, C, H, W), any dtype (also channels-last).
        dx: horizontal shift, an int or a length-N integer tensor, `|dx| < W`.
        dy: vertical shift, an int or a length-N integer tensor, `|dy| < H`.
        mode: what fills the uncovered border: `circular` (wrap-around, equals `torch.roll`), `zeros` (zero
            border: pad-and-crop), `reflect` or `replicate`.

    Returns:
        A tensor of the same shape (N, C, H, W), dtype, device and memory format.

    Examples:
        >>> x = torch.arange(16.).view(1, 1, 4, 4)
        >>> shift(x, 1, 0)[0, 0]
        tensor([[ 0.,  0.,  1.,  2.],
                [ 0.,  4.,  5.,  6.],
                [ 0.,  8.,  9., 10.],
                [ 0., 12., 13., 14.]])
        >>> torch.equal(shift(x, 1, -2, "circular"), torch.roll(x, (-2, 1), (-2, -1)))
        True
        >>> shift(torch.ones(2, 3, 8, 8), torch.tensor([1, -1]), torch.tensor([0, 2])).shape  # one shift per image
        torch.Size([2, 3, 8, 8])
    """
    check_images(x, "x")
    check_mode(mode)
    n, _, h, w = x.shape
    dx_t = _as_shift_tensor(dx, n, "dx", x.device)
    dy_t = _as_shift_tensor(dy, n, "dy", x.device)
    reach_x, reach_y = _reach(dx, dy, dx_t, dy_t)
    if not (0 <= reach_x < w and 0 <= reach_y < h):  # (abs() of the most negative int64 stays negative)
        raise ValueError(
            f"shift larger than the image: need |dx| < W={w} and |dy| < H={h}, "
            f"got dx in [{int(dx_t.min())}, {int(dx_t.max())}], dy in [{int(dy_t.min())}, {int(dy_t.max())}]"
        )
    return _shift(x, dx_t, dy_t, mode, reach_x, reach_y)


def _pad(planes: Tensor, x: Tensor, channels_last: bool, mode: str, px: int, py: int) -> Tensor:
    """`x` padded by `px` columns and `py` rows on both sides with `mode`, as (N, K, H + 2py, (W + 2px) * E).

    `planes` is `x` as contiguous (N, K, H, W * E) rows: (N, C, H, W) (K = C, E = 1), or for a
    channels-last `x` its (N, 1, H, W * C) pixels (K = 1, E = C).
    """
    e = x.shape[1] if channels_last else 1
    # Whole pixels of E values: padding the flattened rows by px * E values pads by px pixels (zeros, circular).
    if mode == "zeros":  # constant padding exists for every dtype and device
        return F.pad(planes, (px * e, px * e, py, py))
    try:
        if mode == "circular" and channels_last:
            return F.pad(planes, (px * e, px * e, py, py), mode="circular")
        padded = F.pad(x, (px, px, py, py), mode=mode)
    except (NotImplementedError, RuntimeError) as error:  # a dtype this device's pad kernel lacks: index maps
        if isinstance(error, torch.cuda.OutOfMemoryError):
            raise
        _, _, h, w = x.shape
        rows = _source_index(torch.arange(-py, h + py, device=x.device), h, mode)
        cols = _source_index(torch.arange(-px, w + px, device=x.device), w, mode)
        padded = x.index_select(2, rows).index_select(3, cols)
    if channels_last:
        padded = padded.permute(0, 2, 3, 1).contiguous()  # no copy where the kernel kept channels-last
    else:
        padded = padded.contiguous()
    return padded.view(planes.shape[0], planes.shape[1], planes.shape[2] + 2 * py, -1)


# On CPU a batch whose padded copy exceeds _CHUNK_ABOVE bytes is padded and gathered in chunks of about
# _CHUNK_BYTES: the padded chunk stays in cache and its buffer is reused, instead of a large fresh allocation
# (measured on 2 cores: (64, 3, 224, 224) float32 1.7x, uint8 1.2x faster; (256, 3, 32, 32) is not chunked).
_CHUNK_ABOVE = 8 << 20
_CHUNK_BYTES = 4 << 20


def _shift(x: Tensor, dx: Tensor, dy: Tensor, mode: str, px: int, py: int) -> Tensor:
    """The shift, for (N,) long `dx`/`dy` on `x`'s device with `|dx| <= px < W`, `|dy| <= py < H`.

    Pads once by (px, py) with the border mode, then copies every output row (W values, or W * C for
    channels-last) from its window of the padded rows in one `index_select`: the window of sample `n`
    starts `(py - dy[n], px - dx[n])` pixels into its padded image. No host synchronisation.
    """
    if x.dtype == torch.bool:  # same bytes; some pad kernels have no bool version
        return _shift(x.view(torch.uint8), dx, dy, mode, px, py).view(torch.bool)
    n, c, h, w = x.shape
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if x.numel() == 0:
        return torch.empty_like(x, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if channels_last:
        planes, e = x.permute(0, 2, 3, 1).reshape(n, 1, h, w * c), c  # a view: rows of W pixels x C values
    else:
        x = x.contiguous()
        planes, e = x, 1
    k = planes.shape[1]
    row = (w + 2 * px) * e  # values in a padded row
    plane = (h + 2 * py) * row  # values in a padded (N, K) plane
    # First output row of sample n: its window starts (py - dy, px - dx) pixels into its padded image.
    corner = py * row + px * e
    start = torch.arange(corner, corner + n * k * plane, k * plane, device=x.device) - torch.add(
        dx * e if e != 1 else dx, dy, alpha=row)
    inner = torch.arange(0, h * row, row, device=x.device)  # row h of the window
    if k > 1:
        inner = torch.arange(0, k * plane, plane, device=x.device).unsqueeze(1) + inner  # (K, H)
    index = (start.view(n, 1) + inner.view(1, -1)).view(-1)  # (N * K * H,) first padded value of each row
    length = w * e
    sample_bytes = k * plane * x.element_size()
    per = n if n * sample_bytes <= _CHUNK_ABOVE else max(1, _CHUNK_BYTES // sample_bytes)
    if per >= n or x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
        padded = _pad(planes, x, channels_last, mode, px, py)
        windows = padded.as_strided((padded.numel() - length + 1, length), (1, 1))  # every run of `length` values
        out = windows.index_select(0, index)
    else:
        out = torch.empty((n * k * h, length), dtype=x.dtype)
        if mode == "zeros":  # one zero-bordered buffer: each chunk only overwrites its interior
            buffer = planes.new_zeros((per, k, h + 2 * py, row))
        for s in range(0, n, per):
            t = min(n, s + per)
            if mode == "zeros":
                padded = buffer[:t - s]
                padded[:, :, py:py + h, px * e:px * e + length].copy_(planes[s:t])
            else:
                padded = _pad(planes[s:t], x[s:t], channels_last, mode, px, py)
            windows = padded.as_strided((padded.numel() - length + 1, length), (1, 1))
            torch.index_select(windows, 0, index[s * k * h:t * k * h] - s * k * plane, out=out[s * k * h:t * k * h])
    if channels_last:
        return out.view(n, h, w, c).permute(0, 3, 1, 2)
    return out.view(n, c, h, w)


@dataclass(frozen=True)
class ShiftParams:
    """Per-sample shifts drawn by `RandomShift`, to replay on another batch or view.

    Args:
        dx: (N,) long tensor, the horizontal shift of each sample (positive: right).
        dy: (N,) long tensor, the vertical shift of each sample (positive: down).
        _reach: internal: `(max |dx|, max |dy|)` guaranteed by the drawing `RandomShift`, which lets a
            replay skip the range check's read-back (`None` for parameters made by hand: they are checked).

    Examples:
        >>> params = RandomShift(2, generator=torch.Generator().manual_seed(0)).sample(3)
        >>> params.dx.shape, params.dx.dtype
        (torch.Size([3]), torch.int64)
        >>> by_hand = ShiftParams(torch.tensor([1, 0]), torch.tensor([0, -1]))
        >>> RandomShift(1, mode="circular")(torch.randn(2, 3, 8, 8), by_hand).shape
        torch.Size([2, 3, 8, 8])
    """

    dx: Tensor
    dy: Tensor
    # (max |dx|, max |dy|) guaranteed by the drawing RandomShift: lets a replay skip the range check's read-back
    _reach: Optional[tuple[int, int]] = field(default=None, compare=False, repr=False)

    def to(self, device: torch.device) -> "ShiftParams":
        return ShiftParams(self.dx.to(device), self.dy.to(device), self._reach)


class RandomShift(nn.Module):
    """Shift each image by its own random integer offset in `[-max_shift, max_shift]` (per axis).

    Args:
        max_shift: largest shift per axis in pixels, an int or `(max_dx, max_dy)`; smaller than the images.
        mode: what fills the uncovered border (`zeros`, `circular`, `reflect`, `replicate`; see
            `shift`).
        p: probability that a sample is shifted at all.
        generator: the `torch.Generator` the shifts are drawn from (on its device; the shift runs on the input's
            device). Without one, each draw comes from `augshift.seeding.process_generator` on the input's
            device: reproducible from `torch.manual_seed`, and different on every process of a data-parallel run
            even when all are seeded alike.

    `forward(x, params=None)` shifts `x` (N, C, H, W) and returns the same shape; it replays `params` (a
    `ShiftParams`) when given, else draws new ones (`sample`). The last parameters used are in
    `last_params`.

    Examples:
        >>> augment = RandomShift(2, mode="circular", generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(4, 3, 8, 8)
        >>> y = augment(x)
        >>> params = augment.last_params
        >>> bool(params.dx.abs().max() <= 2 and params.dy.abs().max() <= 2)
        True
        >>> torch.equal(augment(x, params), y)  # replayed
        True
        >>> torch.equal(y[0], torch.roll(x[0], (int(params.dy[0]), int(params.dx[0])), (-2, -1)))
        True
    """

    def __init__(
        self,
        max_shift: MaxShift = 4,
        *,
        mode: str = "zeros",
        p: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        max_dx, max_dy = check_max_shift(max_shift)
        check_mode(mode)
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"p must be a probability in [0, 1], got {p}")
        self.max_dx, self.max_dy, self.mode, self.p, self.generator = max_dx, max_dy, mode, p, generator
        self.last_params: Optional[ShiftParams] = None

    def extra_repr(self) -> str:
        return f"max_shift=({self.max_dx}, {self.max_dy}), mode={self.mode!r}, p={self.p}"

    def check_size(self, height: int, width: int) -> None:
        if self.max_dx >= width or self.max_dy >= height:
            raise UsageError(
                f"max_shift=({self.max_dx}, {self.max_dy}) must be smaller than the image "
                f"(W={width}, H={height})"
            )

    def sample(self, n: int, device: Optional[torch.device] = None) -> ShiftParams:
        """Draw shifts for `n` samples; returns `ShiftParams` on `device`.

        Examples:
            >>> params = RandomShift((1, 3), generator=torch.Generator().manual_seed(0)).sample(100)
            >>> int(params.dx.abs().max()), int(params.dy.abs().max())  # per axis: max_dx = 1, max_dy = 3
            (1, 3)
        """
        generator = self.generator if self.generator is not None else process_generator(device)
        dx = torch.randint(-self.max_dx, self.max_dx + 1, (n,), generator=generator, device=generator.device)
        dy = torch.randint(-self.max_dy, self.max_dy + 1, (n,), generator=generator, device=generator.device)
        if self.p < 1.0:
            keep = torch.rand(n, generator=generator, device=generator.device) < self.p
            dx, dy = dx * keep, dy * keep
        params = ShiftParams(dx, dy, (self.max_dx, self.max_dy))
        return params.to(device) if device is not None else params

    def forward(self, x: Tensor, params: Optional[ShiftParams] = None) -> Tensor:
        """Shift `x` (N, C, H, W); draws new parameters unless `params` is given.

        Examples:
            >>> x = torch.arange(1., 10.).view(1, 1, 3, 3)
            >>> RandomShift(1)(x, ShiftParams(torch.tensor([1]), torch.tensor([0])))[0, 0].tolist()  # right, zeros in
            [[0.0, 1.0, 2.0], [0.0, 4.0, 5.0], [0.0, 7.0, 8.0]]
        """
        check_images(x, "x")
        self.check_size(x.shape[-2], x.shape[-1])
        replay = params is not None
        if params is None:
            params = self.sample(x.shape[0], x.device)
        self.last_params = params
        n, _, h, w = x.shape
        reach = params._reach
        if reach is None or reach[0] >= w or reach[1] >= h:
            return shift(x, params.dx, params.dy, self.mode)
        # Drawn by a RandomShift: the range is known on the host, so no read-back (no CUDA synchronisation).
        dx = _as_shift_tensor(params.dx, n, "dx", x.device)
        dy = _as_shift_tensor(params.dy, n, "dy", x.device)
        if replay:  # a no-op for drawn shifts; keeps tensors edited in place inside the padded images
            dx, dy = dx.clamp(-reach[0], reach[0]), dy.clamp(-reach[1], reach[1])
        return _shift(x, dx, dy, self.mode, reach[0], reach[1])


def fractional_shift(x: Tensor, dx: Union[float, Tensor], dy: Union[float, Tensor]) -> Tensor:
    """Shift each image of `x` circularly by its own real-valued `(dx, dy)` pixels: the band-limited shift.

    The image's 2-D DFT is multiplied by `exp(-2 pi i (kx dx / W + ky dy / H))` (`torch.fft.rfft2` /
    `irfft2`): ideal (sinc) interpolation of the periodic image, the sub-pixel shift of Michaeli et al.'s alias-free
    convnets. It is exact for band-limited images (no energy at the Nyquist frequency: the half-cycle component is
    what a real image cannot shift by a fraction), and integer offsets equal `torch.roll` up to float rounding.
    Positive `dx` moves content right, positive `dy` down, as `shift` does.

    Args:
        x: floating (N, C, H, W).
        dx: horizontal offsets: a float, or (N,) floating / integer tensor (one offset per image).
        dy: vertical offsets, the same way.

    Returns:
        (N, C, H, W), `x`'s dtype (computed in float32 at least).

    Examples:
        >>> x = torch.arange(16.).view(1, 1, 4, 4)
        >>> torch.allclose(fractional_shift(x, 1.0, -2.0), torch.roll(x, (-2, 1), (-2, -1)), atol=1e-4)
        True
    """
    check_images(x, "x", floating=True)
    n, _, h, w = x.shape
    offsets = []
    for value, name in ((dx, "dx"), (dy, "dy")):
        value = torch.as_tensor(value, dtype=torch.float64, device=x.device)
        if value.dim() == 0:
            value = value.expand(n)
        if value.shape != (n,):
            raise ValueError(f"{name} must be a number or a length-N tensor with N={n}, got shape {tuple(value.shape)}")
        if not bool(torch.isfinite(value).all()):
            raise UsageError(f"{name} must be finite offsets in pixels, got {value[~torch.isfinite(value)][0].item()}")
        offsets.append(value)
    dx_t, dy_t = offsets
    work = torch.promote_types(x.dtype, torch.float32)
    spectrum = torch.fft.rfft2(x.to(work))
    ky = torch.fft.fftfreq(h, device=x.device, dtype=torch.float64)
    kx = torch.fft.rfftfreq(w, device=x.device, dtype=torch.float64)
    turns = ky.view(1, h, 1) * dy_t.view(n, 1, 1) + kx.view(1, 1, -1) * dx_t.view(n, 1, 1)
    turns = turns - turns.round()  # whole turns change nothing: keeps the phase accurate for large offsets
    phase = torch.polar(torch.ones_like(turns), -2 * torch.pi * turns).to(spectrum.dtype)
    return torch.fft.irfft2(spectrum * phase.unsqueeze(1), s=(h, w)).to(x.dtype)
