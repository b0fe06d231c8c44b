import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from helpers import free_port, init_gloo

from augshift.metrics import (
    PROTOCOL_FAMILY, ShiftConsistency, agreement_counts, consistency_from_predictions, curve_offsets_to,
    evaluate_shift_consistency, hashed_offsets, hashed_shifts, proportion_ci,
)
from augshift.errors import UsageError


class LeftRight(nn.Module):
    """Hand-checkable classifier: class 1 when the image's mass is in the right half, else 0."""

    def forward(self, x):
        w = x.shape[-1]
        return torch.stack([x[..., : w // 2].sum(dim=(1, 2, 3)), x[..., w // 2:].sum(dim=(1, 2, 3))], dim=1)


def dot_images(cols, size=8):
    x = torch.zeros(len(cols), 1, size, size)
    for i, c in enumerate(cols):
        x[i, 0, size // 2, c] = 1.0
    return x


def hand_prediction(col, dx, size=8):
    """LeftRight's prediction for a dot at column ``col`` shifted by ``dx`` with zero padding."""
    new = col + dx
    if not 0 <= new < size:
        return 0  # the dot left the image: both halves sum to 0, argmax picks class 0
    return int(new >= size // 2)


def test_random_protocol_against_hand_count():
    cols = [0, 2, 3, 4, 5, 7, 1, 6, 3, 4]
    targets = torch.tensor([hand_prediction(c, 0) for c in cols])
    targets[0] = 1  # one wrong label
    metric = ShiftConsistency(max_shift=3, mode="zeros", protocols=("random",), seed=5)
    indices = torch.arange(len(cols))
    metric.update(LeftRight(), dot_images(cols), targets, indices)
    report = metric.compute()
    agree = 0
    for view_salt in [(5000, 5001, 5002, 5003)]:
        dxa = hashed_shifts(indices, view_salt[0], 3)
        dxb = hashed_shifts(indices, view_salt[2], 3)
        for i, c in enumerate(cols):
            agree += hand_prediction(c, int(dxa[i])) == hand_prediction(c, int(dxb[i]))
    assert report.samples == 10 and report.correct == 9
    assert report.agree["random"] == agree
    assert 0 < agree < 10  # the test data exercises both outcomes


def test_curve_against_hand_count():
    cols = [0, 3, 4, 7, 5]
    metric = ShiftConsistency(max_shift=1, protocols=(), curve_max_shift=2)
    metric.update(LeftRight(), dot_images(cols), torch.zeros(5, dtype=torch.long))
    report = metric.compute()
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            expected = sum(hand_prediction(c, dx) == hand_prediction(c, 0) for c in cols)
            correct = sum(hand_prediction(c, dx) == 0 for c in cols)
            assert report.curve_agree[dy + 2, dx + 2] == expected
            assert report.curve_correct[dy + 2, dx + 2] == correct
    assert report.to_dict()["curve_consistency"][2][2] == 100.0


def test_circular_protocol_keeps_content():
    # with torch.roll the dot never leaves the image: prediction flips only when it crosses the middle
    metric = ShiftConsistency(max_shift=1, protocols=("circular",), seed=0)
    cols = [0, 1, 2, 5, 6]  # dots at least 2 px from the middle boundary (cols 3|4) and... col 0 wraps to 7
    indices = torch.arange(5)
    metric.update(LeftRight(), dot_images(cols), torch.zeros(5, dtype=torch.long), indices)
    dxa, dxb = hashed_shifts(indices, 0, 1), hashed_shifts(indices, 2, 1)
    expected = sum(int((c + int(a)) % 8 >= 4) == int((c + int(b)) % 8 >= 4) for c, a, b in zip(cols, dxa, dxb))
    assert metric.compute().agree["circular"] == expected


def hand_prediction_2d(row, col, dx, dy, size, circular):
    """LeftRight's prediction for a dot at (row, col) moved by (dx, dy): rolled, or zero-padded (lost outside)."""
    if circular:
        return int((col + dx) % size >= size // 2)
    if not (0 <= row + dy < size and 0 <= col + dx < size):
        return 0
    return int(col + dx >= size // 2)


def test_protocol_family_against_hand_count():
    """Every protocol of the family against a hand count: a dot at a random place in a 20 px image, two views per
    protocol (zero-padded +-3 / +-8 / +-16 px, rolled +-3 px, rolled by any offset), LeftRight's prediction by hand."""
    size, n, seed, max_shift = 20, 60, 2, 3
    g = torch.Generator().manual_seed(0)
    rows, cols = torch.randint(0, size, (n,), generator=g).tolist(), torch.randint(0, size, (n,), generator=g).tolist()
    images = torch.zeros(n, 1, size, size)
    for i, (r, c) in enumerate(zip(rows, cols)):
        images[i, 0, r, c] = 1.0
    indices = torch.arange(100, 100 + n)
    metric = ShiftConsistency(max_shift=max_shift, protocols=PROTOCOL_FAMILY, seed=seed)
    metric.update(LeftRight(), images, torch.zeros(n, dtype=torch.long), indices)
    report = metric.compute()
    ranges = {"random": max_shift, "circular": max_shift, "random8": 8, "random16": 16, "circular_full": None}
    for position, protocol in enumerate(("random", "circular", "random8", "random16", "circular_full")):
        salt = seed * 1000 + position * 10  # the protocol's place in PROTOCOLS keys its shifts
        if ranges[protocol] is None:
            views = [(hashed_offsets(indices, salt + v, size), hashed_offsets(indices, salt + v + 1, size)) for v in (0, 2)]
        else:
            views = [(hashed_shifts(indices, salt + v, ranges[protocol]), hashed_shifts(indices, salt + v + 1, ranges[protocol]))
                     for v in (0, 2)]
        circular = protocol.startswith("circular")
        expected = sum(
            hand_prediction_2d(rows[i], cols[i], int(views[0][0][i]), int(views[0][1][i]), size, circular)
            == hand_prediction_2d(rows[i], cols[i], int(views[1][0][i]), int(views[1][1][i]), size, circular)
            for i in range(n))
        assert report.agree[protocol] == expected, protocol
        assert 0 < expected < n, protocol  # the data exercises both outcomes
    # harsher protocols are harsher on this model; the whole-image roll moves dots across the middle most often
    assert report.agree["random16"] < report.agree["random"] and report.agree["circular_full"] < report.agree["circular"]


def test_default_protocols_keep_their_shifts():
    """Adding protocols changes no number of ``random`` / ``circular``: a protocol's shifts are its own."""
    x, y = torch.rand(30, 1, 20, 20), torch.zeros(30, dtype=torch.long)
    small = ShiftConsistency(max_shift=3, seed=1)
    family = ShiftConsistency(max_shift=3, seed=1, protocols=PROTOCOL_FAMILY[::-1])
    for metric in (small, family):
        metric.update(LeftRight(), x, y)
    a, b = small.compute(), family.compute()
    assert a.agree == {k: b.agree[k] for k in ("random", "circular")} and set(b.agree) == set(PROTOCOL_FAMILY)


def test_circular_full_offsets_cover_the_whole_image():
    offsets = hashed_offsets(torch.arange(4000), 7, 32)
    counts = torch.bincount(offsets, minlength=32)
    assert offsets.min() == 0 and offsets.max() == 31 and counts.min() > 4000 / 32 * 0.7


def test_sparse_curve_offsets_against_hand_count():
    offsets = curve_offsets_to(16)
    assert offsets == (-16, -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12, 16)
    size, cols = 20, [0, 5, 9, 10, 14, 19]
    x = torch.zeros(len(cols), 1, size, size)
    for i, c in enumerate(cols):
        x[i, 0, size // 2, c] = 1.0
    metric = ShiftConsistency(protocols=(), curve_offsets=offsets)
    metric.update(LeftRight(), x, torch.ones(len(cols), dtype=torch.long))
    report = metric.compute()
    for a, dy in enumerate(offsets):
        for b, dx in enumerate(offsets):
            shifted = [hand_prediction_2d(size // 2, c, dx, dy, size, False) for c in cols]
            unshifted = [hand_prediction_2d(size // 2, c, 0, 0, size, False) for c in cols]
            assert report.curve_agree[a, b] == sum(s == u for s, u in zip(shifted, unshifted))
            assert report.curve_correct[a, b] == sum(shifted)
    assert report.to_dict()["curve_offsets"] == list(offsets)


def test_hashed_shifts_cover_range_and_are_deterministic():
    idx = torch.arange(5000)
    s = hashed_shifts(idx, 3, 4)
    assert s.min() == -4 and s.max() == 4 and torch.equal(s, hashed_shifts(idx, 3, 4))
    counts = torch.bincount(s + 4)
    assert counts.min() > 5000 / 9 * 0.8  # roughly uniform
    assert not torch.equal(s, hashed_shifts(idx, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_evaluation_equals_cpu():
    """Same hashed shifts and counts on CUDA as on CPU (LeftRight's sums are exact on both)."""
    cols = torch.randint(0, 8, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    images, targets = dot_images(cols), torch.tensor([hand_prediction(c, 0) for c in cols])
    batches = [(images[i:i + 64], targets[i:i + 64], torch.arange(i, min(i + 64, 300))) for i in range(0, 300, 64)]
    reports = [evaluate_shift_consistency(LeftRight(), batches, device=torch.device(d), max_shift=3, curve_max_shift=2)
               for d in ("cpu", "cuda")]
    assert reports[0].samples == reports[1].samples == 300
    assert (reports[0].correct, reports[0].agree) == (reports[1].correct, reports[1].agree)
    assert torch.equal(reports[0].curve_agree.cpu(), reports[1].curve_agree.cpu())
    idx = torch.arange(1000)
    assert torch.equal(hashed_shifts(idx.cuda(), 5, 4).cpu(), hashed_shifts(idx, 5, 4))


def test_agreement_helpers_and_ci():
    a, b = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0])
    assert agreement_counts(a, b, torch.tensor([1, 2, 0, 0])) == (4, 2, 2)
    assert consistency_from_predictions(a, b) == 50.0
    low, high = proportion_ci(50, 100)  # textbook Wilson interval for 50/100
    assert low == pytest.approx(40.38, abs=0.01) and high == pytest.approx(59.62, abs=0.01)
    with pytest.raises(ValueError, match="empty"):
        consistency_from_predictions(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))


def test_bad_input_messages():
    metric = ShiftConsistency(max_shift=8)
    with pytest.raises(ValueError, match="do not fit"):
        metric.update(LeftRight(), dot_images([1]), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown protocol"):
        ShiftConsistency(protocols=("zhang",))
    with pytest.raises(TypeError, match="floating"):
        ShiftConsistency().update(LeftRight(), torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(UsageError, match="indices must be the 2 samples"):  # not a message about dx
        ShiftConsistency(max_shift=1).update(LeftRight(), dot_images([1, 2]), torch.zeros(2, dtype=torch.long),
                                             torch.arange(3))
    with pytest.raises(UsageError, match="do not fit"):  # random16 needs images of more than 16 px
        ShiftConsistency(max_shift=1, protocols=PROTOCOL_FAMILY).update(LeftRight(), dot_images([1]),
                                                                        torch.zeros(1, dtype=torch.long))
    with pytest.raises(UsageError, match="no samples were evaluated"):
        evaluate_shift_consistency(LeftRight(), [], device=torch.device("cpu")).accuracy


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(37, 3, 16, 16, generator=g), torch.randint(0, 5, (37,), generator=g)


def _evaluate(indices, x, y):
    metric = ShiftConsistency(max_shift=3, curve_max_shift=1, chunk_size=7)
    for batch in indices.split(5):  # uneven last batch on purpose
        metric.update(_model(), x[batch], y[batch], batch)
    return metric


def _worker(rank, world, port, queue):
    init_gloo(rank, world, port)
    torch.set_num_threads(1)
    x, y = _data()
    report = _evaluate(torch.arange(rank, len(x), world), x, y).compute()  # disjoint shards, no padding
    if rank == 0:
        queue.put(report.to_dict())
    dist.destroy_process_group()


def test_two_process_gloo_equals_single_process():
    x, y = _data()
    single = _evaluate(torch.arange(len(x)), x, y).compute(sync=False).to_dict()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_worker, args=(2, free_port(), queue), nprocs=2, join=True)
    assert queue.get(timeout=10) == single
    assert 0 < single["consistency_random"] < 100 or single["accuracy"] < 100


def test_non_finite_logits_are_refused_not_counted_as_consistent():
    from augshift import ShiftConsistency

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="non-finite logits"):
        ShiftConsistency(max_shift=2).update(model, torch.randn(5, 3, 8, 8), torch.zeros(5, dtype=torch.long))


def test_wilson_interval_holds_the_estimate_at_the_edges():
    for k, n in ((0, 10_000), (10_000, 10_000), (9_999, 10_000), (1, 3)):
        low, high = proportion_ci(k, n)
        assert low <= 100.0 * k / n <= high
    assert proportion_ci(10_000, 10_000)[1] == 100.0 and proportion_ci(0, 7)[0] == 0.0
