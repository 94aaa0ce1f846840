"""Canonical layout chains, derived from affine index maps.

A chain of data-movement ops (reshape, transpose, broadcast, tile, slice,
gather with constant indices) applied to one source tensor X is fully
described by its index map: which flat position of X each result element
reads. Two chains with the same map are the same computation however an
exporter spelled them (Unsqueeze/Unsqueeze vs Reshape, a Gather of constant
positions vs a Slice, Expand vs an And with a tensor of trues).

`chain_view` composes a chain's map in affine form (`ir.affine`), each op
saying what it does to a map (`OpDef.reindex`), so the map costs a few
integers however large the tensors; a step with no affine rule is evaluated
on an explicit map only when the tensors are small (`MAP_LIMIT`), else the
chain is left as written. `canonical_recipe` rebuilds the one canonical
spelling of a map:

    slice (if X is not read whole) -> reshape -> transpose -> reshape/broadcast

from its sub-axes (size, stride): size-1 axes take no part in the
transpose, adjacent sub-axes that stay adjacent are merged, and each step is
emitted only if it changes something. Maps that are not affine (a reversal,
an arbitrary permutation) have no recipe and are left as the frontend wrote
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aalbert.ir.affine import Affine, source_strides
from aalbert.ir.registry import get_op
from aalbert.ir.types import DType, TensorType

Recipe = tuple[tuple[str, tuple[tuple[str, object], ...]], ...]

MAP_LIMIT = 1 << 22  # elements: explicit maps up to this size may be evaluated for a step with no affine rule


@dataclass(frozen=True)
class Step:
    """One layout op as applied to the chain (its index operand, if any, as a constant)."""

    op: str
    attrs: tuple[tuple[str, object], ...]
    index: bytes | None = None
    index_shape: tuple[int, ...] = ()
    index_dtype: str = ""

    def index_array(self) -> np.ndarray | None:
        if self.index is None:
            return None
        return np.frombuffer(self.index, dtype=self.index_dtype).reshape(self.index_shape)

    def apply(self, x: np.ndarray) -> np.ndarray:
        index = self.index_array()
        (out,) = get_op(self.op).eval([x] + ([index] if index is not None else []), dict(self.attrs))
        return out

    def result_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        types = [TensorType(shape, DType.F32)]
        if self.index is not None:
            types.append(TensorType(self.index_shape, DType.from_numpy(np.dtype(self.index_dtype))))
        (out,) = get_op(self.op).infer(types, dict(self.attrs), None)
        return out.shape


def iota(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def chain_view(shape: tuple[int, ...], steps: tuple[Step, ...]) -> Affine | None:
    """The affine map of a chain applied to a tensor of `shape`, or None if it has none (or it is too
    large to find without a rule)."""
    view = Affine.identity(shape)
    for i, step in enumerate(steps):
        found = get_op(step.op).reindex(view, dict(step.attrs), step.index_array())
        if found is None:
            return _explicit(view, steps[i:])
        view = found
    return view.normalized()


def _explicit(view: Affine, steps: tuple[Step, ...]) -> Affine | None:
    """Finish a chain on an explicit map, if every map on the way is small."""
    shape = view.shape
    for step in steps:
        if math.prod(shape) > MAP_LIMIT:
            return None
        shape = step.result_shape(shape)
    if math.prod(shape) > MAP_LIMIT or view.numel == 0:
        return None
    m = view.materialize()
    try:
        for step in steps:
            m = step.apply(m)
    except (IndexError, ValueError):  # e.g. a constant index out of range: the chain stays as written
        return None
    return Affine.from_map(m)


def apply_recipe(view: Affine, recipe: Recipe) -> Affine | None:
    for op, attrs in recipe:
        view = get_op(op).reindex(view, dict(attrs), None)
        if view is None:
            return None
    return view.normalized()


def is_numpy_broadcast(view: Affine, shape: tuple[int, ...]) -> bool:
    """Whether the map is X broadcast to the result's shape by numpy's rules (trailing axes aligned)."""
    try:
        np.broadcast_shapes(shape, view.shape)
    except ValueError:
        return False
    plain = Affine.identity(shape).broadcast(view.shape)
    return plain is not None and plain.normalized() == view.normalized()


def canonical_recipe(view: Affine, shape: tuple[int, ...]) -> Recipe | None:
    """The canonical op sequence that reads X (of `shape`) through `view`, or None."""
    if view.numel == 0 or math.prod(shape) == 0:
        return None
    recipe = _derive(view.normalized(), shape)
    if recipe is not None:
        recipe = _merge_reshapes(recipe)
    if recipe is None or apply_recipe(Affine.identity(shape), recipe) != view.normalized():
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


def _box(view: Affine, shape: tuple[int, ...]):
    """If the entries read form a box of X (per axis an arithmetic range): the slice, the box's shape and
    the map rebased onto the box."""
    strides = source_strides(shape)
    coords = [(view.base // s) % d for s, d in zip(strides, shape)]
    if sum(c * s for c, s in zip(coords, strides)) != view.base:
        return None
    owner: dict[int, list[tuple[int, int]]] = {j: [] for j in range(len(shape))}  # source axis -> (size, step)
    placed: list[list[tuple[int, int, int] | None]] = []  # per result axis, per sub-axis: (source axis, size, step)
    for subs in view.axes:
        row: list[tuple[int, int, int] | None] = []
        for size, stride in subs:
            if stride == 0:
                row.append(None)
                continue
            j = next((j for j, s in enumerate(strides) if stride % s == 0 and shape[j] > 1), None)
            if j is None or stride < 0:
                return None
            owner[j].append((size, stride // strides[j]))
            row.append((j, size, stride // strides[j]))
        placed.append(row)
    starts, stops, steps, counts = [], [], [], []
    for j, d in enumerate(shape):
        parts = sorted(owner[j], key=lambda p: p[1])
        step = parts[0][1] if parts else 1
        expected, count = step, 1
        for size, c in parts:
            if c != expected:
                return None  # not one arithmetic range along this axis
            expected = c * size
            count *= size
        last = coords[j] + step * (count - 1)
        if last >= d:
            return None
        starts.append(coords[j])
        stops.append(last + 1)
        steps.append(step)
        counts.append(count)
    box_strides = source_strides(tuple(counts))
    axes = []
    for subs, row in zip(view.axes, placed):
        axes.append(tuple((size, 0) if p is None else (size, (p[2] // steps[p[0]]) * box_strides[p[0]])
                          for (size, _), p in zip(subs, row)))
    return (tuple(starts), tuple(stops), tuple(steps)), tuple(counts), Affine(view.shape, tuple(axes), 0)


def _derive(view: Affine, shape: tuple[int, ...]) -> Recipe | None:
    fine = [(size, stride, ax) for ax, subs in enumerate(view.axes) for size, stride in subs if size > 1]
    moving = [f for f in fine if f[1] != 0]
    if any(stride < 0 for _, stride, _ in moving):
        return None
    ops: list = []
    cur = tuple(shape)
    numel = math.prod(shape)
    covered = math.prod(s for s, _, _ in moving) if moving else 1
    if covered != numel or (moving and not _contiguous(sorted(moving, key=lambda f: -f[1]))) \
            or view.base != 0 and covered == numel:
        box = _box(view, shape)
        if box is None:
            return None
        (starts, stops, steps), counts, rebased = box
        ops.append(("slice", _attrs(starts=starts, stops=stops, steps=steps)))
        rest = _derive(rebased.normalized(), counts)
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
    target = view.shape
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

