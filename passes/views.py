"""Canonical layout chains, derived from index maps.

A chain of data-movement ops (reshape, transpose, broadcast, tile, slice,
gather with constant indices) applied to one source tensor X is fully
described by its index map M: an integer array of the result's shape whose
entries are flat positions in X. Two chains with the same map are the same
computation however an exporter spelled them (Unsqueeze/Unsqueeze vs
Reshape, a Gather of constant positions vs a Slice, Expand vs an And with
a tensor of trues).

`canonical_recipe(M, shape)` rebuilds the one canonical spelling of a map:

    slice (if X is not read whole) -> reshape -> transpose -> reshape/broadcast

found by factoring every result axis into sub-axes with affine strides.
Size-1 axes take no part in the transpose, adjacent sub-axes that stay
adjacent are merged, and each step is emitted only if it changes something.
Maps that are not affine (a reversal, an arbitrary permutation) get None and
are left as the frontend wrote them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aalbert.ir.registry import get_op

Recipe = tuple[tuple[str, tuple[tuple[str, object], ...]], ...]


@dataclass(frozen=True)
class Step:
    """One layout op as applied to the chain (its index operand, if any, as a constant)."""

    op: str
    attrs: tuple[tuple[str, object], ...]
    index: bytes | None = None
    index_shape: tuple[int, ...] = ()
    index_dtype: str = ""

    def apply(self, x: np.ndarray) -> np.ndarray:
        args = [x]
        if self.index is not None:
            args.append(np.frombuffer(self.index, dtype=self.index_dtype).reshape(self.index_shape))
        (out,) = get_op(self.op).eval(args, dict(self.attrs))
        return out


def iota(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def apply_recipe(x: np.ndarray, recipe: Recipe) -> np.ndarray:
    for op, attrs in recipe:
        (x,) = get_op(op).eval([x], dict(attrs))
    return x


def _divisors_desc(n: int) -> list[int]:
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]), reverse=True)


def _factor(d: np.ndarray) -> list[tuple[int, int]] | None:
    """Split one axis (offsets relative to its first entry) into (size, stride) sub-axes."""
    n = len(d)
    if n == 1:
        return [(1, 0)]
    s = int(d[1] - d[0])
    k = 1
    while k < n and d[k] - d[0] == k * s:
        k += 1
    if k == n:
        return [(n, s)]
    for b in _divisors_desc(n):
        if b > k or b < 2:
            continue
        blocks = d.reshape(n // b, b)
        if np.array_equal(blocks - blocks[:, :1], np.broadcast_to(np.arange(b) * s, blocks.shape)):
            outer = _factor(blocks[:, 0])
            if outer is not None:
                return outer + [(b, s)]
    return None


def _affine(m: np.ndarray) -> list[list[tuple[int, int]]] | None:
    """Per result axis, its (size, stride) sub-axes, if the map is affine over them."""
    base = int(m.reshape(-1)[0])
    per_axis = []
    for ax in range(m.ndim):
        line = m[tuple(slice(None) if i == ax else 0 for i in range(m.ndim))]
        subs = _factor(line - base)
        if subs is None:
            return None
        per_axis.append(subs)
    rebuilt = np.full((), base, dtype=np.int64)
    for ax, subs in enumerate(per_axis):
        contrib = np.zeros((1,), dtype=np.int64)
        for size, stride in subs:
            contrib = (contrib[:, None] + np.arange(size, dtype=np.int64)[None, :] * stride).reshape(-1)
        shape = [1] * m.ndim
        shape[ax] = m.shape[ax]
        rebuilt = rebuilt + contrib.reshape(shape)
    if not np.array_equal(np.broadcast_to(rebuilt, m.shape), m):
        return None
    return per_axis


def _box(m: np.ndarray, shape: tuple[int, ...]):
    """If the entries read form a box of X (per axis an arithmetic range): the slice and the re-based map."""
    picked = np.unique(m)
    coords = np.unravel_index(picked, shape)
    starts, stops, steps, counts = [], [], [], []
    for dim, c in zip(shape, coords):
        u = np.unique(c)
        step = int(u[1] - u[0]) if len(u) > 1 else 1
        if len(u) > 1 and not np.array_equal(u, u[0] + np.arange(len(u)) * step):
            return None
        starts.append(int(u[0]))
        stops.append(int(u[-1]) + 1)
        steps.append(step)
        counts.append(len(u))
    if math.prod(counts) != picked.size:
        return None
    rebased = np.searchsorted(picked, m).astype(np.int64)
    return (tuple(starts), tuple(stops), tuple(steps)), tuple(counts), rebased


def canonical_recipe(m: np.ndarray, shape: tuple[int, ...]) -> Recipe | None:
    """The canonical op sequence that reads X (of `shape`) through map `m`, or None."""
    if m.size == 0 or math.prod(shape) == 0:
        return None
    recipe = _derive(m, shape)
    if recipe is not None:
        recipe = _merge_reshapes(recipe)
    if recipe is None or not np.array_equal(apply_recipe(iota(shape), recipe), m):
        return None
    return recipe


def _merge_reshapes(recipe: Recipe) -> Recipe:
    """A reshape straight after a reshape makes the first one pointless."""
    out: list = []
    for step in recipe:
        if out and step[0] == "reshape" and out[-1][0] == "reshape":
            out.pop()
        out.append(step)
    return tuple(out)


def _attrs(**kw) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(kw.items()))


def _derive(m: np.ndarray, shape: tuple[int, ...]) -> Recipe | None:
    per_axis = _affine(m)
    if per_axis is None:
        return None
    fine = [(size, stride, ax) for ax, subs in enumerate(per_axis) for size, stride in subs if size > 1]
    moving = [f for f in fine if f[1] != 0]
    if any(stride < 0 for _, stride, _ in moving):
        return None
    ops: list = []
    cur = tuple(shape)
    numel = math.prod(shape)
    covered = math.prod(s for s, _, _ in moving) if moving else 1
    if covered != numel or (moving and not _contiguous(sorted(moving, key=lambda f: -f[1]))) \
            or int(m.reshape(-1)[0]) != 0 and covered == numel:
        box = _box(m, shape)
        if box is None:
            return None
        (starts, stops, steps), counts, m2 = box
        ops.append(("slice", _attrs(starts=starts, stops=stops, steps=steps)))
        rest = _derive(m2, counts)
        if rest is None or (rest and rest[0][0] == "slice"):
            return None
        return tuple(ops) + rest
    # group sub-axes that stay adjacent through the transpose
    order = sorted(range(len(moving)), key=lambda i: -moving[i][1])
    rank_in_memory = {i: r for r, i in enumerate(order)}
    groups: list[list[int]] = []
    for i in range(len(moving)):
        if groups and rank_in_memory[i] == rank_in_memory[groups[-1][-1]] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    sizes = [math.prod(moving[i][0] for i in g) for g in groups]
    by_memory = sorted(range(len(groups)), key=lambda gi: rank_in_memory[groups[gi][0]])
    memshape = tuple(sizes[gi] for gi in by_memory)
    if memshape != cur:
        ops.append(("reshape", _attrs(shape=memshape)))
        cur = memshape
    perm = tuple(by_memory.index(gi) for gi in range(len(groups)))
    if perm != tuple(range(len(perm))):
        ops.append(("transpose", _attrs(perm=perm)))
        cur = tuple(cur[p] for p in perm)
    target = m.shape
    if not any(stride == 0 for _, stride, _ in fine):
        if cur != target:
            ops.append(("reshape", _attrs(shape=target)))
        return tuple(ops)
    whole_axes = all(len([f for f in fine if f[2] == ax]) == 1 for _, stride, ax in fine if stride == 0)
    if whole_axes:
        squeezed = tuple(1 if any(f[2] == ax and f[1] == 0 for f in fine) else d for ax, d in enumerate(target))
        if cur != squeezed:
            ops.append(("reshape", _attrs(shape=squeezed)))
        ops.append(("broadcast", _attrs(shape=target)))
        return tuple(ops)
    fine_ones = tuple(1 if stride == 0 else size for size, stride, _ in fine)
    fine_full = tuple(size for size, _, _ in fine)
    if cur != fine_ones:
        ops.append(("reshape", _attrs(shape=fine_ones)))
    ops.append(("broadcast", _attrs(shape=fine_full)))
    ops.append(("reshape", _attrs(shape=target)))
    return tuple(ops)


def _contiguous(memory_order: list[tuple[int, int, int]]) -> bool:
    """Sub-axes (in memory order) that read X densely from its first element."""
    expected = 1
    for size, stride, _ in reversed(memory_order):
        if stride != expected:
            return False
        expected *= size
    return True


def is_numpy_broadcast(m: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether the map is X broadcast to m.shape by numpy's rules (trailing axes aligned)."""
    if len(shape) > m.ndim:
        return False
    try:
        expected = np.broadcast_to(iota(shape), m.shape)
    except ValueError:
        return False
    return np.array_equal(expected, m)
