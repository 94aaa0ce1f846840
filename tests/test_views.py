"""Layout chains in affine form agree with their explicit index maps, and large ones cost no map."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from aalbert.ir.affine import Affine
from aalbert.passes.views import Step, canonical_recipe, chain_view, iota, is_numpy_broadcast


def _attrs(**kw):
    return tuple(sorted(kw.items()))


def _random_step(rng: random.Random, shape: tuple[int, ...]) -> Step | None:
    kind = rng.choice(["reshape", "transpose", "broadcast", "tile", "slice", "gather"])
    rank = len(shape)
    if kind == "reshape":
        flat = [d for d in shape if d > 1]
        rng.shuffle(flat)
        n = math.prod(shape)
        dims = []
        while n > 1:
            d = rng.choice([f for f in range(2, n + 1) if n % f == 0])
            dims.append(d)
            n //= d
        if rng.random() < 0.3:
            dims.insert(rng.randrange(len(dims) + 1), 1)
        return Step("reshape", _attrs(shape=tuple(dims) or (1,)))
    if kind == "transpose":
        perm = list(range(rank))
        rng.shuffle(perm)
        return Step("transpose", _attrs(perm=tuple(perm)))
    if kind == "broadcast":
        target = tuple(rng.choice([2, 3]) if d == 1 else d for d in shape)
        return Step("broadcast", _attrs(shape=(rng.choice([1, 2]),) + target))
    if kind == "tile":
        return Step("tile", _attrs(repeats=tuple(rng.choice([1, 1, 2]) for _ in shape)))
    if kind == "slice":
        starts, stops, steps = [], [], []
        for d in shape:
            step = rng.choice([1, 1, 2, -1])
            if step > 0:
                s = rng.randrange(d)
                e = rng.randrange(s + 1, d + 1)
            else:
                s = rng.randrange(d)
                e = rng.randrange(-1, s)
            starts.append(s)
            stops.append(e)
            steps.append(step)
        return Step("slice", _attrs(starts=tuple(starts), stops=tuple(stops), steps=tuple(steps)))
    axis = rng.randrange(rank)
    d = shape[axis]
    idx = np.array([rng.randrange(-d, d) for _ in range(rng.choice([1, 2, 3]))], dtype=np.int64)
    if rng.random() < 0.5:  # an arithmetic progression: the affine case
        idx = np.arange(0, d, rng.choice([1, 2]), dtype=np.int64)
    return Step("gather", _attrs(axis=axis), idx.tobytes(), idx.shape, idx.dtype.str)


@pytest.mark.parametrize("seed", range(150))
def test_affine_chains_equal_their_explicit_maps(seed):
    rng = random.Random(seed)
    shape = tuple(rng.choice([1, 2, 3, 4, 6]) for _ in range(rng.randint(1, 3)))
    steps, m = [], iota(shape)
    for _ in range(rng.randint(1, 4)):
        step = _random_step(rng, m.shape)
        m = step.apply(m)
        steps.append(step)
    view = chain_view(shape, tuple(steps))
    explicit = Affine.from_map(m)
    assert view == explicit
    if view is not None:
        assert np.array_equal(view.materialize(), m)
        recipe = canonical_recipe(view, shape)
        if recipe is not None:  # the canonical spelling reads the same elements
            x = iota(shape)
            for op, attrs in recipe:
                x = Step(op, attrs).apply(x)
            assert np.array_equal(x, m)
        broadcast = m.ndim >= len(shape) and np.array_equal(np.broadcast_to(iota(shape), m.shape), m) \
            if _broadcastable(shape, m.shape) else False
        assert is_numpy_broadcast(view, shape) == broadcast


def _broadcastable(a, b) -> bool:
    try:
        return np.broadcast_shapes(a, b) == tuple(b)
    except ValueError:
        return False


def test_a_large_transpose_is_spelled_from_a_few_integers():
    """[1, 8192, 16384] (512 MiB of float32): the affine map has two sub-axes, the recipe two ops."""
    shape = (1, 8192, 16384)
    view = chain_view(shape, (Step("transpose", _attrs(perm=(0, 2, 1))),))
    assert view.flat() == [(16384, 1), (8192, 16384)]
    assert canonical_recipe(view, shape) == (("reshape", _attrs(shape=(8192, 16384))),
                                             ("transpose", _attrs(perm=(1, 0))),
                                             ("reshape", _attrs(shape=(1, 16384, 8192))))
