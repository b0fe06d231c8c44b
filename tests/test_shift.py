import pytest
import torch
import torch.nn.functional as F

from augshift import RandomShift, shift
from augshift.shift import SHIFT_MODES


def pad_and_crop(x: torch.Tensor, dx: int, dy: int, mode: str) -> torch.Tensor:
    """Independent reference: pad by the shift with F.pad, then crop the window that moves content."""
    h, w = x.shape[-2:]
    pw, ph = abs(dx), abs(dy)
    pad_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}[mode]
    padded = F.pad(x, (pw, pw, ph, ph), mode=pad_mode)
    return padded[..., ph - dy:ph - dy + h, pw - dx:pw - dx + w]


@pytest.mark.parametrize("mode", SHIFT_MODES)
@pytest.mark.parametrize("dx,dy", [(0, 0), (1, 0), (0, -1), (3, -2), (-4, 4), (2, 5)])
def test_shift_matches_pad_and_crop(mode, dx, dy):
    x = torch.randn(2, 3, 7, 9)
    torch.testing.assert_close(shift(x, dx, dy, mode), pad_and_crop(x, dx, dy, mode), rtol=0, atol=0)


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
    assert torch.equal(out, pad_and_crop(x.contiguous(), 2, -1, "reflect"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.randn(4, 3, 16, 16)
    dx, dy = torch.tensor([1, -2, 3, 0]), torch.tensor([0, 4, -1, 2])
    assert torch.equal(shift(x.cuda(), dx.cuda(), dy.cuda(), "zeros").cpu(), shift(x, dx, dy, "zeros"))


def test_non_square_and_tiny_images():
    x = torch.randn(2, 1, 1, 5)
    for mode in ("reflect", "replicate", "zeros"):
        assert torch.equal(shift(x, 2, 0, mode), pad_and_crop(x, 2, 0, mode))
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
    with pytest.raises(ValueError, match="supported modes: zeros, circular, reflect, replicate"):
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
