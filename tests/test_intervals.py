"""Lifetime queries against brute force: the planner's and the verifier's n log n structures."""

from __future__ import annotations

import random

import pytest

from aalbert.intervals import LiveIndex, first_overlap


def _span(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    a = rng.randint(lo, hi)
    return a, min(hi, a + rng.choice([0, 0, 1, 2, 5, 40]))


@pytest.mark.parametrize("seed", range(20))
def test_live_index_finds_exactly_the_overlapping_spans(seed):
    rng = random.Random(seed)
    index: LiveIndex[int] = LiveIndex(-1, 60)
    spans = []
    for i in range(rng.randint(0, 80)):
        s, e = _span(rng, -1, 60)
        index.add(s, e, i)
        spans.append((s, e))
    for _ in range(40):
        s, e = _span(rng, -1, 60)
        want = {i for i, (a, b) in enumerate(spans) if a <= e and s <= b}
        got = index.overlapping(s, e)
        assert len(got) == len(set(got)) and set(got) == want


@pytest.mark.parametrize("seed", range(40))
def test_first_overlap_agrees_with_every_pair(seed):
    rng = random.Random(seed)
    boxes = []
    for _ in range(rng.randint(0, 30)):
        s, e = _span(rng, -1, 30)
        boxes.append((64 * rng.randint(0, 12), 64 * rng.choice([0, 1, 1, 2, 3]), s, e))

    def clash(a, b):
        (o1, n1, s1, e1), (o2, n2, s2, e2) = boxes[a], boxes[b]
        return n1 > 0 and n2 > 0 and o1 < o2 + n2 and o2 < o1 + n1 and s1 <= e2 and s2 <= e1

    any_pair = any(clash(a, b) for a in range(len(boxes)) for b in range(a + 1, len(boxes)))
    found = first_overlap(boxes)
    assert (found is not None) == any_pair
    if found is not None:
        assert found[0] != found[1] and clash(*found)
