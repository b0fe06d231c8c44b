"""Batched per-sample integer shifts of image batches.

``shift(x, dx, dy, mode)`` moves the content of every image of an ``(N, C, H, W)`` batch by its own
``(dx, dy)`` in one gather (no Python loop over samples). Positive ``dx`` moves content right, positive
``dy`` down, exactly as ``torch.roll(x, (dy, dx), (-2, -1))`` does; the modes differ only in what fills
the uncovered border.

``RandomShift`` draws the per-sample shifts (``sample``) separately from applying them (``forward``), so
the same parameters can be replayed on another batch or view (kornia style).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor, nn

SHIFT_MODES = ("zeros", "circular", "reflect", "replicate")
ShiftAmount = Union[int, Tensor]


def check_images(x: Tensor, name: str = "images", *, floating: bool = False) -> None:
    """Raise a clear error unless ``x`` is a non-empty ``(N, C, H, W)`` tensor (floating if asked)."""
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


def check_mode(mode: str) -> None:
    if mode not in SHIFT_MODES:
        raise ValueError(f"unknown shift mode {mode!r}; supported modes: {', '.join(SHIFT_MODES)}")


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
    """Map (possibly out-of-range) source coordinates into ``[0, size)`` for the border ``mode``."""
    if mode == "circular":
        return target.remainder(size)
    if mode == "reflect":  # like F.pad(mode="reflect"): the edge pixel is not repeated
        if size == 1:
            return torch.zeros_like(target)
        period = 2 * (size - 1)
        folded = target.remainder(period)
        return torch.where(folded >= size, period - folded, folded)
    return target.clamp(0, size - 1)  # replicate, and zeros (masked afterwards)


def shift(x: Tensor, dx: ShiftAmount, dy: ShiftAmount, mode: str = "zeros") -> Tensor:
    """Shift each image of ``x`` (N, C, H, W) by its own integer ``(dx, dy)``.

    ``dx``/``dy`` are ints or length-N integer tensors with ``|dx| < W`` and ``|dy| < H``. Modes:
    ``circular`` (wrap-around, equals ``torch.roll``), ``zeros`` (zero border: pad-and-crop),
    ``reflect`` and ``replicate``. Returns a tensor of the same shape, dtype, device and memory format.
    """
    check_images(x, "x")
    check_mode(mode)
    n, _, h, w = x.shape
    dx_t = _as_shift_tensor(dx, n, "dx", x.device)
    dy_t = _as_shift_tensor(dy, n, "dy", x.device)
    if bool((dx_t.abs() >= w).any()) or bool((dy_t.abs() >= h).any()):
        raise ValueError(
            f"shift larger than the image: need |dx| < W={w} and |dy| < H={h}, "
            f"got dx in [{int(dx_t.min())}, {int(dx_t.max())}], dy in [{int(dy_t.min())}, {int(dy_t.max())}]"
        )
    rows = torch.arange(h, device=x.device).unsqueeze(0) - dy_t.unsqueeze(1)  # (N, H) source rows
    cols = torch.arange(w, device=x.device).unsqueeze(0) - dx_t.unsqueeze(1)  # (N, W) source cols
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    src_rows = _source_index(rows, h, mode).unsqueeze(2)  # (N, H, 1)
    src_cols = _source_index(cols, w, mode).unsqueeze(1)  # (N, 1, W)
    out = x.permute(0, 2, 3, 1)[batch, src_rows, src_cols]  # (N, H, W, C)
    if mode == "zeros":
        inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
        out = torch.where(inside.unsqueeze(-1), out, torch.zeros((), dtype=out.dtype, device=out.device))
    out = out.permute(0, 3, 1, 2)  # channels_last strides: (N, C, H, W) view
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return out.contiguous(memory_format=torch.channels_last)
    return out.contiguous()


@dataclass(frozen=True)
class ShiftParams:
    """Per-sample shifts drawn by :class:`RandomShift`: ``dx``, ``dy`` are (N,) long tensors."""

    dx: Tensor
    dy: Tensor

    def to(self, device: torch.device) -> "ShiftParams":
        return ShiftParams(self.dx.to(device), self.dy.to(device))


class RandomShift(nn.Module):
    """Shift each image by its own random integer offset in ``[-max_shift, max_shift]`` (per axis).

    ``max_shift``: int or ``(max_dx, max_dy)``. ``p``: probability that a sample is shifted at all.
    ``generator``: an explicit ``torch.Generator`` makes the draws reproducible; draws happen on the
    generator's device (the input's device when there is none) and the shift runs on the input's device.
    ``forward(x, params=None)`` replays ``params`` when given; the last drawn parameters are in
    ``last_params``.
    """

    def __init__(
        self,
        max_shift: Union[int, tuple[int, int]] = 4,
        *,
        mode: str = "zeros",
        p: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ) -> None:
        super().__init__()
        max_dx, max_dy = (max_shift, max_shift) if isinstance(max_shift, int) else tuple(max_shift)
        if isinstance(max_dx, bool) or not isinstance(max_dx, int) or not isinstance(max_dy, int):
            raise TypeError(f"max_shift must be an int or a pair of ints, got {max_shift!r}")
        if max_dx < 0 or max_dy < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p}")
        check_mode(mode)
        self.max_dx, self.max_dy, self.mode, self.p, self.generator = max_dx, max_dy, mode, p, generator
        self.last_params: Optional[ShiftParams] = None

    def extra_repr(self) -> str:
        return f"max_shift=({self.max_dx}, {self.max_dy}), mode={self.mode!r}, p={self.p}"

    def check_size(self, height: int, width: int) -> None:
        if self.max_dx >= width or self.max_dy >= height:
            raise ValueError(
                f"max_shift=({self.max_dx}, {self.max_dy}) must be smaller than the image "
                f"(W={width}, H={height})"
            )

    def sample(self, n: int, device: Optional[torch.device] = None) -> ShiftParams:
        """Draw shifts for ``n`` samples; returns :class:`ShiftParams` on ``device``."""
        draw_device = self.generator.device if self.generator is not None else device
        dx = torch.randint(-self.max_dx, self.max_dx + 1, (n,), generator=self.generator, device=draw_device)
        dy = torch.randint(-self.max_dy, self.max_dy + 1, (n,), generator=self.generator, device=draw_device)
        if self.p < 1.0:
            keep = torch.rand(n, generator=self.generator, device=draw_device) < self.p
            dx, dy = dx * keep, dy * keep
        params = ShiftParams(dx, dy)
        return params.to(device) if device is not None else params

    def forward(self, x: Tensor, params: Optional[ShiftParams] = None) -> Tensor:
        """Shift ``x`` (N, C, H, W); draws new parameters unless ``params`` is given."""
        check_images(x, "x")
        self.check_size(x.shape[-2], x.shape[-1])
        if params is None:
            params = self.sample(x.shape[0], x.device)
        self.last_params = params
        return shift(x, params.dx, params.dy, self.mode)
