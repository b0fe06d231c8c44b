"""The one seeding scheme: one table of stream keys, and no caller seeding a generator with its own arithmetic."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from augshift.seeding import Stream, stream_generator, stream_seed

ROOT = Path(__file__).resolve().parents[1]


def test_each_stream_has_its_own_key():
    values = [member.value for member in Stream.__members__.values()]  # aliases (a repeated value) show up here
    assert len(values) == len(set(values)) == len(Stream)


def test_a_stream_generator_draws_what_its_seed_sequence_says():
    expected = int(np.random.SeedSequence([5, int(Stream.ATTACK), 2]).generate_state(1, dtype=np.uint64)[0])
    assert stream_seed(5, Stream.ATTACK, 2) == expected
    assert torch.equal(torch.rand(4, generator=stream_generator(5, Stream.ATTACK, 2)),
                       torch.rand(4, generator=torch.Generator().manual_seed(expected)))


def test_no_module_seeds_a_generator_with_its_own_arithmetic():
    """``manual_seed(seed + 2)`` / ``manual_seed(seed * 1000 + i)``: streams that may collide; use stream_generator."""
    pattern = re.compile(r"manual_seed\([^)*]*[a-z_]\s*[+*]\s*[0-9a-z_(]")
    found = [f"{path.relative_to(ROOT)}:{number}" for folder in ("augshift", "integrations")
             for path in (ROOT / folder).rglob("*.py")
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found
