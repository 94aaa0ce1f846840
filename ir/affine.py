"""Affine index maps: which element of a source tensor each result element reads, without listing them.

A chain of layout ops (reshape, transpose, broadcast, tile, slice, gather of
constant indices) reads a source tensor X through an index map: result
element r reads X's flat position M(r). For the ops transformer graphs use,
M is affine in the digits of r: every result axis splits, in mixed radix,
into sub-axes (size, stride), and

    M(r) = base + sum over all sub-axes of digit * stride.

`Affine` holds that form (sizes, strides and a base: a few integers however
large the tensors). Layout ops map it to their result's form (`OpDef.reindex`),
so a chain's map is known without materializing a position per element;
`normalized` gives one spelling per map, so two chains read X the same way
exactly when their normalized forms are equal. `materialize` and `from_map`
convert to and from explicit maps, for small tensors and for tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SubAxis = tuple[int, int]  # (size, stride)


def source_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides, in elements."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


def _merged(subs: tuple[SubAxis, ...]) -> tuple[SubAxis, ...]:
    """Drop size-1 sub-axes; merge an outer (a, t1) and inner (b, t2) that are one axis (t1 == b * t2)."""
    out: list[SubAxis] = []
    for size, stride in subs:
        if size == 1:
            continue
        out.append((size, stride))
        while len(out) >= 2 and out[-2][1] == out[-1][0] * out[-1][1]:
            (a, _), (b, t2) = out[-2], out[-1]
            out[-2:] = [(a * b, t2)]
    return tuple(out)


@dataclass(frozen=True)
class Affine:
    shape: tuple[int, ...]                       # the result's shape
    axes: tuple[tuple[SubAxis, ...], ...]        # per result axis, its sub-axes, outer first
    base: int = 0

    @staticmethod
    def identity(shape: tuple[int, ...]) -> Affine:
        return Affine(tuple(shape), tuple(((d, s),) if d != 1 else () for d, s in zip(shape, source_strides(shape))))

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def normalized(self) -> Affine:
        return Affine(self.shape, tuple(_merged(a) for a in self.axes), self.base)

    def flat(self) -> list[SubAxis]:
        """Every sub-axis, outermost first, size-1 ones dropped."""
        return [sub for axis in self.normalized().axes for sub in axis]

    # -- what layout ops do to a map (each returns None where the result is not of this form) ----------------
    def reshape(self, shape: tuple[int, ...]) -> Affine | None:
        rest = self.flat()
        axes = []
        for d in shape:
            if d == 0:
                return None
            taken: list[SubAxis] = []
            have = 1
            while have < d:
                if not rest:
                    return None
                size, stride = rest.pop(0)
                if d % (have * size) == 0:
                    taken.append((size, stride))
                    have *= size
                    continue
                need = d // have
                if d % have or size % need:
                    return None
                taken.append((need, stride * (size // need)))  # the outer part of the sub-axis
                rest.insert(0, (size // need, stride))
                have = d
            axes.append(tuple(taken))
        if rest:
            return None
        return Affine(tuple(shape), tuple(axes), self.base)

    def transpose(self, perm: tuple[int, ...]) -> Affine:
        return Affine(tuple(self.shape[p] for p in perm), tuple(self.axes[p] for p in perm), self.base)

    def broadcast(self, shape: tuple[int, ...]) -> Affine | None:
        lead = len(shape) - len(self.shape)
        if lead < 0:
            return None
        axes: list[tuple[SubAxis, ...]] = []
        for i, d in enumerate(shape):
            if i < lead:
                axes.append(((d, 0),) if d != 1 else ())
                continue
            have = self.shape[i - lead]
            if have == d:
                axes.append(self.axes[i - lead])
            elif have == 1:
                axes.append(((d, 0),) if d != 1 else ())
            else:
                return None
        return Affine(tuple(shape), tuple(axes), self.base)

    def tile(self, repeats: tuple[int, ...]) -> Affine | None:
        if len(repeats) != len(self.shape) or 0 in repeats:
            return None
        axes = tuple((((r, 0),) + a) if r != 1 else a for a, r in zip(self.axes, repeats))
        return Affine(tuple(d * r for d, r in zip(self.shape, repeats)), axes, self.base)

    def take(self, axis: int, positions: Affine) -> Affine | None:
        """Select along `axis` the positions an affine map over an index tensor gives (slices, gathers)."""
        subs = _merged(self.axes[axis])
        if positions.numel == 0 or len(subs) > 1:
            return None
        stride = subs[0][1] if subs else 0
        new_axes = tuple(tuple((size, s * stride) for size, s in a) for a in positions.axes)
        return Affine(self.shape[:axis] + positions.shape + self.shape[axis + 1:],
                      self.axes[:axis] + new_axes + self.axes[axis + 1:], self.base + positions.base * stride)

    # -- explicit maps -----------------------------------------------------------------------------------
    def materialize(self) -> np.ndarray:
        m = np.full((), self.base, dtype=np.int64)
        for ax, subs in enumerate(self.axes):
            contrib = np.zeros((1,), dtype=np.int64)
            for size, stride in subs:
                contrib = (contrib[:, None] + np.arange(size, dtype=np.int64)[None, :] * stride).reshape(-1)
            shape = [1] * len(self.shape)
            shape[ax] = self.shape[ax]
            m = m + contrib.reshape(shape)
        return np.ascontiguousarray(np.broadcast_to(m, self.shape))

    @staticmethod
    def from_map(m: np.ndarray) -> Affine | None:
        """The affine form of an explicit map, or None if it has none (a reversal, a shuffle)."""
        if m.size == 0:
            return None
        base = int(m.reshape(-1)[0])
        axes = []
        for ax in range(m.ndim):
            line = m[tuple(slice(None) if i == ax else 0 for i in range(m.ndim))]
            subs = _factor(line - base)
            if subs is None:
                return None
            axes.append(tuple(subs))
        found = Affine(tuple(int(d) for d in m.shape), tuple(axes), base)
        return found.normalized() if np.array_equal(found.materialize(), m) else None


def _divisors_desc(n: int) -> list[int]:
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]), reverse=True)


def _factor(d: np.ndarray) -> list[SubAxis] | None:
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
