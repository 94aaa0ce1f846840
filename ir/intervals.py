"""Lifetime queries over program positions, in n log n: what activation planning and its verifier ask.

A buffer lives over a closed span of positions `[start, end]` (positions run
from -1, the graph inputs, to the number of nodes, the graph outputs).

- `LiveIndex` holds placed buffers and answers "which of them are alive at
  some point of this span" in O(log n + answers): the ones alive at the
  span's first position (a segment tree of spans, stabbed at that point) plus
  the ones that start inside it (a sorted list of starts).
- `first_overlap` finds two boxes (a byte range and a span) that overlap in
  both, or None, by sweeping the byte ranges in address order and keeping
  the open ones in a segment tree of their spans' latest end by start.
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
        self.nodes: dict[int, list[T]] = {}        # segment tree node -> spans covering it whole
        self.starts: SortedList = SortedList()    # (start, sequence number)
        self.items: list[T] = []

    def add(self, start: int, end: int, item: T) -> None:
        self.starts.add((start, len(self.items)))
        self.items.append(item)
        lo, hi = start - self.lo + self.size, end - self.lo + self.size + 1
        while lo < hi:  # the canonical nodes of [start, end]
            if lo & 1:
                self.nodes.setdefault(lo, []).append(item)
                lo += 1
            if hi & 1:
                hi -= 1
                self.nodes.setdefault(hi, []).append(item)
            lo //= 2
            hi //= 2

    def overlapping(self, start: int, end: int) -> list[T]:
        """The buffers alive at some position of [start, end]."""
        found: list[T] = []
        node = start - self.lo + self.size
        while node:  # alive at `start`: every node on the leaf's path to the root
            found += self.nodes.get(node, ())
            node //= 2
        for _, i in self.starts.irange((start + 1, -1), (end, len(self.items))):
            found.append(self.items[i])
        return found


class _LatestEnd:
    """Open spans by start position; the latest end among those starting at or before a position."""

    def __init__(self, lo: int, hi: int):
        self.lo = lo
        self.size = 1
        while self.size < hi - lo + 1:
            self.size *= 2
        self.best: list[tuple[int, int]] = [(-(1 << 62), -1)] * (2 * self.size)   # (end, box index)
        self.at: dict[int, list[tuple[int, int]]] = {}

    def _set(self, start: int) -> None:
        leaf = start - self.lo + self.size
        spans = self.at.get(start, [])
        self.best[leaf] = max(spans) if spans else (-(1 << 62), -1)
        leaf //= 2
        while leaf:
            self.best[leaf] = max(self.best[2 * leaf], self.best[2 * leaf + 1])
            leaf //= 2

    def add(self, start: int, end: int, index: int) -> None:
        self.at.setdefault(start, []).append((end, index))
        self._set(start)

    def remove(self, start: int, end: int, index: int) -> None:
        self.at[start].remove((end, index))
        self._set(start)

    def latest(self, upto: int) -> tuple[int, int]:
        """(end, box) of the open span with the latest end among those starting at or before `upto`."""
        lo, hi = self.size, upto - self.lo + self.size + 1
        best = (-(1 << 62), -1)
        while lo < hi:
            if lo & 1:
                best = max(best, self.best[lo])
                lo += 1
            if hi & 1:
                hi -= 1
                best = max(best, self.best[hi])
            lo //= 2
            hi //= 2
        return best


def first_overlap(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int] | None:
    """Indices of two boxes `(offset, nbytes, start, end)` that share bytes and positions, or None."""
    if not boxes:
        return None
    lo = min(b[2] for b in boxes)
    hi = max(b[3] for b in boxes)
    open_spans = _LatestEnd(lo, hi)
    closing: list[tuple[int, int]] = []  # a heap of (byte end, box) of the open boxes

    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][0]):
        offset, nbytes, start, end = boxes[i]
        if nbytes <= 0:  # holds no bytes: overlaps nothing
            continue
        while closing and closing[0][0] <= offset:
            _, j = heapq.heappop(closing)
            open_spans.remove(boxes[j][2], boxes[j][3], j)
        latest_end, j = open_spans.latest(end)
        if j >= 0 and latest_end >= start:
            return j, i
        open_spans.add(start, end, i)
        heapq.heappush(closing, (offset + nbytes, i))
    return None

