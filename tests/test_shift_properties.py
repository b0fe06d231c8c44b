"""Properties of the shift family (augshift.shifts, augshift.views, augshift.protocols) over drawn shapes, dtypes,
memory formats, border modes and offsets: every shift within bounds equals the independent references (torch.roll,
a hand pad-and-slice with F.pad, slicing for crops), and every offset outside them is refused."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augshift import RandomShift, fractional_shift, shift
from augshift.config import SHIFT_MODES
from augshift.errors import UsageError
from augshift.protocols import PROTOCOLS, pair_offsets
from augshift.views import CropProtocol, Geometry, ShiftProtocol, crop, hashed_offsets, offsets_to
from helpers import pad_and_slice, roll_each

FAST = settings(max_examples=40, deadline=None, database=None)  # fast; no example database in the checkout
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int32, torch.bool)


def reference(x: torch.Tensor, dx, dy, mode: str) -> torch.Tensor:
    """torch.roll for circular, F.pad + slicing for the others; computed in float64 (whole numbers: exact)."""
    wide = x.double()
    out = roll_each(wide, dx, dy) if mode == "circular" else pad_and_slice(wide, dx, dy, mode)
    return out.to(x.dtype)


@st.composite
def batches(draw, max_side: int = 7):
    """``(x, dx, dy)``: an image batch of any small shape, dtype and memory format, and per-image offsets (or one
    int) within ``|dx| < W``, ``|dy| < H``."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    values = torch.randint(0, 200, (n, c, h, w), generator=torch.Generator().manual_seed(seed))
    x = (values > 100) if dtype == torch.bool else values.to(dtype)
    if draw(st.booleans()):
        x = x.contiguous(memory_format=torch.channels_last)
    if draw(st.booleans()):  # one int for the batch
        return x, draw(st.integers(-(w - 1), w - 1)), draw(st.integers(-(h - 1), h - 1))
    dx = torch.tensor(draw(st.lists(st.integers(-(w - 1), w - 1), min_size=n, max_size=n)))
    dy = torch.tensor(draw(st.lists(st.integers(-(h - 1), h - 1), min_size=n, max_size=n)))
    return x, dx, dy


@FAST
@given(batch=batches(), mode=st.sampled_from(SHIFT_MODES))
def test_any_shift_within_bounds_equals_the_independent_reference(batch, mode):
    x, dx, dy = batch
    out = shift(x, dx, dy, mode)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, reference(x, dx, dy, mode))


@FAST
@given(h=st.integers(1, 6), w=st.integers(1, 6), beyond=st.integers(0, 5), axis=st.sampled_from("xy"),
       sign=st.sampled_from((-1, 1)), mode=st.sampled_from(SHIFT_MODES), as_tensor=st.booleans())
def test_any_shift_outside_the_image_is_refused(h, w, beyond, axis, sign, mode, as_tensor):
    x = torch.zeros(2, 1, h, w)
    far = sign * ((w if axis == "x" else h) + beyond)
    dx, dy = (far, 0) if axis == "x" else (0, far)
    if as_tensor:
        dx, dy = torch.tensor([0, dx]), torch.tensor([0, dy])
    with pytest.raises(ValueError, match="shift larger than the image"):
        shift(x, dx, dy, mode)


@FAST
@given(mode=st.text(alphabet="abcdeflmnoprstuz_", min_size=1, max_size=8).filter(lambda m: m not in SHIFT_MODES))
def test_any_other_mode_is_refused(mode):
    with pytest.raises(ValueError, match="supported: zeros, circular, reflect, replicate"):
        shift(torch.zeros(1, 1, 3, 3), 1, 0, mode)


@FAST
@given(h=st.integers(2, 7), w=st.integers(2, 7), data=st.data(), mode=st.sampled_from(SHIFT_MODES),
       seed=st.integers(0, 2**16))
def test_random_shift_draws_within_max_shift_and_applies_the_reference(h, w, data, mode, seed):
    max_dx, max_dy = data.draw(st.integers(0, w - 1)), data.draw(st.integers(0, h - 1))
    augment = RandomShift((max_dx, max_dy), mode=mode, generator=torch.Generator().manual_seed(seed))
    x = torch.rand(5, 2, h, w)
    out = augment(x)
    p = augment.last_params
    assert int(p.dx.abs().max()) <= max_dx and int(p.dy.abs().max()) <= max_dy
    assert torch.equal(out, reference(x, p.dx, p.dy, mode).float())


@FAST
@given(side=st.integers(1, 6), extra=st.integers(0, 4), axis=st.sampled_from("xy"))
def test_random_shift_as_large_as_the_image_is_refused(side, extra, axis):
    max_shift = (side + extra, 0) if axis == "x" else (0, side + extra)
    with pytest.raises(UsageError, match="must be smaller than the image"):
        RandomShift(max_shift)(torch.zeros(1, 1, side, side))


@FAST
@given(h=st.integers(1, 8), w=st.integers(1, 8), dx=st.integers(-20, 20), dy=st.integers(-20, 20))
def test_fractional_shift_by_whole_pixels_is_torch_roll(h, w, dx, dy):
    x = torch.rand(2, 2, h, w, generator=torch.Generator().manual_seed(h * 31 + w))
    torch.testing.assert_close(fractional_shift(x, float(dx), float(dy)), torch.roll(x, (dy, dx), (-2, -1)),
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- views, protocols

@FAST
@given(side=st.integers(2, 9), data=st.data(), mode=st.sampled_from(SHIFT_MODES), seed=st.integers(0, 50),
       first=st.integers(0, 10_000))
def test_shift_protocol_views_are_the_reference_at_offsets_within_reach(side, data, mode, seed, first):
    reach = data.draw(st.integers(0, side - 1))
    protocol = ShiftProtocol("drawn", salt=900, mode=mode)
    geometry = Geometry(side, side, max_shift=reach, mode="zeros")
    protocol.check(geometry)  # fits: no refusal
    indices = torch.arange(first, first + 4)
    for dx, dy in protocol.offsets(indices, geometry, seed=seed):
        assert int(dx.abs().max()) <= reach and int(dy.abs().max()) <= reach
        x = torch.rand(4, 2, side, side)
        assert torch.equal(protocol.view(x, x, dx, dy, geometry), reference(x, dx, dy, mode).float())


@FAST
@given(side=st.integers(1, 9), beyond=st.integers(0, 4), named_reach=st.booleans())
def test_a_shift_protocol_reaching_the_image_side_is_refused(side, beyond, named_reach):
    protocol = ShiftProtocol("drawn", salt=900, reach=side + beyond if named_reach else None)
    with pytest.raises(UsageError, match="do not fit images"):
        protocol.check(Geometry(side, side, max_shift=side + beyond, mode="zeros"))


@FAST
@given(crop_size=st.integers(1, 6), larger=st.integers(2, 5), seed=st.integers(0, 50), first=st.integers(0, 10_000))
def test_crop_views_are_slices_at_offsets_inside_the_larger_image(crop_size, larger, seed, first):
    size = crop_size + larger
    geometry = Geometry.of(size, size, max_shift=0, mode="zeros", crop_size=crop_size)
    protocol = CropProtocol("drawn", salt=900)
    protocol.check(geometry)
    images, indices = torch.rand(4, 2, size, size), torch.arange(first, first + 4)
    for left, top in protocol.offsets(indices, geometry, seed=seed):
        assert 0 <= int(left.min()) and int(left.max()) < larger and 0 <= int(top.min()) and int(top.max()) < larger
        expected = torch.stack([image[:, t:t + crop_size, l:l + crop_size]
                                for image, l, t in zip(images, left.tolist(), top.tolist())])
        assert torch.equal(protocol.view(images, None, left, top, geometry), expected)
        assert torch.equal(crop(images, left, top, geometry), expected)


@FAST
@given(crop_size=st.integers(2, 8), short=st.integers(1, 7), long=st.integers(0, 4), tall=st.booleans())
def test_images_smaller_than_the_crop_are_refused(crop_size, short, long, tall):
    short = min(short, crop_size - 1)  # one side below the crop, the other any size from the crop up
    h, w = (crop_size + long, short) if tall else (short, crop_size + long)
    with pytest.raises(UsageError, match="smaller than crop_size"):
        Geometry.of(h, w, max_shift=0, mode="zeros", crop_size=crop_size)


@FAST
@given(count=st.integers(1, 100), salt=st.integers(0, 999), first=st.integers(0, 2**40))
def test_hashed_offsets_lie_in_range(count, salt, first):
    values = hashed_offsets(torch.arange(first, first + 64), salt, count)
    assert int(values.min()) >= 0 and int(values.max()) < count


@FAST
@given(reach=st.integers(0, 200))
def test_offsets_to_is_a_symmetric_grid_with_every_small_offset_and_its_reach(reach):
    grid = offsets_to(reach)
    assert list(grid) == sorted(set(grid)) and grid == tuple(-d for d in reversed(grid))
    assert set(range(-min(reach, 4), min(reach, 4) + 1)) <= set(grid) and grid[-1] == reach


@FAST
@given(name=st.sampled_from([name for name in PROTOCOLS if name != "crop"]), seed=st.integers(0, 20),
       indices=st.lists(st.integers(0, 10**6), min_size=2, max_size=12, unique=True), side=st.integers(9, 20),
       max_shift=st.integers(0, 8), split=st.integers(1, 11))
def test_a_samples_offsets_depend_on_its_index_alone_not_on_its_batch(name, seed, indices, side, max_shift, split):
    """The registry's promise: offsets keyed by the protocol's salt, the seed and the dataset index only."""
    geometry = Geometry(side, side, max_shift=max_shift, mode="zeros")
    indices = torch.tensor(indices)
    whole = pair_offsets(name, indices, geometry, seed)
    split = min(split, len(indices) - 1)
    parts = [pair_offsets(name, part, geometry, seed) for part in (indices[split:], indices[:split])]
    for view in range(2):
        for axis in range(2):
            assert torch.equal(torch.cat([parts[1][view][axis], parts[0][view][axis]]), whole[view][axis])
            reach = PROTOCOLS[name].reach if isinstance(PROTOCOLS[name], ShiftProtocol) else None
            values = whole[view][axis]
            if reach == "full":
                assert int(values.min()) >= 0 and int(values.max()) < side
            else:
                limit = max_shift if reach is None else reach
                assert float(values.abs().max()) <= limit
