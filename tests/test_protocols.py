"""Protocols as objects: the reflect protocol against independent references (F.pad + slicing, a hand count), the
registry's refusals, the crop geometry against slicing, and a new kind of view added as one class that the metric
runs unchanged."""
import argparse
import json

import pytest
import torch

from augshift.errors import UsageError
from augshift.metrics import ShiftConsistency
from augshift.protocols import (
    PROTOCOLS, SALT_SPAN, Geometry, add_protocols_argument, check_crop_options, pair_offsets, pair_protocols,
    protocol_list, protocol_names, register_protocol, worst_grid, worst_protocols,
)
from augshift.views import Protocol, ShiftProtocol, centre_crop, crop, hashed_shifts
from helpers import LeftRight, Recorder, dot_images, pad_and_slice, random_dots, registered


def mirrored(t, size):
    """Where a reflect border reads output coordinate ``t`` from, folded by hand (the edge is not repeated)."""
    while not 0 <= t < size:
        t = -t if t < 0 else 2 * (size - 1) - t
    return t


def reflect_prediction(row, col, dx, dy, size):
    """LeftRight's class for a dot at (row, col) shifted by (dx, dy) with a reflect border: the dot shows at every
    output pixel whose mirrored source is (row, col)."""
    rows = sum(mirrored(r - dy, size) == row for r in range(size))
    left = rows * sum(mirrored(c - dx, size) == col for c in range(size // 2))
    right = rows * sum(mirrored(c - dx, size) == col for c in range(size // 2, size))
    return int(right > left)


# ---------------------------------------------------------------------------------------------- reflect


def test_reflect_is_listed_wherever_protocol_names_are():
    assert "reflect" in pair_protocols() and "reflect_worst" in worst_protocols()
    assert {"reflect", "reflect_worst"} <= set(protocol_names())
    assert protocol_list("reflect,reflect_worst") == ("reflect", "reflect_worst")
    parser = argparse.ArgumentParser()
    add_protocols_argument(parser)
    help_text = " ".join(parser.format_help().split())
    assert "reflect," in help_text and "reflect_worst" in help_text
    assert PROTOCOLS["reflect"] == ShiftProtocol("reflect", salt=70, mode="reflect")


def test_reflect_views_equal_independent_reflect_padding_at_the_drawn_offsets():
    images, indices = torch.rand(7, 3, 11, 13), torch.arange(30, 37)
    model = Recorder()
    ShiftConsistency(max_shift=5, protocols=("reflect",), chunk_size=10_000).update(
        model, images, torch.zeros(7, dtype=torch.long), indices)
    base, view_a, view_b = torch.cat(model.seen).split(7)
    (dxa, dya), (dxb, dyb) = pair_offsets("reflect", indices, Geometry(11, 13, max_shift=5, mode="zeros"), seed=0)
    assert torch.equal(base, images)
    assert max(int(t.abs().max()) for t in (dxa, dya, dxb, dyb)) > 1  # the border is exercised
    assert torch.equal(view_a, pad_and_slice(images, dxa, dya, "reflect"))
    assert torch.equal(view_b, pad_and_slice(images, dxb, dyb, "reflect"))


def test_reflect_against_a_hand_count():
    size, n, seed = 12, 120, 3
    rows, cols = random_dots(n, size, seed=6)
    indices = torch.arange(500, 500 + n)
    metric = ShiftConsistency(max_shift=4, protocols=("reflect",), seed=seed)
    metric.update(LeftRight(), dot_images(rows, cols, size), torch.zeros(n, dtype=torch.long), indices)
    (dxa, dya), (dxb, dyb) = metric.pair_offsets("reflect", indices, size, size)
    expected = sum(reflect_prediction(rows[i], cols[i], int(dxa[i]), int(dya[i]), size)
                   == reflect_prediction(rows[i], cols[i], int(dxb[i]), int(dyb[i]), size) for i in range(n))
    assert metric.compute().agree["reflect"] == expected
    assert 0 < expected < n  # the data exercises both outcomes


def test_reflect_worst_against_a_hand_count():
    size, n = 10, 60
    rows, cols = random_dots(n, size, seed=8)
    targets = torch.tensor([reflect_prediction(r, c, 0, 0, size) for r, c in zip(rows, cols)])
    targets[:4] = 1 - targets[:4]
    metric = ShiftConsistency(max_shift=2, protocols=("reflect_worst",))
    metric.update(LeftRight(), dot_images(rows, cols, size), targets, torch.arange(n))
    report = metric.compute()
    preds = [[reflect_prediction(rows[i], cols[i], dx, dy, size) for dy in range(-2, 3) for dx in range(-2, 3)]
             for i in range(n)]
    assert report.agree["reflect_worst"] == sum(len(set(p)) == 1 for p in preds)
    assert report.robust["reflect_worst"] == sum(all(v == int(targets[i]) for v in p) for i, p in enumerate(preds))
    assert 0 < report.agree["reflect_worst"] < n


def test_reflect_offsets_depend_only_on_the_seed_the_index_and_its_salt():
    geometry = Geometry(32, 32, max_shift=4, mode="zeros")
    idx = torch.tensor([0, 1, 2, 3, 10, 99, 1000, 49999])
    (dxa, dya), (dxb, dyb) = pair_offsets("reflect", idx, geometry, seed=0)
    assert [dxa.tolist(), dya.tolist(), dxb.tolist(), dyb.tolist()] == [  # pinned: results stay reproducible
        [1, 1, 3, 1, 3, -3, 3, -2], [1, 2, 2, -3, -2, 1, 0, -4], [-4, 4, -1, 0, -3, 2, 3, 0], [-1, 0, -4, -2, -2, -3, 2, -3]]
    every = torch.stack([t for view in pair_offsets("reflect", torch.arange(200), geometry, seed=3) for t in view])
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    shuffled = torch.stack([t for view in pair_offsets("reflect", order, geometry, seed=3) for t in view])
    assert torch.equal(shuffled, every[:, order])  # not the batch, its order or its other samples
    others = [torch.stack([t for view in pair_offsets(p, torch.arange(200), geometry, seed=3) for t in view])
              for p in ("random", "circular")]
    assert all(not torch.equal(every, o) for o in others)  # a salt of its own, not a copy of a same-range protocol
    again = torch.stack([t for view in pair_offsets("reflect", torch.arange(200), geometry, seed=4) for t in view])
    assert not torch.equal(every, again)
    x, y = torch.rand(40, 1, 20, 20), torch.zeros(40, dtype=torch.long)
    family = (*(p for p in pair_protocols()[::-1] if p != "crop"), "random_worst")  # reflect among the others
    agree = [ShiftConsistency(max_shift=3, seed=1, protocols=protocols).flags(LeftRight(), x, y, torch.arange(40))
             ["agree/reflect"] for protocols in (("reflect",), family)]
    assert torch.equal(agree[0], agree[1])


def test_no_two_protocols_share_a_salt():
    salts = sorted(p.salt for p in PROTOCOLS.values())
    assert all(b - a >= SALT_SPAN for a, b in zip(salts, salts[1:])) and salts[-1] + SALT_SPAN <= 1000


def test_reflect_sizes_and_options_are_checked_with_the_fix():
    with pytest.raises(UsageError, match=r"shifts up to 8 px \(the reflect protocol\) do not fit .*max_shift below 8"):
        ShiftConsistency(max_shift=8, protocols=("reflect",)).update(LeftRight(), torch.rand(2, 1, 8, 8),
                                                                   torch.zeros(2, dtype=torch.long))
    with pytest.raises(UsageError, match="max_shift=0 gives the reflect protocol"):
        ShiftConsistency(max_shift=0, protocols=("reflect",))
    with pytest.raises(UsageError, match=r"\(the random16 protocol\) do not fit .*leave random16 out"):
        ShiftConsistency(max_shift=1, protocols=("random16",)).update(LeftRight(), torch.rand(2, 1, 8, 8),
                                                                      torch.zeros(2, dtype=torch.long))


# ---------------------------------------------------------------------------------------------- the registry


def test_the_registry_refuses_a_taken_name_or_salt():
    with pytest.raises(UsageError, match="a protocol named 'reflect' exists"):
        register_protocol(ShiftProtocol("reflect", salt=900))
    with pytest.raises(UsageError, match="would draw another protocol's offsets"):
        register_protocol(ShiftProtocol("mirror", salt=72, mode="reflect"))  # reflect draws with 70 .. 73
    with pytest.raises(UsageError, match="not end in _worst"):
        register_protocol(ShiftProtocol("mirror_worst", salt=900))
    with pytest.raises(TypeError, match="takes a Protocol"):
        register_protocol("mirror")
    assert "mirror" not in PROTOCOLS


class Roll(Protocol):
    """A new kind, written against the interface alone: ``torch.roll`` by offsets in [-max_shift, max_shift]."""

    @property
    def uses_max_shift(self):
        return True

    def draw(self, indices, salt, geometry):
        return hashed_shifts(indices, salt, geometry.max_shift), hashed_shifts(indices, salt + 1, geometry.max_shift)

    def grid(self, geometry):
        return tuple(range(-geometry.max_shift, geometry.max_shift + 1))

    def view(self, images, base, dx, dy, geometry):
        dx, dy = (torch.as_tensor(v).expand(len(base)).tolist() for v in (dx, dy))
        return torch.stack([torch.roll(b, (y, x), (-2, -1)) for b, x, y in zip(base, dx, dy)])

    def check(self, geometry):
        if geometry.max_shift >= min(geometry.height, geometry.width):
            raise UsageError("too far")


@pytest.fixture
def roll():
    with registered(Roll("roll", salt=500)) as protocol:
        yield protocol


def test_a_new_kind_is_one_class(roll):
    size, n = 16, 80
    rows, cols = random_dots(n, size, seed=2)
    metric = ShiftConsistency(max_shift=3, protocols=protocol_list("roll,roll_worst"), seed=9)
    metric.update(LeftRight(), dot_images(rows, cols, size), torch.ones(n, dtype=torch.long), torch.arange(n))
    report = metric.compute()
    (dxa, _), (dxb, _) = metric.pair_offsets("roll", torch.arange(n), size, size)
    moved = [[int((cols[i] + int(dx[i])) % size >= size // 2) for dx in (dxa, dxb)] for i in range(n)]
    assert report.agree["roll"] == sum(a == b for a, b in moved)
    grid = worst_grid("roll", Geometry(size, size, max_shift=3, mode="zeros"))
    per = [{int((cols[i] + dx) % size >= size // 2) for dx in grid} for i in range(n)]
    assert report.agree["roll_worst"] == sum(len(p) == 1 for p in per)
    assert report.robust["roll_worst"] == sum(p == {1} for p in per)
    assert 0 < report.agree["roll"] < n and 0 < report.agree["roll_worst"] < n
    with pytest.raises(UsageError, match="too far"):
        ShiftConsistency(max_shift=3, protocols=("roll",)).update(LeftRight(), torch.rand(1, 1, 3, 3),
                                                                  torch.zeros(1, dtype=torch.long))


# ---------------------------------------------------------------------------------------------- crop geometry


def test_crops_equal_slicing():
    images = torch.rand(5, 2, 14, 14)
    geometry = Geometry.of(14, 14, max_shift=1, mode="zeros", crop_size=9)
    left, top = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([4, 0, 3, 1, 2])
    out = crop(images, left, top, geometry)
    for i in range(5):
        assert torch.equal(out[i], images[i, :, int(top[i]):int(top[i]) + 9, int(left[i]):int(left[i]) + 9])
    assert torch.equal(centre_crop(images, geometry), images[:, :, 2:11, 2:11])
    assert torch.equal(centre_crop(images, Geometry.of(14, 14, max_shift=1, mode="zeros")), images)
    with pytest.raises(UsageError, match="smaller than crop_size 16: give images of at least 16x16"):
        Geometry.of(14, 14, max_shift=1, mode="zeros", crop_size=16)


def test_a_protocol_registered_at_run_time_reaches_the_evaluate_module_and_the_command_line(roll, tmp_path,
                                                                                          cifar10_dir):
    import evaluate
    import timm

    from augshift.cli import main
    from augshift.integrations.evaluate import METRIC_PATH

    pair = evaluate.load(METRIC_PATH)
    result = pair.compute(predictions=[1, 2, 0], shifted_predictions=[1, 0, 0], protocol="roll")
    assert result["consistency"] == pytest.approx(2 / 3) and result["protocol"] == "roll"
    assert evaluate.load(METRIC_PATH, "worst").compute(predictions=[1], shifted_predictions=[[1, 1]],
                                                       protocol="roll_worst")["consistency"] == 1.0
    torch.save({"state_dict": timm.create_model("resnet18", num_classes=10).state_dict()}, tmp_path / "ckpt.pth")
    out = tmp_path / "out"
    assert main(["consistency", "--model", "resnet18", "--num-classes", "10", "--checkpoint", str(tmp_path / "ckpt.pth"),
                 "--data", str(cifar10_dir), "--eval-limit", "8", "--protocols", "random,roll,roll_worst",
                 "--out", str(out), "--device", "cpu"]) == 0
    results = json.loads((out / "consistency.json").read_text())["results"]
    assert {"consistency_roll", "consistency_roll_worst", "accuracy_roll_worst"} <= set(results)
    assert results["samples"] == 8


def python_hash(index: int, salt: int, count: int) -> int:
    """Independent reference of the offsets' fixed integer hash, in Python integers: an LCG step, then two rounds
    of xor-shift-multiply, all modulo 2**31."""
    mask = (1 << 31) - 1
    x = (index * 1103515245 + salt * 12345 + 1013904223) & mask
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & mask
    return (x ^ (x >> 16)) % count


def test_hashed_offsets_shifts_and_fractions_equal_the_hash_written_in_python_integers():
    from augshift.views import hashed_fractions, hashed_offsets

    indices = torch.tensor([0, 1, 2, 7, 1000, 123456789, 2 ** 40 + 3])
    for salt, count in ((0, 10), (17, 33), (4001, 2 ** 24)):
        assert hashed_offsets(indices, salt, count).tolist() == [python_hash(i, salt, count) for i in indices.tolist()]
    assert hashed_shifts(indices, 5, 3).tolist() == [python_hash(i, 5, 7) - 3 for i in indices.tolist()]
    steps = 2 ** 24
    assert hashed_fractions(indices, 9, 2.5).tolist() == [python_hash(i, 9, steps) * (5.0 / (steps - 1)) - 2.5
                                                         for i in indices.tolist()]


def test_offsets_to_against_its_definition():
    """Every offset up to 4, then the powers of two from 8 and the 1.5x of each power of two from 4, up to the
    reach, the reach itself, mirrored."""
    from augshift.views import dense_offsets, offsets_to

    for reach in range(0, 70):
        steps = set(range(min(reach, 4) + 1)) | {reach}
        steps |= {v for k in range(2, 8) for v in (2 ** k * 3 // 2, 2 ** (k + 1)) if v <= reach}
        assert offsets_to(reach) == tuple(sorted(steps | {-v for v in steps})), reach
        assert dense_offsets(reach) == tuple(range(-reach, reach + 1))


def test_geometry_and_the_size_checks_at_their_boundaries():
    from augshift.views import FULL, CropProtocol, FractionalProtocol, Geometry

    geometry = Geometry.of(10, 12, max_shift=1, mode="zeros", crop_size=8)
    assert (geometry.height, geometry.width, geometry.source) == (8, 8, (10, 12))
    assert geometry.crop_range == (2, 4) and geometry.centre == (2, 1)  # (cols // 2, rows // 2)
    assert Geometry.of(8, 9, max_shift=1, mode="zeros", crop_size=8).source == (8, 9)
    assert Geometry.of(8, 8, max_shift=1, mode="zeros", crop_size=8).source is None
    for height, width in ((7, 9), (9, 7)):  # either side smaller than the crop
        with pytest.raises(UsageError, match=f"images of {height}x{width} are smaller than crop_size 8: give images "
                                             "of at least 8x8"):
            Geometry.of(height, width, max_shift=1, mode="zeros", crop_size=8)
    with pytest.raises(ValueError, match="^no crop"):
        Geometry(8, 8, max_shift=1, mode="zeros").crop_range
    crop_protocol = CropProtocol("crop", salt=50)
    crop_protocol.check(Geometry(8, 8, max_shift=0, mode="zeros", source=(10, 10)))  # two crop offsets per axis
    with pytest.raises(UsageError, match="^the crop protocol compares crops of larger images, but the images are 8x8"):
        crop_protocol.check(Geometry(8, 8, max_shift=0, mode="zeros"))
    for source in ((9, 9), (10, 12), (12, 10)):  # one crop offset; not square either way
        with pytest.raises(UsageError, match=f"needs square images at least 2 px larger .* got {source[0]}x{source[1]} "
                                             "for 8 crops"):
            crop_protocol.check(Geometry(8, 8, max_shift=0, mode="zeros", source=source))
    fractional = FractionalProtocol("fractional", salt=60)
    fractional.check(Geometry(4, 9, max_shift=3, mode="zeros"))
    with pytest.raises(UsageError, match=r"^shifts up to 4 px \(the fractional protocol\) do not fit images of H=4, "
                                         "W=9: use a max_shift below 4"):
        fractional.check(Geometry(4, 9, max_shift=4, mode="zeros"))
    ShiftProtocol("full", salt=70, reach=FULL).check(Geometry(2, 2, max_shift=9, mode="zeros"))  # any offset fits
    ShiftProtocol("random3", salt=80, reach=3).check(Geometry(9, 4, max_shift=9, mode="zeros"))
    with pytest.raises(UsageError, match=r"^shifts up to 4 px \(the random4 protocol\) do not fit images of H=9, W=4"):
        ShiftProtocol("random4", salt=90, reach=4).check(Geometry(9, 4, max_shift=1, mode="zeros"))


def test_protocol_names_are_parsed_and_refused_with_the_registered_names():
    from augshift.protocols import protocol_of

    every = ", ".join(protocol_names())
    assert protocol_list("random,,random,circular_worst") == ("random", "circular_worst")  # repeats dropped
    with pytest.raises(argparse.ArgumentTypeError, match=f"^unknown protocol\\(s\\) nope, wrap; choose from {every}$"):
        protocol_list("nope,random,wrap")
    with pytest.raises(argparse.ArgumentTypeError, match=f"^unknown protocol\\(s\\) ',,'; choose from {every}$"):
        protocol_list(",,")
    assert protocol_of("random_worst") == (protocol_of("random")[0], True) and protocol_of("random")[1] is False
    with pytest.raises(UsageError, match=f"^unknown protocol 'nope_worst'; choose from {every}$"):
        protocol_of("nope_worst")
    parser = argparse.ArgumentParser()
    add_protocols_argument(parser, "--views", default=("circular",))
    assert parser.parse_args([]).views == ("circular",)
    assert parser.parse_args(["--views", "crop,random"]).views == ("crop", "random")
    help_text = " ".join(parser.format_help().split())
    assert f"(default: circular; of {every}: <protocol>_worst is the worst case" in help_text


def test_crop_options_are_checked_with_the_fix():
    from augshift.protocols import check_crop_options, consistency_column, crop_protocols

    assert crop_protocols(("random", "crop_worst", "circular", "crop")) == ["crop_worst", "crop"]
    check_crop_options(("random",), crop_from=None, crop_size=None)
    check_crop_options(("crop",), crop_from=256, crop_size=224)
    with pytest.raises(UsageError, match="^the crop_worst protocol compares crops of larger images: pass --crop-from N "
                                         "\\(e.g. 256\\) with --image-size the model's input size \\(e.g. 224\\)$"):
        check_crop_options(("random", "crop_worst"), crop_from=None, crop_size=224)
    for crop_size in (None, 256, 300):
        with pytest.raises(UsageError, match="^--crop-from 256 needs --image-size, the crop, smaller than it"):
            check_crop_options(("random",), crop_from=256, crop_size=crop_size)
    assert consistency_column("random") == "shift_consistency"
    assert consistency_column("random_worst") == "shift_consistency_random_worst"


@pytest.mark.parametrize("protocol, message", [
    (ShiftProtocol(7, salt=900), "^a protocol's name is a str and its salt an int, got name=7, salt=900; registered: "
                                 "random, circular"),
    (ShiftProtocol("new", salt="900"), "got name='new', salt='900'"),
    (ShiftProtocol("new", salt=True), "got name='new', salt=True"),
    (ShiftProtocol("", salt=900), "^a protocol's name must be non-empty, without commas and not end in _worst \\(its "
                                  "worst case's suffix\\), got ''$"),
    (ShiftProtocol("new_worst", salt=900), "got 'new_worst'$"),
    (ShiftProtocol("a,b", salt=900), "got 'a,b'$"),
    (ShiftProtocol("new", salt=-1), "^the salt -1 of 'new' would draw another protocol's offsets: choose one in "
                                    "\\[0, 996\\] at least 4 away from those taken \\(\\[0, 10, "),
    (ShiftProtocol("new", salt=997), "the salt 997 of 'new'"),
    (ShiftProtocol("new", salt=73), "the salt 73 of 'new'"),  # reflect uses 70 .. 73
    (ShiftProtocol("new", salt=67), "the salt 67 of 'new'"),  # its 67 .. 70 meet reflect's 70
])
def test_register_protocol_refuses_bad_names_and_salts(protocol, message):
    before = dict(PROTOCOLS)
    with pytest.raises(UsageError, match=message):
        register_protocol(protocol)
    assert PROTOCOLS == before
    with pytest.raises(TypeError, match="^register_protocol takes a Protocol, got str$"):
        register_protocol("random")


@pytest.mark.parametrize("salt", [74, 996])  # next to reflect's salts; the last whose salt .. salt + 3 fit
def test_register_protocol_takes_the_salts_at_the_edges(salt):
    with registered(ShiftProtocol("edge", salt=salt)) as protocol:
        assert PROTOCOLS["edge"] is protocol


def test_crop_worst_grid_keys_and_draws_against_hand_counts():
    from augshift.views import CropProtocol, FractionalProtocol, hashed_fractions, hashed_offsets

    crop_protocol = CropProtocol("crop", salt=50)
    geometry = Geometry(8, 8, max_shift=0, mode="zeros", source=(40, 44))  # 32 x 36 crop offsets: the 32 count
    # centre 16 plus offsets_to(16), inside [0, 32): 16 + 16 = 32 is out
    assert crop_protocol.grid(geometry) == (0, 4, 8, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 24, 28)
    assert crop_protocol.grid(Geometry(4, 4, max_shift=0, mode="zeros", source=(11, 11))) == (0, 1, 2, 3, 4, 5, 6)
    centre = geometry.centre
    assert crop_protocol.key(*centre, geometry) is None  # the centre crop is the base images
    assert crop_protocol.key(3, 16, geometry) == "crop/3/16"
    fractional = FractionalProtocol("fractional", salt=60)
    assert fractional.key(0, 0, geometry) is None
    assert (fractional.key(1, 0, geometry), fractional.key(0, 1, geometry)) == ("FractionalProtocol/1/0",
                                                                              "FractionalProtocol/0/1")
    indices = torch.arange(20)
    dx, dy = crop_protocol.draw(indices, 500, geometry)  # dx over the 36 columns keyed by the salt, dy by salt + 1
    assert torch.equal(dx, hashed_offsets(indices, 500, 36)) and torch.equal(dy, hashed_offsets(indices, 501, 32))
    dx, dy = fractional.draw(indices, 600, Geometry(8, 8, max_shift=3, mode="zeros"))
    assert torch.equal(dx, hashed_fractions(indices, 600, 3)) and torch.equal(dy, hashed_fractions(indices, 601, 3))


def test_crop_protocol_refusals_end_with_the_fix():
    from augshift.views import CropProtocol

    crop_protocol = CropProtocol("crop", salt=50)
    with pytest.raises(UsageError, match="hand it larger images \\(--crop-from, e.g. 256 for 224 crops\\)$"):
        crop_protocol.check(Geometry(8, 8, max_shift=0, mode="zeros"))
    with pytest.raises(UsageError, match="\\(--crop-from resizes and centre-crops to a square, e.g. 256 for 224\\)$"):
        crop_protocol.check(Geometry(8, 8, max_shift=0, mode="zeros", source=(9, 9)))


def test_full_reach_grid_goes_out_to_half_the_smaller_side():
    from augshift.views import FULL

    full = ShiftProtocol("full", salt=70, mode="circular", reach=FULL)
    assert full.grid(Geometry(12, 10, max_shift=1, mode="zeros")) == (-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5)
    assert ShiftProtocol("r3", salt=80, reach=3).grid(Geometry(12, 10, max_shift=1, mode="zeros")) == tuple(range(-3, 4))


def test_the_protocols_option_names_its_default_every_protocol_and_the_worst_cases():
    parser = argparse.ArgumentParser()
    add_protocols_argument(parser, default=("circular", "reflect"))
    action = parser._actions[-1]
    assert action.option_strings == ["--protocols"] and action.metavar == "NAMES"
    assert action.help == (f"comma-separated consistency protocols (default: circular,reflect; of "
                           f"{', '.join(protocol_names())}"
                           ": <protocol>_worst is the worst case over a grid of offsets, a forward each; crop needs "
                           "images larger than the model's)")


def test_larger_images_must_be_larger_than_the_crop():
    for crop_size in (None, 256):
        with pytest.raises(UsageError, match=r"^--crop-from 256 needs --image-size, the crop, smaller than it \(e.g. "
                                             r"--crop-from 256 --image-size 224\)$"):
            check_crop_options(("random",), crop_from=256, crop_size=crop_size)
