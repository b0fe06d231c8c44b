"""The shift-consistency metric against independent references: hand counts on a model whose predictions are known,
the views it evaluates against torch.roll / zero-padded slicing / Zhang's crop loop, and properties of its offsets."""
import re
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from helpers import LeftRight, Recorder, dot_images, free_port, init_gloo, pad_and_slice, random_dots

from augshift.distributed import gather_objects
from augshift.errors import UsageError
from augshift.intervals import proportion_ci
from augshift.metrics import ShiftConsistency, evaluate_shift_consistency
from augshift.report import agreement_counts, consistency_from_predictions
from augshift.protocols import PROTOCOL_FAMILY, Geometry, pair_offsets, pair_protocols, worst_grid
from augshift.views import offsets_to
from augshift.shifts import fractional_shift


def hand_prediction(row, col, dx, dy, size, circular):
    """LeftRight's prediction for a dot at (row, col) moved by (dx, dy): rolled, or zero-padded (lost outside)."""
    if circular:
        return int((col + dx) % size >= size // 2)
    if not (0 <= row + dy < size and 0 <= col + dx < size):
        return 0  # the dot left the image: both halves sum to 0, argmax picks class 0
    return int(col + dx >= size // 2)


def views_of(protocol, images, indices, **options):
    """The inputs a metric evaluating only ``protocol`` feeds the model, as (reference view, view A, view B)."""
    model = Recorder()
    ShiftConsistency(protocols=(protocol,), chunk_size=10_000, **options).update(
        model, images, torch.zeros(len(images), dtype=torch.long), indices)
    return torch.cat(model.seen).split(len(images))


@pytest.mark.parametrize("protocol", ["random", "random8", "random16"])
def test_zero_padded_protocols_against_a_hand_count(protocol):
    size, n, seed = 40, 80, 2
    rows, cols = random_dots(n, size)
    indices = torch.arange(100, 100 + n)
    metric = ShiftConsistency(max_shift=3, protocols=(protocol,), seed=seed)
    metric.update(LeftRight(), dot_images(rows, cols, size), torch.zeros(n, dtype=torch.long), indices)
    (dxa, dya), (dxb, dyb) = metric.pair_offsets(protocol, indices, size, size)
    expected = sum(hand_prediction(rows[i], cols[i], int(dxa[i]), int(dya[i]), size, False)
                   == hand_prediction(rows[i], cols[i], int(dxb[i]), int(dyb[i]), size, False) for i in range(n))
    assert metric.compute().agree[protocol] == expected
    assert 0 < expected < n  # the data exercises both outcomes


@pytest.mark.parametrize("protocol", ["circular", "circular_full"])
def test_circular_protocols_against_a_hand_count_with_their_own_shifts(protocol):
    size, n = 20, 80
    rows, cols = random_dots(n, size, seed=1)
    indices = torch.arange(n)
    metric = ShiftConsistency(max_shift=3, protocols=(protocol,), seed=4)
    metric.update(LeftRight(), dot_images(rows, cols, size), torch.zeros(n, dtype=torch.long), indices)
    (dxa, dya), (dxb, dyb) = metric.pair_offsets(protocol, indices, size, size)
    expected = sum(hand_prediction(rows[i], cols[i], int(dxa[i]), int(dya[i]), size, True)
                   == hand_prediction(rows[i], cols[i], int(dxb[i]), int(dyb[i]), size, True) for i in range(n))
    assert metric.compute().agree[protocol] == expected
    assert 0 < expected < n


@pytest.mark.parametrize("protocol", ["circular", "circular_full"])
def test_circular_views_equal_torch_roll_by_the_reported_shifts(protocol):
    images, indices = torch.rand(6, 3, 12, 12), torch.arange(50, 56)
    base, view_a, view_b = views_of(protocol, images, indices, max_shift=4)
    (dxa, dya), (dxb, dyb) = ShiftConsistency(max_shift=4).pair_offsets(protocol, indices, 12, 12)
    assert torch.equal(base, images)
    for i in range(6):
        assert torch.equal(view_a[i], torch.roll(images[i], (int(dya[i]), int(dxa[i])), (-2, -1)))
        assert torch.equal(view_b[i], torch.roll(images[i], (int(dyb[i]), int(dxb[i])), (-2, -1)))


def test_random_views_equal_independent_zero_padded_shifts():
    images, indices = torch.rand(6, 3, 12, 12), torch.arange(6)
    _, view_a, view_b = views_of("random", images, indices, max_shift=4)
    (dxa, dya), (dxb, dyb) = ShiftConsistency(max_shift=4).pair_offsets("random", indices, 12, 12)
    assert torch.equal(view_a, pad_and_slice(images, dxa, dya))
    assert torch.equal(view_b, pad_and_slice(images, dxb, dyb))


def test_fractional_views_are_band_limited_shifts_by_real_offsets():
    images, indices = torch.rand(5, 2, 10, 10), torch.arange(5)
    _, view_a, _ = views_of("fractional", images, indices, max_shift=2)
    (dxa, dya), _ = ShiftConsistency(max_shift=2).pair_offsets("fractional", indices, 10, 10)
    assert torch.allclose(view_a, fractional_shift(images, dxa, dya), atol=1e-6)
    assert (dxa != dxa.round()).all() and dxa.abs().max() <= 2 and dya.abs().max() <= 2


@pytest.mark.parametrize("protocol", pair_protocols())
def test_the_two_views_differ_as_often_as_their_range_says(protocol):
    """Two independent uniform offsets in a range of k values per axis coincide with probability 1 / k^2."""
    geometry = Geometry(16, 16, max_shift=4, mode="zeros", source=(24, 24))
    (dxa, dya), (dxb, dyb) = pair_offsets(protocol, torch.arange(40_000), geometry, seed=0)
    same = ((dxa == dxb) & (dya == dyb)).double().mean().item()
    # values per axis; real offsets (fractional) never coincide
    chance = {"random": 1 / 9 ** 2, "circular": 1 / 9 ** 2, "random8": 1 / 17 ** 2, "random16": 1 / 33 ** 2,
              "circular_full": 1 / 16 ** 2, "crop": 1 / 8 ** 2, "fractional": 0.0, "reflect": 1 / 9 ** 2}
    assert same == pytest.approx(chance[protocol], abs=0.004)


@pytest.mark.parametrize("protocol, low, high", [("random", -4, 4), ("random8", -8, 8), ("random16", -16, 16),
                                                 ("circular_full", 0, 19), ("crop", 0, 5)])
def test_offsets_cover_exactly_their_range(protocol, low, high):
    geometry = Geometry(20, 20, max_shift=4, mode="zeros", source=(26, 26))
    for axis in pair_offsets(protocol, torch.arange(20_000), geometry, seed=1)[0]:
        counts = torch.bincount(axis - low)
        assert int(axis.min()) == low and int(axis.max()) == high
        assert counts.min() > 20_000 / (high - low + 1) * 0.8  # roughly uniform


def test_a_protocols_shifts_do_not_depend_on_the_others():
    x, y, idx = torch.rand(40, 1, 40, 40), torch.zeros(40, dtype=torch.long), torch.arange(40)
    alone = ShiftConsistency(max_shift=3, seed=1, protocols=("circular",))
    family = ShiftConsistency(max_shift=3, seed=1, protocols=(*reversed(PROTOCOL_FAMILY), "random_worst"))
    for metric in (alone, family):
        metric.update(LeftRight(), x, y, idx)
    assert alone.compute().agree["circular"] == family.compute().agree["circular"]
    geometry = Geometry(40, 40, max_shift=3, mode="zeros")
    offsets = [torch.stack([t for view in pair_offsets(p, idx, geometry, seed=1) for t in view])
               for p in ("random", "circular")]
    assert not torch.equal(offsets[0], offsets[1])  # protocols of the same range draw their own offsets


def test_random_and_circular_keep_the_offsets_of_the_previous_release():
    """The 0.1 release keyed a protocol's offsets by its place (random first, circular second); the offsets it drew
    for these samples must not change (its results stay reproducible)."""
    idx = torch.tensor([0, 1, 2, 3, 10, 99, 1000, 49999])
    released = {
        "random": [[0, 2, -3, -4, 1, -2, 0, 0], [2, 4, -2, 2, 4, 3, 2, 4], [1, -1, 1, 2, 3, -1, 3, 1],
                   [-1, 2, -1, -1, 1, 4, 4, -3]],
        "circular": [[2, 0, 4, 0, 2, -1, 2, -3], [-4, -3, 0, -3, 4, 0, 2, -2], [-4, -4, -1, 1, 3, -2, -4, 0],
                     [3, 1, 1, 2, 4, -3, 2, -3]],
    }
    for protocol, values in released.items():
        (dxa, dya), (dxb, dyb) = pair_offsets(protocol, idx, Geometry(32, 32, 4, "zeros"), seed=0)
        assert [dxa.tolist(), dya.tolist(), dxb.tolist(), dyb.tolist()] == values


def test_worst_case_against_a_hand_count():
    size, n = 20, 60
    rows, cols = random_dots(n, size, seed=3)
    targets = torch.tensor([hand_prediction(r, c, 0, 0, size, False) for r, c in zip(rows, cols)])
    targets[:5] = 1 - targets[:5]  # some wrong labels
    metric = ShiftConsistency(max_shift=2, protocols=("random_worst", "circular_worst"))
    metric.update(LeftRight(), dot_images(rows, cols, size), targets, torch.arange(n))
    report = metric.compute()
    grid = [(dx, dy) for dy in range(-2, 3) for dx in range(-2, 3)]
    for protocol, circular in (("random_worst", False), ("circular_worst", True)):
        preds = [[hand_prediction(rows[i], cols[i], dx, dy, size, circular) for dx, dy in grid] for i in range(n)]
        assert report.agree[protocol] == sum(len(set(p)) == 1 for p in preds)
        assert report.robust[protocol] == sum(all(v == int(targets[i]) for v in p) for i, p in enumerate(preds))
        assert 0 < report.agree[protocol] < n
    assert worst_grid("random", Geometry(size, size, 2, "zeros")) == (-2, -1, 0, 1, 2)


def test_crop_protocol_against_a_hand_reimplementation_of_zhangs_loop():
    """Zhang 2019 (antialiased-cnns, ``validate_shift``): two crops of the model's size from the larger image at
    random offsets in [0, size - crop), compared by argmax; accuracy on the centre crop. Here the offsets are the
    metric's own (per image), the cropping and counting by hand with slicing."""
    big, crop, n = 24, 16, 60
    rows, cols = random_dots(n, big, seed=5)
    images, targets = dot_images(rows, cols, big), torch.ones(n, dtype=torch.long)
    metric = ShiftConsistency(protocols=("crop",), crop_size=crop)
    metric.update(LeftRight(), images, targets, torch.arange(n))
    report = metric.compute()
    (xa, ya), (xb, yb) = metric.pair_offsets("crop", torch.arange(n), big, big)
    model, agree, correct, centre = LeftRight(), 0, 0, (big - crop) // 2
    for i in range(n):
        a = model(images[i:i + 1, :, int(ya[i]):int(ya[i]) + crop, int(xa[i]):int(xa[i]) + crop]).argmax(1)
        b = model(images[i:i + 1, :, int(yb[i]):int(yb[i]) + crop, int(xb[i]):int(xb[i]) + crop]).argmax(1)
        agree += int(a == b)
        correct += int(model(images[i:i + 1, :, centre:centre + crop, centre:centre + crop]).argmax(1) == 1)
    assert (report.agree["crop"], report.correct) == (agree, correct)
    assert 0 < agree < n
    assert int(torch.cat([xa, ya, xb, yb]).max()) == big - crop - 1  # Zhang: randint(32) for 256 -> 224


def test_crop_needs_larger_images_and_a_crop_size():
    with pytest.raises(UsageError, match="needs crop_size"):
        ShiftConsistency(protocols=("crop",))
    with pytest.raises(UsageError, match="larger images"):
        ShiftConsistency(protocols=("crop",), crop_size=16).update(LeftRight(), torch.rand(2, 1, 16, 16),
                                                                   torch.zeros(2, dtype=torch.long))


def test_dense_curve_against_a_hand_count():
    size, cols = 8, [0, 3, 4, 7, 5]
    metric = ShiftConsistency(max_shift=1, protocols=(), curve_max_shift=2)
    metric.update(LeftRight(), dot_images([size // 2] * 5, cols, size), torch.zeros(5, dtype=torch.long))
    report = metric.compute()
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            moved = [hand_prediction(size // 2, c, dx, dy, size, False) for c in cols]
            still = [hand_prediction(size // 2, c, 0, 0, size, False) for c in cols]
            assert report.curve_agree[dy + 2, dx + 2] == sum(m == s for m, s in zip(moved, still))
            assert report.curve_correct[dy + 2, dx + 2] == moved.count(0)


def test_sparse_curve_offsets_against_a_hand_count():
    offsets = offsets_to(16)
    assert offsets == (-16, -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12, 16)
    size, cols = 20, [0, 5, 9, 10, 14, 19]
    metric = ShiftConsistency(protocols=(), curve_offsets=offsets)
    metric.update(LeftRight(), dot_images([size // 2] * 6, cols, size), torch.ones(6, dtype=torch.long))
    report = metric.compute()
    for a, dy in enumerate(offsets):
        for b, dx in enumerate(offsets):
            moved = [hand_prediction(size // 2, c, dx, dy, size, False) for c in cols]
            still = [hand_prediction(size // 2, c, 0, 0, size, False) for c in cols]
            assert report.curve_agree[a, b] == sum(m == s for m, s in zip(moved, still))
            assert report.curve_correct[a, b] == sum(moved)


def test_shared_grid_forwards_are_not_repeated():
    """The curve and the worst case share the dense grid: each offset is evaluated once."""
    model = Recorder()
    metric = ShiftConsistency(max_shift=2, protocols=("random_worst",), curve_max_shift=2)
    metric.update(model, torch.rand(3, 1, 10, 10), torch.zeros(3, dtype=torch.long))
    assert sum(len(x) for x in model.seen) == 3 * 25  # the unshifted view and 24 shifts, once each


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_evaluation_equals_cpu():
    """Same offsets and counts on CUDA as on CPU (LeftRight's sums are exact on both)."""
    rows, cols = random_dots(300, 8)
    images, targets = dot_images(rows, cols, 8), torch.tensor([hand_prediction(r, c, 0, 0, 8, False)
                                                               for r, c in zip(rows, cols)])
    batches = [(images[i:i + 64], targets[i:i + 64], torch.arange(i, min(i + 64, 300))) for i in range(0, 300, 64)]
    options = dict(max_shift=3, curve_max_shift=2, protocols=("random", "circular", "fractional", "random_worst"))
    reports = [evaluate_shift_consistency(LeftRight(), batches, device=torch.device(d), **options) for d in ("cpu", "cuda")]
    assert reports[0].to_dict() == reports[1].to_dict()


def test_agreement_helpers_and_ci():
    a, b = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0])
    assert agreement_counts(a, b, torch.tensor([1, 2, 0, 0])) == (4, 2, 2)
    assert consistency_from_predictions(a, b) == 50.0
    low, high = proportion_ci(50, 100)  # textbook Wilson interval for 50/100
    assert low == pytest.approx(40.38, abs=0.01) and high == pytest.approx(59.62, abs=0.01)
    with pytest.raises(ValueError, match="empty"):
        consistency_from_predictions(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))


def test_bad_input_messages():
    one = dot_images([4], [1], 8)
    with pytest.raises(ValueError, match="do not fit"):
        ShiftConsistency(max_shift=8).update(LeftRight(), one, torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown protocol"):
        ShiftConsistency(protocols=("zhang",))
    with pytest.raises(TypeError, match="floating"):
        ShiftConsistency().update(LeftRight(), torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(UsageError, match="indices must be the 2 samples"):  # not a message about dx
        ShiftConsistency(max_shift=1).update(LeftRight(), dot_images([4, 4], [1, 2], 8), torch.zeros(2, dtype=torch.long),
                                             torch.arange(3))
    with pytest.raises(UsageError, match="do not fit"):  # random16 needs images of more than 16 px
        ShiftConsistency(max_shift=1, protocols=PROTOCOL_FAMILY).update(LeftRight(), one, torch.zeros(1, dtype=torch.long))
    with pytest.raises(UsageError, match="no samples were evaluated"):
        evaluate_shift_consistency(LeftRight(), [], device=torch.device("cpu")).accuracy
    with pytest.raises(UsageError, match=r"other settings than this one's \(max_shift=4, mode=zeros, protocols="):
        ShiftConsistency().add(ShiftConsistency(protocols=("random",)).flags(LeftRight(), one, torch.zeros(1).long()))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(37, 3, 16, 16, generator=g), torch.randint(0, 2, (37,), generator=g)


def _evaluate(indices, x, y):
    metric = ShiftConsistency(max_shift=3, curve_max_shift=1, chunk_size=7,
                              protocols=("random", "circular", "fractional", "circular_worst"))
    for batch in indices.split(5):  # uneven last batch on purpose
        metric.update(LeftRight(), x[batch], y[batch], batch)
    return metric


def _worker(rank, world, port, queue):
    init_gloo(rank, world, port)
    torch.set_num_threads(1)
    x, y = _data()
    results = {"disjoint": _evaluate(torch.arange(rank, len(x), world), x, y).compute().to_dict()}
    # a distributed sampler's padding: the last shard repeats the first samples to even out the shards
    padded = torch.arange(rank, len(x) + 3, world) % len(x)
    results["padded"] = _evaluate(padded, x, y).compute().to_dict()
    # flags gathered by hand across processes, then computed (which gathers again): still each sample once
    metric = ShiftConsistency(max_shift=3, curve_max_shift=1, chunk_size=7,
                              protocols=("random", "circular", "fractional", "circular_worst"))
    for batch in torch.arange(rank, len(x), world).split(5):
        flags = metric.flags(LeftRight(), x[batch], y[batch], batch)
        for part in gather_objects(flags):
            metric.add(part)
    results["gathered"] = metric.compute().to_dict()
    try:
        ShiftConsistency(max_shift=3).update(LeftRight(), x[:4], y[:4])
        results["without indices"] = "counted"
    except UsageError as error:
        results["without indices"] = str(error)
    if rank == 0:
        queue.put(results)
    dist.destroy_process_group()


def test_two_processes_count_each_sample_once_whatever_the_sharding():
    x, y = _data()
    single = _evaluate(torch.arange(len(x)), x, y).compute().to_dict()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_worker, args=(2, free_port(), queue), nprocs=2, join=True)
    results = queue.get(timeout=10)
    assert results.pop("without indices").startswith("2 processes evaluate, but the batch has no dataset indices")
    assert results == {"disjoint": single, "padded": single, "gathered": single}
    assert single["samples"] == len(x)
    assert any(0 < value < 100 for key, value in single.items() if key.startswith("consistency_") and "ci95" not in key)


def test_a_sample_added_twice_counts_once_and_an_index_reused_for_another_image_is_refused():
    x, y = _data()
    single = _evaluate(torch.arange(len(x)), x, y).compute().to_dict()
    twice = _evaluate(torch.cat([torch.arange(len(x)), torch.arange(10)]), x, y).compute().to_dict()
    assert twice == single
    metric = ShiftConsistency(max_shift=3)
    metric.update(LeftRight(), x[:5], y[:5], torch.arange(5))
    metric.update(LeftRight(), x[5:10], y[5:10], torch.arange(5))  # positions in the batch, not dataset indices
    with pytest.raises(UsageError, match=r"dataset index \d+ was given to two different samples \(another fingerprint\)"):
        metric.compute()


@pytest.mark.parametrize("labels, found", [([0, -1, 1, 0], "[-1]"), ([0, 1, 2, 0], "[2]")])
def test_labels_outside_the_models_classes_are_refused(labels, found):
    x, _ = _data()
    with pytest.raises(UsageError, match=re.escape(f"in [0, 2) for this 2-class model, got {found}")):
        ShiftConsistency(max_shift=3).update(LeftRight(), x[:4], torch.tensor(labels), torch.arange(4))


def test_non_finite_logits_are_refused_not_counted_as_consistent():
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


def test_a_report_prints_its_percentages_against_a_hand_count_not_its_per_sample_outcomes():
    """`repr` of what `compute` returns: accuracy and each protocol's consistency in percent, counted here by hand,
    and the sample count; the per-sample outcomes and the curve (tensors of N entries) stay out."""
    size, n = 20, 400
    rows, cols = random_dots(n, size, seed=3)
    targets = torch.tensor([int(c >= size // 2) for c in cols])
    targets[::7] = 1 - targets[::7]  # some wrong, so that accuracy is neither 0 nor 100 %
    indices = torch.arange(n)
    metric = ShiftConsistency(max_shift=3, protocols=("circular", "circular_worst"), seed=4, curve_max_shift=2)
    metric.update(LeftRight(), dot_images(rows, cols, size), targets, indices)
    report = metric.compute()
    (dxa, _), (dxb, _) = metric.pair_offsets("circular", indices, size, size)
    agree = sum(hand_prediction(rows[i], cols[i], int(dxa[i]), 0, size, True)
                == hand_prediction(rows[i], cols[i], int(dxb[i]), 0, size, True) for i in range(n))
    correct = sum(int(cols[i] >= size // 2) == int(targets[i]) for i in range(n))
    assert report.outcomes and report.curve_agree is not None  # there are per-sample outcomes and a curve to leave out
    assert repr(report).startswith(f"ConsistencyReport(accuracy={100 * correct / n:.2f}%, "
                                   f"consistency={{'circular': {100 * agree / n:.2f}%, 'circular_worst': ")
    assert re.fullmatch(r"ConsistencyReport\(accuracy=\d+\.\d\d%, consistency=\{'circular': \d+\.\d\d%, "
                        r"'circular_worst': \d+\.\d\d%\}, worst_accuracy=\{'circular_worst': \d+\.\d\d%\}, "
                        rf"samples={n}\)", repr(report)), repr(report)
    assert str(report) == repr(report) and len(repr(report)) < 200
