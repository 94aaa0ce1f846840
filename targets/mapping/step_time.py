"""How long one step of the block walk lasts: the block's product against the busiest memory port, with the
transfers present in only some steps of a kind counted by their share (an expectation over which are present).

`steps.StepWalk` sums these over the kinds of step of a loop nest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from aalbert.targets.mapping.operands import Operand

if TYPE_CHECKING:
    from aalbert.targets.mapping.steps import LoopNest, Transition

BLOCK_LOOPS = 4  # loops 0..3 of a nest are block loops (inside a stage tile), 4..7 the stage loops


@dataclass(frozen=True)
class StageSlice:
    """A staged operand's share of the steps: the slice of a stage tile one step moves on the home's port.

    dur = latency + total / tiles / max(steps_per_tile - 1, 1) / bandwidth (staged, more than one tile)"""

    level: str                     # the home's port
    dur: np.ndarray                # cycles of one slice
    one: np.ndarray                # bool: a tile is one block, so a whole tile moves in that block's step
    later: np.ndarray              # (tiles - 1) / tiles: the share of tiles that have a next (or previous) one


@dataclass(frozen=True)
class PerStep:
    """What every step of a candidate carries, whichever its kind."""

    compute: np.ndarray            # compute / n: one block's product
    stream: dict[str, np.ndarray]  # a, w: stream / n bytes read from memory while the product runs
    slices: dict[str, StageSlice]  # per staged operand
    fill_drain: float              # R + C: the array's fill and drain, paid in the first step


@dataclass(frozen=True)
class Prefetch:
    """A double-buffered operand's next block arrives in slices over the steps its current block is in use:
    run = n / fills steps per block, a slice of block / run bytes in the steps that have a next block, a share
    (n - run) / max(n - 1, 1) of the steps."""

    dur: np.ndarray
    share: np.ndarray


class PortLoad:
    """Cycles each port (memory level) is busy in one step, transfers one after another on a port: `busy` ones
    overlap the block's product, `serial` ones (fills into an only slot) start when it ends."""

    def __init__(self) -> None:
        self.busy: dict[str, np.ndarray] = {}
        self.serial: dict[str, np.ndarray] = {}

    def add(self, op: Operand, dur: np.ndarray, serial: bool = False) -> None:
        """`dur` on the port of `op`'s transfers: its staging level when staged, else its home; `serial`: after
        the product (the port counts as used, for nothing, before it)."""
        for level, share in ((op.home, ~op.staged), (op.via, op.staged)):
            if level is None:
                continue
            part = np.where(share, dur, 0.0)
            if serial:
                self.busy[level] = self.busy.get(level, 0.0) + np.zeros_like(part)
                self.serial[level] = self.serial.get(level, 0.0) + part
            else:
                self.busy[level] = self.busy.get(level, 0.0) + part

    def finish(self, product: np.ndarray, extra: dict[str, np.ndarray]) -> np.ndarray:
        """The step's cycles with `extra` transfers on some ports:
        max(product, busy + extra of every port, max(product, busy + extra) + serial of every port)."""
        t = product
        for lv in set(self.busy) | set(extra):
            t = np.maximum(t, self.busy.get(lv, 0.0) + extra.get(lv, 0.0))
        for lv, v in self.serial.items():
            t = np.maximum(t, np.maximum(product, self.busy.get(lv, 0.0) + extra.get(lv, 0.0)) + v)
        return t


class StepTimer:
    """The cycles of the steps of one loop nest. step(before, after) is a step between a transition of loop
    `before` and one of loop `after` (None: the first or the last step): it runs its block's product while the
    ports serve what block i streams, block i+1's fills and partial sums, block i-1's drain and bias slice
    (`PortLoad`). Transfers present in some steps of a kind only (stage tile slices, slices of a double-buffered
    operand's next block) count by their share s: the expected time over which of them are present,
    sum over subsets S of prod_{x in S} s_x prod_{x not in S} (1 - s_x) finish(S)."""

    def __init__(self, model, nest: LoopNest, moves: list[Transition], per_step: PerStep,
                 prefetch: dict[str, Prefetch]):
        self.model, self.nest, self.moves, self.per_step, self.prefetch = model, nest, moves, per_step, prefetch

    def step(self, before: int | None, after: int | None, extra: float = 0.0) -> np.ndarray:
        """Expected cycles of such a step; `extra` cycles of the array on top of its product."""
        optional = self._optional(before, after)
        certain: dict[str, np.ndarray] = {}
        uncertain = []
        for parts, share in optional:  # a transfer in every step of the kind is a plain one; in none, nothing
            share = np.broadcast_to(np.asarray(share, dtype=float), (self.model.size,))
            if share.min() >= 1.0:
                for lv, d in parts.items():
                    certain[lv] = certain.get(lv, 0.0) + d
            elif share.max() > 0.0:
                uncertain.append((parts, share))
        return _expected(self._load(before, after), self.per_step.compute + extra, certain, uncertain)

    def _load(self, before: int | None, after: int | None) -> PortLoad:
        """The transfers of every step of the kind, in port order: per input its stream, then its fill into an
        only slot; the output's reload; the previous block's drain, and its bias slice on the bias's port."""
        m, load = self.model, PortLoad()
        prev = self.moves[before] if before is not None else None
        nxt = self.moves[after] if after is not None else None
        for op in ("a", "w"):
            load.add(m.ops[op], m.duration(op, self.per_step.stream[op], "stream"))
            if nxt is not None:
                load.add(m.ops[op], m.duration(op, nxt.serial[op], "fill"), serial=True)
        if nxt is not None:
            load.add(m.ops["o"], m.duration("o", nxt.reload, "reload"))
        if prev is not None:
            load.add(m.ops["o"], m.duration("o", prev.drain_final + prev.drain_psum, "drain"))
            g = m.g
            if g.bias_home is not None and g.bias_bytes:
                port = m.arch.ports[g.bias_home]
                dur = np.where(prev.bias > 0, port.latency + prev.bias / min(m.arch.dma_bw, port.read_bw), 0.0)
                load.busy[g.bias_home] = load.busy.get(g.bias_home, 0.0) + dur
        return load

    def _optional(self, before: int | None, after: int | None) -> list[tuple[dict, np.ndarray]]:
        """(cycles per port, share of the steps): stage tile slices, spread over the steps inside a tile (a whole
        tile in the one step of a one-block tile, which a stage loop's transition follows); slices of the
        double-buffered operands' next blocks."""
        optional = []
        for op, sl in self.per_step.slices.items():
            block_level = before if op == "o" else after
            if block_level is None:
                continue
            share = np.where(sl.one, 1.0, sl.later if block_level < BLOCK_LOOPS else 0.0)
            optional.append(({sl.level: sl.dur}, share))
        if after is not None:
            for op in ("a", "w"):
                pf = self.prefetch[op]
                if not pf.share.any():
                    continue
                x = self.model.ops[op]
                parts = {x.home: np.where(x.staged, 0.0, pf.dur)}
                if x.via is not None:
                    parts[x.via] = parts.get(x.via, 0.0) + np.where(x.staged, pf.dur, 0.0)
                optional.append((parts, pf.share))
        return optional


def _expected(load: PortLoad, product: np.ndarray, certain: dict[str, np.ndarray], uncertain: list) -> np.ndarray:
    """sum over the subsets of `uncertain` present of their probability x the step's cycles with them."""
    total: np.ndarray | float = 0.0
    for present in itertools.product((False, True), repeat=len(uncertain)):
        weight = 1.0
        extra = dict(certain)
        for on, (parts, share) in zip(present, uncertain):
            weight = weight * (share if on else 1 - share)
            if on:
                for lv, d in parts.items():
                    extra[lv] = extra.get(lv, 0.0) + d
        total = total + weight * load.finish(product, extra)
    return cast(np.ndarray, total)  # the loop runs at least once (the empty subset)
