"""The views' building blocks (`augshift.views`): the worst-case grids, a crop's geometry, the keys that share
a view between protocols, and the full-reach draws, against what their docstrings promise."""
from __future__ import annotations

import torch

from augshift.protocols import protocol_of
from augshift.views import Geometry, offsets_to


def test_the_worst_case_grid_is_integers_up_to_4_then_powers_of_two_and_their_one_and_a_half():
    assert offsets_to(16) == (-16, -12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12, 16)
    assert offsets_to(12) == (-12, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 12)
    assert offsets_to(3) == (-3, -2, -1, 0, 1, 2, 3)
    assert all(type(d) is int for reach in (3, 12, 16, 40) for d in offsets_to(reach))  # offsets index pixels
    full, _ = protocol_of("circular_full")
    grid = full.grid(Geometry(7, 9, 2, "zeros"))  # full reach on 7 x 9: half the shorter side, 3
    assert grid == (-3, -2, -1, 0, 1, 2, 3) and all(type(d) is int for d in grid)


def test_a_cropped_geometry_keeps_the_shift_range_and_border_for_the_other_protocols():
    assert Geometry.of(12, 10, max_shift=2, mode="circular", crop_size=8) == Geometry(8, 8, 2, "circular", (12, 10))
    assert Geometry.of(8, 8, max_shift=3, mode="zeros", crop_size=8) == Geometry(8, 8, 3, "zeros", None)


def test_a_view_is_keyed_by_its_own_border_and_offset_and_the_unshifted_one_is_the_base():
    geometry = Geometry(8, 8, 2, "zeros")
    random, circular = protocol_of("random")[0], protocol_of("circular")[0]
    assert random.key(0, 0, geometry) is None  # the base view, computed once
    assert random.key(0, 1, geometry) == "shift/zeros/0/1" and random.key(1, 0, geometry) == "shift/zeros/1/0"
    assert circular.key(1, 0, geometry) == "shift/circular/1/0"  # its own border, not the evaluator's


def test_full_reach_draws_each_axis_within_its_own_side_and_apart():
    full, _ = protocol_of("circular_full")
    dx, dy = full.draw(torch.arange(200), 7, Geometry(4, 32, 2, "zeros"))  # H = 4, W = 32
    assert 0 <= int(dy.min()) and int(dy.max()) < 4 and int(dx.max()) >= 4 and int(dx.max()) < 32
    assert not torch.equal(dx % 4, dy)  # dx and dy keyed apart


def test_the_four_offsets_of_an_images_two_views_are_keyed_apart():
    full, _ = protocol_of("circular_full")
    (dx_a, dy_a), (dx_b, dy_b) = full.offsets(torch.arange(200), Geometry(16, 16, 2, "zeros"), seed=0)
    draws = [dx_a, dy_a, dx_b, dy_b]
    assert all(not torch.equal(draws[i], draws[j]) for i in range(4) for j in range(i + 1, 4))
