"""Lifetime queries over program positions, in n log n: what activation planning and its verifier ask.

A buffer lives over a closed span of positions `[start, end]` (positions run
from -1, the graph inputs, to the number of nodes, the graph outputs).

- `LiveIndex` holds placed buffers and answers "which of them are alive at
  some point of this span" in O(log n + answers): the ones alive at the
  span's first position (a segment tree of spans, stabbed at that point) plus
  the ones that start inside it (a sorted list of starts).
- `first_overlap` finds two boxes (a byte range and a span) that overlap in
  both, or None, by sweeping the spans in position order and keeping the
  byte ranges alive at each position in address order: while none overlap,
  a new one can only overlap its two neighbours.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

from sortedcontainers import SortedList

T = TypeVar("T")


class LiveIndex(Generic[T]):
    """Buffers by lifetime span; spans are closed, positions in [lo, hi]."""

    def __init__(self, lo: int, hi: int):
        self.lo = lo
        self.size = 1
        while self.size < hi - lo + 1:
            self.size *= 2
        self.nodes: list[list[T] | None] = [None] * (2 * self.size)  # tree node -> spans covering it whole
        self.starts: SortedList = SortedList()    # (start, sequence number)
        self.items: list[T] = []

    def add(self, start: int, end: int, item: T) -> None:
        self.starts.add((start, len(self.items)))
        self.items.append(item)
        lo, hi = start - self.lo + self.size, end - self.lo + self.size + 1
        while lo < hi:  # the canonical nodes of [start, end]
            if lo & 1:
                self._hold(lo, item)
                lo += 1
            if hi & 1:
                hi -= 1
                self._hold(hi, item)
            lo >>= 1
            hi >>= 1

    def _hold(self, node: int, item: T) -> None:
        bucket = self.nodes[node]
        if bucket is None:
            self.nodes[node] = [item]
        else:
            bucket.append(item)

    def overlapping(self, start: int, end: int) -> list[T]:
        """The buffers alive at some position of [start, end]."""
        found: list[T] = []
        nodes = self.nodes
        node = start - self.lo + self.size
        while node:  # alive at `start`: every node on the leaf's path to the root
            bucket = nodes[node]
            if bucket is not None:
                found += bucket
            node >>= 1
        for _, i in self.starts.irange((start + 1, -1), (end, len(self.items))):
            found.append(self.items[i])
        return found


def first_overlap(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """Indices of two boxes `(offset, nbytes, start, end)` that share bytes and positions, or None."""
    alive = SortedList()               # (offset, box) of the boxes alive at the sweep's position: disjoint
    ending: list[tuple[int, int]] = []  # a heap of (end, box) of the alive boxes
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][2]):
        offset, nbytes, start, end = boxes[i]
        if nbytes <= 0:  # holds no bytes: overlaps nothing
            continue
        while ending and ending[0][0] < start:
            _, j = heapq.heappop(ending)
            alive.remove((boxes[j][0], j))
        # the alive boxes are disjoint, so only the neighbours in address order can overlap a new one
        k = alive.bisect_left((offset, -1))
        if k < len(alive) and alive[k][0] < offset + nbytes:
            return alive[k][1], i
        if k and boxes[alive[k - 1][1]][0] + boxes[alive[k - 1][1]][1] > offset:
            return alive[k - 1][1], i
        alive.add((offset, i))
        heapq.heappush(ending, (end, i))
    return None
