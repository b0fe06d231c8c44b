import sys

import pytest
import torch
import torch.nn.functional as F

from augshift import RandomShift, shift
from augshift.shifts import ShiftParams
from augshift.shifts import fractional_shift
from augshift.config import SHIFT_MODES
from helpers import pad_and_slice, roll_each

shift_module = sys.modules["augshift.shifts"]  # the module (``augshift.shift`` the attribute is the function)


@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("dx,dy", [(0, 0), (1, 0), (0, -1), (3, -2), (-4, 4), (2, 5)])
def test_shift_matches_pad_and_slice(mode, dx, dy):
    x = torch.randn(2, 3, 7, 9)
    torch.testing.assert_close(shift(x, dx, dy, mode), pad_and_slice(x, dx, dy, mode), rtol=0, atol=0)


@pytest.mark.parametrize("dx,dy", [(1, 2), (-3, 0), (6, -4), (-8, 5)])
def test_circular_equals_roll(dx, dy):
    x = torch.randn(3, 2, 6, 9)
    assert torch.equal(shift(x, dx, dy, "circular"), torch.roll(x, (dy, dx), (-2, -1)))


def test_positive_dx_moves_content_right_and_dy_down():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1
    out = shift(x, 1, 2, "zeros")
    assert out[0, 0, 4, 3] == 1 and out.sum() == 1


@pytest.mark.parametrize("mode", SHIFT_MODES)
def test_per_sample_shifts_equal_one_by_one(mode):
    x = torch.randn(5, 3, 8, 8)
    dx = torch.tensor([0, 1, -2, 3, -7])
    dy = torch.tensor([2, -1, 0, -3, 7])
    batched = shift(x, dx, dy, mode)
    for i in range(5):
        assert torch.equal(batched[i:i + 1], shift(x[i:i + 1], int(dx[i]), int(dy[i]), mode))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.uint8])
def test_dtypes_preserved_and_exact(dtype):
    x = (torch.rand(2, 3, 6, 6) * 100).to(dtype)
    out = shift(x, torch.tensor([1, -2]), torch.tensor([-1, 3]), "circular")
    assert out.dtype == dtype
    assert torch.equal(out[0], torch.roll(x[0], (-1, 1), (-2, -1)))


def test_channels_last_preserved():
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    out = shift(x, 2, -1, "reflect")
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, pad_and_slice(x.contiguous(), 2, -1, "reflect"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.randn(4, 3, 16, 16)
    dx, dy = torch.tensor([1, -2, 3, 0]), torch.tensor([0, 4, -1, 2])
    assert torch.equal(shift(x.cuda(), dx.cuda(), dy.cuda(), "zeros").cpu(), shift(x, dx, dy, "zeros"))


def test_non_square_and_tiny_images():
    x = torch.randn(2, 1, 1, 5)
    for mode in ("reflect", "replicate", "zeros"):
        assert torch.equal(shift(x, 2, 0, mode), pad_and_slice(x, 2, 0, mode))
    assert torch.equal(shift(x, -3, 0, "circular"), torch.roll(x, -3, -1))


@pytest.mark.parametrize(
    "args,error,match",
    [
        ((torch.randn(3, 8, 8), 1, 1), ValueError, "shape \\(N, C, H, W\\)"),
        ((torch.randn(0, 3, 8, 8), 1, 1), ValueError, "empty batch"),
        ((torch.randn(2, 3, 8, 8), 8, 0), ValueError, "larger than the image"),
        ((torch.randn(2, 3, 8, 8), 0, -8), ValueError, "larger than the image"),
        ((torch.randn(2, 3, 8, 8), torch.tensor([1, 2, 3]), 0), ValueError, "length-N"),
        ((torch.randn(2, 3, 8, 8), 1.5, 0), TypeError, "int"),
        ((torch.randn(2, 3, 8, 8), torch.tensor([0.5, 1.0]), 0), TypeError, "integers"),
    ],
)
def test_shift_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        shift(*args)


def test_unknown_mode():
    with pytest.raises(ValueError, match="supported: zeros, circular, reflect, replicate"):
        shift(torch.randn(1, 1, 4, 4), 1, 1, "wrap")


def test_random_shift_range_replay_and_generator():
    aug = RandomShift(3, mode="zeros", generator=torch.Generator().manual_seed(0))
    x = torch.randn(4000, 1, 8, 8)
    out = aug(x)
    p = aug.last_params
    assert p.dx.min() == -3 and p.dx.max() == 3 and p.dy.min() == -3 and p.dy.max() == 3
    assert torch.equal(out, shift(x, p.dx, p.dy, "zeros"))
    assert torch.equal(aug(x, params=p), out)  # replay
    again = RandomShift(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again(x), out)  # same seed, same draws
    assert (p.dx != p.dx[0]).any()  # per-sample, not one shift for the batch


def test_random_shift_probability_and_pairs():
    aug = RandomShift((2, 0), p=0.0, generator=torch.Generator().manual_seed(1))
    params = aug.sample(100)
    assert (params.dx == 0).all() and (params.dy == 0).all()
    aug = RandomShift((2, 0), p=1.0, generator=torch.Generator().manual_seed(1))
    params = aug.sample(1000)
    assert (params.dy == 0).all() and set(params.dx.tolist()) == {-2, -1, 0, 1, 2}


def test_random_shift_bad_config():
    with pytest.raises(ValueError, match=">= 0"):
        RandomShift(-1)
    with pytest.raises(ValueError, match="probability"):
        RandomShift(2, p=1.5)
    with pytest.raises(ValueError, match="smaller than the image"):
        RandomShift(8)(torch.randn(2, 3, 8, 8))


# ------------------------------------------------------------------------------------ independent references

def zeros_reference(x: torch.Tensor, dx, dy) -> torch.Tensor:
    """Zeros: ``torch.roll`` of each image, then the wrapped-around rows and columns set to zero by hand."""
    out = roll_each(x, dx, dy)
    h, w = x.shape[-2:]
    for i in range(x.shape[0]):
        sx, sy = int(dx[i]), int(dy[i])
        if sy > 0:
            out[i, :, :sy] = 0
        elif sy < 0:
            out[i, :, h + sy:] = 0
        if sx > 0:
            out[i, :, :, :sx] = 0
        elif sx < 0:
            out[i, :, :, w + sx:] = 0
    return out


def reference(x: torch.Tensor, dx, dy, mode: str) -> torch.Tensor:
    """Circular: torch.roll; zeros: torch.roll with the wrapped border zeroed by hand; reflect / replicate: F.pad of
    each image by its own shift, sliced."""
    if mode == "circular":
        return roll_each(x, dx, dy)
    if mode == "zeros":
        return zeros_reference(x, dx, dy)
    return pad_and_slice(x, dx, dy, mode)


def extreme_shifts(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample shifts covering +-(W-1), +-(H-1) and 0, the rest random in range."""
    g = torch.Generator().manual_seed(seed)
    dx = torch.randint(-(w - 1), w, (n,), generator=g)
    dy = torch.randint(-(h - 1), h, (n,), generator=g)
    corners = [(w - 1, h - 1), (-(w - 1), -(h - 1)), (0, 0), (w - 1, -(h - 1))]
    for i, (cx, cy) in enumerate(corners[:n]):
        dx[i], dy[i] = cx, cy
    return dx, dy


def make_images(shape, dtype, memory_format, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) * 250
    x = x.round().to(dtype) if dtype == torch.uint8 else x.to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if memory_format == "channels_last" else x


def assert_layout(out: torch.Tensor, x: torch.Tensor) -> None:
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    if channels_last:
        assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    else:
        assert out.is_contiguous()


@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("shape", [(6, 3, 7, 5), (1, 2, 7, 5), (4, 4, 5, 9)])
def test_every_mode_matches_independent_reference(mode, memory_format, dtype, shape):
    x = make_images(shape, dtype, memory_format)
    n, _, h, w = shape
    dx, dy = extreme_shifts(n, h, w, seed=sum(shape))
    out = shift(x, dx, dy, mode)
    assert_layout(out, x)
    assert torch.equal(out, reference(x.contiguous(), dx, dy, mode))


@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_int_shifts_up_to_size_minus_one(mode, memory_format):
    x = make_images((2, 3, 7, 5), torch.float32, memory_format)
    for dx, dy in [(4, 6), (-4, -6), (4, -6), (0, 6), (-4, 0)]:
        out = shift(x, dx, dy, mode)
        assert_layout(out, x)
        assert torch.equal(out, reference(x.contiguous(), [dx] * 2, [dy] * 2, mode)), (dx, dy)


@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("dtype", [torch.bool, torch.float16, torch.bfloat16, torch.int32, torch.float64])
def test_other_dtypes_match_the_independent_reference(mode, dtype):
    """Every dtype against the references computed in float64 (the values are whole numbers: exact in each)."""
    x = make_images((3, 2, 6, 7), torch.float32, "contiguous")
    x = (x > 125) if dtype == torch.bool else x.to(dtype)
    dx, dy = torch.tensor([6, -3, 0]), torch.tensor([-5, 2, 1])
    out = shift(x, dx, dy, mode)
    assert_layout(out, x)
    assert torch.equal(out, reference(x.double(), dx, dy, mode).to(dtype))


@pytest.mark.parametrize("mode", SHIFT_MODES)
def test_non_contiguous_input_gives_contiguous_output(mode):
    base = make_images((3, 3, 8, 12), torch.float32, "contiguous")
    x = base[:, :, 1:7, 2:11:2]  # neither contiguous nor channels-last
    dx, dy = torch.tensor([4, -2, 0]), torch.tensor([-5, 3, 1])
    out = shift(x, dx, dy, mode)
    assert out.is_contiguous()
    assert torch.equal(out, reference(x.contiguous(), dx, dy, mode))


@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_chunked_cpu_path_equals_one_shot(mode, memory_format, monkeypatch):
    x = make_images((7, 3, 9, 6), torch.uint8, memory_format)
    dx, dy = extreme_shifts(7, 9, 6, seed=3)
    one_shot = shift(x, dx, dy, mode)
    monkeypatch.setattr(shift_module, "_CHUNK_ABOVE", 0)
    for chunk in (1, 2000):  # one sample per chunk; several samples per chunk with a ragged last one
        monkeypatch.setattr(shift_module, "_CHUNK_BYTES", chunk)
        out = shift(x, dx, dy, mode)
        assert_layout(out, x)
        assert torch.equal(out, one_shot)
    assert torch.equal(one_shot, reference(x.contiguous(), dx, dy, mode))


def test_batch_above_the_chunk_size_keeps_its_gradient(monkeypatch):
    """A batch that would be chunked but needs a gradient is gathered in one shot (the chunked gather writes into
    a buffer autograd cannot follow): its gradient is still the adjoint shift."""
    monkeypatch.setattr(shift_module, "_CHUNK_ABOVE", 0)
    monkeypatch.setattr(shift_module, "_CHUNK_BYTES", 1)
    x = torch.randn(3, 2, 5, 6, requires_grad=True)
    g = torch.randn(3, 2, 5, 6)
    dx, dy = torch.tensor([2, -5, 0]), torch.tensor([-4, 1, 3])
    (shift(x, dx, dy, "circular") * g).sum().backward()
    assert torch.equal(x.grad, torch.stack([torch.roll(g[i], (-int(dy[i]), -int(dx[i])), (-2, -1)) for i in range(3)]))


def test_chunks_of_three_samples_with_a_ragged_last_chunk_of_two(monkeypatch):
    """Zero borders reuse one padded buffer for every chunk: the last chunk (2 of 3 samples) uses its first rows."""
    x = torch.randn(5, 2, 6, 5)
    dx, dy = torch.tensor([2, -1, 0, 1, -2]), torch.tensor([-3, 0, 2, 1, 3])
    sample_bytes = 2 * (6 + 2 * 3) * (5 + 2 * 2) * x.element_size()  # (C, H + 2 max|dy|, W + 2 max|dx|) values
    monkeypatch.setattr(shift_module, "_CHUNK_ABOVE", 0)
    monkeypatch.setattr(shift_module, "_CHUNK_BYTES", 3 * sample_bytes)
    expected = torch.cat([pad_and_slice(x[i:i + 1], int(dx[i]), int(dy[i]), "zeros") for i in range(5)])
    assert torch.equal(shift(x, dx, dy, "zeros"), expected)


def test_pad_fallback_when_kernel_lacks_dtype(monkeypatch):
    x = make_images((3, 2, 6, 5), torch.float32, "channels_last")
    dx, dy = torch.tensor([4, -3, 0]), torch.tensor([-5, 2, 1])
    expected = {mode: shift(x, dx, dy, mode) for mode in ("reflect", "replicate", "circular")}
    real_pad = F.pad

    def pad_without_kernels(input, pad, mode="constant", value=None):
        if mode != "constant":
            raise NotImplementedError(f'"{mode}_pad2d" not implemented for {input.dtype}')
        return real_pad(input, pad, mode=mode, value=value)

    monkeypatch.setattr(shift_module.F, "pad", pad_without_kernels)
    for mode in ("reflect", "replicate", "circular"):
        for images in (x, x.contiguous()):
            out = shift(images, dx, dy, mode)
            assert_layout(out, images)
            assert torch.equal(out, expected[mode])


def test_empty_channels():
    x = torch.randn(2, 0, 4, 4)
    out = shift(x, 1, -1, "reflect")
    assert out.shape == (2, 0, 4, 4) and out.stride() == x.stride()  # contiguous like its input


def test_gradient_is_the_adjoint_shift():
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    g = torch.randn(2, 3, 5, 6)
    dx, dy = torch.tensor([2, -5]), torch.tensor([-4, 1])
    (shift(x, dx, dy, "circular") * g).sum().backward()
    assert torch.equal(x.grad, shift(g, -dx, -dy, "circular"))


def test_random_shift_replay_skips_the_read_back(monkeypatch):
    """Parameters drawn by a RandomShift carry their range: forward needs no range check (no CUDA sync)."""
    aug = RandomShift((3, 2), mode="reflect", generator=torch.Generator().manual_seed(0))
    x = make_images((16, 3, 8, 8), torch.float32, "channels_last")
    params = aug.sample(16)
    expected = shift(x, params.dx, params.dy, "reflect")

    def no_read_back(*args):
        raise AssertionError("range check called")

    monkeypatch.setattr(shift_module, "_reach", no_read_back)
    out = aug(x, params)
    assert_layout(out, x)
    assert torch.equal(out, expected)
    assert torch.equal(aug(x, params.to(torch.device("cpu"))), expected)  # .to keeps the range
    aug(x)  # self-drawn: no check either
    with pytest.raises(AssertionError, match="range check"):
        aug(x, ShiftParams(params.dx, params.dy))  # hand-made parameters are checked


def test_random_shift_replay_of_wider_params_is_checked():
    wide = RandomShift(6, generator=torch.Generator().manual_seed(0)).sample(200)
    narrow = RandomShift(2)
    with pytest.raises(ValueError, match="larger than the image"):
        narrow(torch.randn(200, 1, 5, 5), wide)  # |shift| up to 6 on 5 px images: rejected, not wrapped
    x = torch.randn(200, 1, 8, 8)
    assert torch.equal(narrow(x, wide), shift(x, wide.dx, wide.dy, "zeros"))


def test_random_shift_wrong_length_params():
    params = RandomShift(2).sample(3)
    with pytest.raises(ValueError, match="length-N"):
        RandomShift(2)(torch.randn(4, 1, 8, 8), params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.float16, torch.bool])
def test_cuda_every_mode_matches_cpu(mode, memory_format, dtype):
    x = make_images((5, 3, 7, 9), torch.float32, memory_format)
    x = (x > 125) if dtype == torch.bool else x.to(dtype)
    dx, dy = extreme_shifts(5, 7, 9, seed=1)
    expected = shift(x, dx, dy, mode)
    for sx, sy in [(dx, dy), (dx.cuda(), dy.cuda())]:
        out = shift(x.cuda(), sx, sy, mode)
        assert_layout(out, x.cuda())
        assert torch.equal(out.cpu(), expected)
    aug = RandomShift((8, 6), mode=mode)
    params = aug.sample(5, torch.device("cuda"))
    assert torch.equal(aug(x.cuda(), params).cpu(), shift(x, params.dx.cpu(), params.dy.cpu(), mode))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_cuda_random_shift_does_not_synchronize(memory_format):
    x = make_images((8, 3, 16, 16), torch.uint8, memory_format).cuda()
    aug = RandomShift(4, mode="reflect")
    params = aug.sample(8, x.device)
    aug(x), aug(x, params)  # warm-up (lazy initialisation may synchronise)
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        aug(x)
        aug(x, params)
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, -3), (5, 2), (-7, -1), (12, 9)])
def test_fractional_shift_by_whole_pixels_equals_roll(dx, dy):
    x = torch.randn(3, 2, 10, 12)
    assert torch.allclose(fractional_shift(x, float(dx), float(dy)), torch.roll(x, (dy, dx), (-2, -1)), atol=1e-5)


def band_limited(n: int = 2, size: int = 16) -> torch.Tensor:
    """Random images with no energy at the Nyquist frequencies (the components a real image cannot half-shift)."""
    spectrum = torch.fft.rfft2(torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)))
    spectrum[..., size // 2, :] = 0
    spectrum[..., -1] = 0
    return torch.fft.irfft2(spectrum, s=(size, size))


def test_fractional_half_pixel_twice_equals_one_pixel_on_band_limited_images():
    x = band_limited()
    half = fractional_shift(fractional_shift(x, 0.5, -0.5), 0.5, -0.5)
    assert torch.allclose(half, torch.roll(x, (-1, 1), (-2, -1)), atol=1e-5)
    assert not torch.allclose(fractional_shift(x, 0.5, 0.0), x, atol=1e-2)  # a half-pixel shift does move the image


def test_fractional_shift_per_sample_offsets_and_inverse():
    x = band_limited(3)
    dx, dy = torch.tensor([0.25, -1.5, 3.0]), torch.tensor([0.0, 0.75, -2.25])
    moved = fractional_shift(x, dx, dy)
    for i in range(3):
        assert torch.allclose(moved[i:i + 1], fractional_shift(x[i:i + 1], float(dx[i]), float(dy[i])), atol=1e-6)
    assert torch.allclose(fractional_shift(moved, -dx, -dy), x, atol=1e-5)
    with pytest.raises(ValueError, match="length-N"):
        fractional_shift(x, torch.zeros(2), 0.0)


@pytest.mark.parametrize("max_shift, fits, shape", [((4, 1), (3, 1), (1, 1, 8, 4)), ((1, 4), (1, 3), (1, 1, 4, 8))])
def test_random_shift_refuses_a_max_shift_as_large_as_either_side(max_shift, fits, shape):
    """Each axis on its own: max_dx against the width, max_dy against the height (non-square images)."""
    with pytest.raises(ValueError, match=f"max_shift=\\({max_shift[0]}, {max_shift[1]}\\) must be smaller than the "
                                         f"image \\(W={shape[3]}, H={shape[2]}\\)"):
        RandomShift(max_shift)(torch.randn(shape))
    assert RandomShift(fits)(torch.randn(shape)).shape == shape  # one pixel less fits


def test_random_shift_names_its_input_in_errors():
    with pytest.raises(ValueError, match="^x must have shape \\(N, C, H, W\\)"):
        RandomShift(1)(torch.randn(8, 8))


@pytest.mark.parametrize("shape, params", [
    ((2, 1, 8, 3), ShiftParams(torch.tensor([3, 0]), torch.tensor([0, 0]), (3, 0))),  # dx as wide as the image
    ((2, 1, 3, 8), ShiftParams(torch.tensor([0, 0]), torch.tensor([0, 3]), (0, 3))),  # dy as tall as the image
])
def test_random_shift_replay_too_large_on_one_axis_is_refused(shape, params):
    with pytest.raises(ValueError, match="shift larger than the image"):
        RandomShift(1)(torch.randn(shape), params)


def test_random_shift_replay_clamps_shifts_edited_in_place_to_their_drawn_range():
    aug = RandomShift((1, 2), generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 1, 7, 7)
    params = aug.sample(2)
    params.dx.copy_(torch.tensor([-3, 3]))  # beyond the drawn range (1, 2): replayed as the nearest drawn shift
    params.dy.copy_(torch.tensor([4, -4]))
    expected = torch.stack([pad_and_slice(x[i:i + 1], dx, dy, "zeros")[0] for i, (dx, dy) in
                            enumerate([(-1, 2), (1, -2)])])
    assert torch.equal(aug(x, params), expected)


def test_random_shift_replays_hand_made_params_with_its_mode():
    x = torch.randn(2, 3, 6, 6)
    params = ShiftParams(torch.tensor([2, -1]), torch.tensor([0, 3]))
    out = RandomShift(2, mode="circular")(x, params)
    for i in range(2):
        assert torch.equal(out[i], torch.roll(x[i], (int(params.dy[i]), int(params.dx[i])), (-2, -1)))


@pytest.mark.parametrize("params, name", [
    (ShiftParams(torch.tensor([0, 0, 0]), torch.tensor([0, 0]), (1, 1)), "dx"),
    (ShiftParams(torch.tensor([0, 0]), torch.tensor([0, 0, 0]), (1, 1)), "dy"),
])
def test_random_shift_replay_of_wrong_length_names_the_offsets(params, name):
    with pytest.raises(ValueError, match=f"^{name} must be an int or a length-N tensor with N=2, got shape \\(3,\\)"):
        RandomShift(1)(torch.randn(2, 1, 8, 8), params)


def test_shift_params_to_moves_both_offsets_and_keeps_the_range():
    params = RandomShift((1, 2)).sample(3).to(torch.device("meta"))
    assert params.dx.device.type == params.dy.device.type == "meta" and params._reach == (1, 2)


@pytest.mark.parametrize("size", [1, 2, 5])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_source_index_maps_equal_pad(mode, size):
    """The index maps of the pad fallback against F.pad of the coordinates themselves (padding by up to the size
    - 1, what F.pad's reflect allows; size 1 reflects onto its only pixel)."""
    pad = max(size - 1, 1) if mode != "reflect" else size - 1
    coordinates = torch.arange(float(size)).view(1, 1, 1, size)
    expected = F.pad(coordinates, (pad, pad, 0, 0), mode=mode).view(-1).long() if pad else coordinates.view(-1).long()
    assert torch.equal(shift_module._source_index(torch.arange(-pad, size + pad), size, mode), expected)
    if mode == "reflect" and size == 1:
        assert torch.equal(shift_module._source_index(torch.arange(-3, 4), 1, mode), torch.zeros(7, dtype=torch.long))


def test_fractional_shift_far_offsets_keep_whole_pixels_exact():
    """Offsets of 2**25 pixels and more, given as floats: read in float64 (float32 would round 2**25 + 3 to
    2**25 + 4) with float64 frequencies (1/6 and 1/7 in float32 are off by a turn at such offsets), they equal the
    roll by the offset modulo the size."""
    x = torch.randn(2, 3, 6, 7)  # an odd width: the inverse transform is told the size
    dx, dy = 2 ** 25 + 3, -(2 ** 25) - 2
    assert torch.allclose(fractional_shift(x, float(dx), float(dy)), torch.roll(x, (dy % 6, dx % 7), (-2, -1)),
                          atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fractional_shift_of_half_precision_images_is_computed_in_float32(dtype):
    x = torch.randn(2, 3, 6, 6)
    out = fractional_shift(x.to(dtype), 2.0, -1.0)
    assert out.dtype == dtype
    torch.testing.assert_close(out, torch.roll(x, (-1, 2), (-2, -1)).to(dtype))


def test_fractional_shift_errors_name_the_input():
    with pytest.raises(TypeError, match="^x must be a floating tensor"):
        fractional_shift(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 1.0, 0.0)
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="^dx must be finite offsets in pixels, got nan$"):
        fractional_shift(x, torch.tensor([1.0, float("nan")]), 0.0)
    with pytest.raises(ValueError, match="^dy must be finite offsets in pixels, got -inf$"):
        fractional_shift(x, 0.0, torch.tensor([float("-inf"), 2.0]))


def test_shift_errors_name_the_argument_at_fault():
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(TypeError, match="^x must be a torch.Tensor of shape \\(N, C, H, W\\), got list$"):
        shift([[1.0]], 0, 0)
    with pytest.raises(TypeError, match="^dx must be an int or a length-N integer tensor, got float$"):
        shift(x, 1.5, 0)
    with pytest.raises(TypeError, match="^dy must be an int or a length-N integer tensor, got float$"):
        shift(x, 0, 1.5)
    with pytest.raises(ValueError, match="^dy must be an int or a length-N tensor with N=2, got shape \\(3,\\)$"):
        shift(x, 0, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="^images must have shape \\(N, C, H, W\\), got 2-D"):
        shift_module.check_images(torch.zeros(2, 2))  # the default name
    with pytest.raises(TypeError, match="convert uint8 images with x.float\\(\\) / 255 and normalise them first$"):
        shift_module.check_images(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), floating=True)


def test_zero_dim_tensor_shifts_apply_to_every_image():
    x = torch.randn(3, 2, 5, 6)
    assert torch.equal(shift(x, torch.tensor(2), torch.tensor(-1)), pad_and_slice(x, 2, -1, "zeros"))


def test_random_shift_defaults_and_draws_from_its_generator():
    """The default reach is 4 px; shifts are drawn from the generator, dx then dy (then, with p < 1, which samples
    keep them), and nothing else is drawn from it with p = 1: a second draw continues the same stream."""
    augment = RandomShift(generator=torch.Generator().manual_seed(0))
    assert augment.last_params is None
    reference = torch.Generator().manual_seed(0)
    for _ in range(2):
        params = augment.sample(500)
        assert torch.equal(params.dx, torch.randint(-4, 5, (500,), generator=reference))
        assert torch.equal(params.dy, torch.randint(-4, 5, (500,), generator=reference))
    sometimes = RandomShift(2, p=0.5, generator=torch.Generator().manual_seed(1)).sample(50)
    reference = torch.Generator().manual_seed(1)
    dx, dy = (torch.randint(-2, 3, (50,), generator=reference) for _ in range(2))
    keep = torch.rand(50, generator=reference) < 0.5
    assert torch.equal(sometimes.dx, dx * keep) and torch.equal(sometimes.dy, dy * keep)

