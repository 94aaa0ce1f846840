"""The step walk of the cost model: the loop nest of each innermost block loop, the transfers at each kind of
transition, and the steps' cycles summed in closed form over the step kinds (each kind's cycles are
`step_time.StepTimer`'s); the prologue and epilogue; and the cheap lower bound on cycles the search prunes with.

`StepWalk` is the part of `cost.Model` that times the blocks; `Model` supplies the operands (`operands.Operand`:
homes, the levels they pass through, sizes), the block grid, and each transfer's duration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.targets.mapping.loops import DIMS, STAGE_LOOPS, block_loops
from aalbert.targets.mapping.operands import Blocks, Operand, inputs_of
from aalbert.targets.mapping.problem import Arch, Gemm
from aalbert.targets.mapping.step_time import PerStep, Prefetch, StageSlice, StepTimer


@dataclass(frozen=True)
class LoopNest:
    """The loops around the block steps for one innermost block loop, innermost first: the block loops (counts
    blocks.inner[d], `loops.block_loops`), then the stage loops m, k, n, b (counts blocks.tiles[d]).

        outer[p] = prod_{q > p} counts[q]           how often loop p runs through all its iterations
        trans[p] = (counts[p] - 1) outer[p]         transitions at which loop p advances (those inside restart)
        changed[p][d]                               d's index changes there: d is loop p's or that of a loop
                                                    inside it that runs more than once
        k_out[p] = prod_{q > p, dims[q] = k} counts[q]   an output block left there is final once in k_out[p]
        first                                       the innermost loop with counts > 1 (len(counts) if none)
        keep                                        partial sums stay in the accumulators: the first loop is a
                                                    reduction and an output block fits them"""

    dims: list[str]
    counts: list[np.ndarray]
    outer: list[np.ndarray]
    trans: list[np.ndarray]
    changed: list[dict[str, np.ndarray]]
    k_out: list[np.ndarray]
    first: np.ndarray
    keep: np.ndarray

    @classmethod
    def of(cls, order: str, blocks: Blocks, keep_fits: np.ndarray) -> LoopNest:
        """The nest whose innermost block loop is `order` (the quantities above)."""
        loops = [(d, blocks.inner[d]) for d in block_loops(order)] + \
            [(d, blocks.tiles[d].astype(float)) for d in STAGE_LOOPS]
        dims, counts = [d for d, _ in loops], [cnt for _, cnt in loops]
        size, P = len(blocks.n), len(loops)
        outer = _outer(counts, size)
        trans = [(counts[p] - 1) * outer[p] for p in range(P)]
        k_out = [_product([counts[q] for q in range(p + 1, P) if dims[q] == "k"], size) for p in range(P)]
        first = np.full(size, P, dtype=int)
        for p in range(P - 1, -1, -1):
            first = np.where(counts[p] > 1, p, first)
        k_first = np.zeros(size, dtype=bool)
        for p in range(P):
            k_first |= (first == p) & (dims[p] == "k")
        return cls(dims, counts, outer, trans, _changed(dims, counts, size), k_out, first, k_first & keep_fits)

    def changes(self, dims: frozenset[str], p: int) -> np.ndarray:
        """Whether a block over `dims` changes at a transition of loop p: any of changed[p][d], d in dims."""
        out = np.zeros(len(self.first), dtype=bool)
        for d in dims:
            out |= self.changed[p][d]
        return out


def _product(factors: list[np.ndarray], size: int) -> np.ndarray:
    """1 x factors[0] x factors[1] x ..., in that order."""
    prod = np.ones(size)
    for f in factors:
        prod = prod * f
    return prod


def _outer(counts: list[np.ndarray], size: int) -> list[np.ndarray]:
    """outer[p] = 1 x counts[P-1] x counts[P-2] x ... x counts[p+1]."""
    outer = [np.ones(size)] * len(counts)
    acc = np.ones(size)
    for p in range(len(counts) - 1, -1, -1):
        outer[p] = acc
        acc = acc * counts[p]
    return outer


def _changed(dims: list[str], counts: list[np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    """changed[p][d]: d = dims[p], or d = dims[q] for some q < p with counts[q] > 1."""
    changed = []
    for p in range(len(dims)):
        now = {d: np.zeros(size, dtype=bool) for d in DIMS}
        now[dims[p]] = np.ones(size, dtype=bool)
        for q in range(p):
            now[dims[q]] = now[dims[q]] | (counts[q] > 1)
        changed.append(now)
    return changed


@dataclass(frozen=True)
class Transition:
    """The transfers at one transition of loop p, bytes per transition; with final = 1 / k_out[p] the share of
    them after which the output block is complete (0 when p is a reduction loop), revisit = 1 - final:

        fill[x]     = block(x) if x is fetched and changes at p                (x = a, w)
        serial[x]   = fill[x] if x has one slot (the fill waits for the current block's product)
        reload      = out_elems psum revisit if o changes, else out_elems psum unless kept in the accumulators
        drain_final = out_elems o_elem final if o changes
        drain_psum  = out_elems psum (1 - final) if o changes, else out_elems psum unless kept
        bias        = bias_slice final if o changes

    fill, serial and reload are the next block's (after the transition), the rest the previous block's."""

    fill: dict[str, np.ndarray]
    serial: dict[str, np.ndarray]
    reload: np.ndarray
    drain_final: np.ndarray
    drain_psum: np.ndarray
    bias: np.ndarray


@dataclass
class Traffic:
    """Bytes the block transfers move between the memories (an operand's home, or its staging region) and the
    array over the whole product, per kind: sums over the loop nest's transitions (`Transition`)."""

    fill: dict[str, np.ndarray]        # a, w: blocks fetched into a buffer or the PE registers
    drain_final: np.ndarray            # final outputs written
    drain_psum: np.ndarray             # partial sums written (their reduction not complete)
    reload: np.ndarray                 # partial sums read back
    bias: np.ndarray                   # bias read with the final output blocks
    acc_keep: np.ndarray               # accumulator accesses (not bytes) of partial sums kept across reduction blocks

    @classmethod
    def zeros(cls, size: int) -> Traffic:
        """No traffic yet, for `size` candidates."""
        return cls({"a": np.zeros(size), "w": np.zeros(size)}, np.zeros(size), np.zeros(size), np.zeros(size),
                   np.zeros(size), np.zeros(size))


class StepWalk:
    """Transfers and timing of the block steps; mixed into `cost.Model`, which supplies what is declared here."""

    g: Gemm
    arch: Arch
    size: int                       # candidates
    ops: dict[str, Operand]         # a, w, o
    blocks: Blocks
    keep_fits: np.ndarray           # an output block fits the accumulators

    def duration(self, op: str, nbytes, kind: str) -> np.ndarray:
        raise NotImplementedError

    def _walk(self, order: str, sel: np.ndarray, traffic: Traffic, steps_time: np.ndarray,
              per_step: PerStep | None) -> None:
        """Adds to `traffic` and `steps_time` (rows `sel`) those of the candidates whose innermost block loop is
        `order`; the step times only with `per_step` (exact cycles)."""
        nest = LoopNest.of(order, self.blocks, self.keep_fits)
        moves = [self._transition(nest, p) for p in range(len(nest.dims))]
        self._count(nest, moves, sel, traffic)
        if per_step is None:
            return
        timer = StepTimer(self, nest, moves, per_step, self._prefetch(nest))
        steps_time += np.where(sel, self._steps(nest, timer), 0.0)

    def _transition(self, nest: LoopNest, p: int) -> Transition:
        """The transfers at a transition of loop p (see `Transition`)."""
        (a, w), o, g = inputs_of(self.ops), self.ops["o"], self.g
        out, psum, keep = self.blocks.out_elems, g.psum_elem, nest.keep
        final, revisit = (0.0, 1.0) if nest.dims[p] == "k" else (1.0 / nest.k_out[p], 1.0 - 1.0 / nest.k_out[p])
        och = nest.changes(o.dims, p)
        fill = {x.name: np.where(x.fetched & nest.changes(x.dims, p), x.block, 0.0) for x in (a, w)}
        serial = {x.name: np.where(x.fetched & nest.changes(x.dims, p) & x.one_slot, x.block, 0.0) for x in (a, w)}
        reload = np.where(och, out * psum * revisit, np.where(keep, 0.0, out * psum))
        return Transition(fill, serial, reload, np.where(och, out * g.o_elem * final, 0.0),
                          np.where(och, out * psum * (1 - final), np.where(keep, 0.0, out * psum)),
                          np.where(och, self.blocks.bias_slice * final, 0.0))

    def _count(self, nest: LoopNest, moves: list[Transition], sel: np.ndarray, traffic: Traffic) -> None:
        """traffic += sum_p trans[p] x (the transfers of a transition of p), plus the first block's fills, the
        last block's drain and bias slice, and the accumulator accesses of kept partial sums (2 out_elems n)."""
        for t, m in zip(nest.trans, moves):
            traffic.fill["a"] += np.where(sel, t * m.fill["a"], 0.0)
            traffic.fill["w"] += np.where(sel, t * m.fill["w"], 0.0)
            traffic.reload += np.where(sel, t * m.reload, 0.0)
            traffic.drain_final += np.where(sel, t * m.drain_final, 0.0)
            traffic.drain_psum += np.where(sel, t * m.drain_psum, 0.0)
            traffic.bias += np.where(sel, t * m.bias, 0.0)
        b = self.blocks
        for x in inputs_of(self.ops):
            traffic.fill[x.name] += np.where(sel & x.fetched, x.block, 0.0)
        traffic.drain_final += np.where(sel, b.out_elems * self.g.o_elem, 0.0)
        traffic.bias += np.where(sel, b.bias_slice, 0.0)
        traffic.acc_keep += np.where(sel & nest.keep, 2 * b.out_elems * b.n, 0.0)

    def _prefetch(self, nest: LoopNest) -> dict[str, Prefetch]:
        """Per input, fills = 1 + sum_p trans[p] [it changes at p] blocks fetched (see `Prefetch`)."""
        n, out = self.blocks.n, {}
        for x in inputs_of(self.ops):
            fills = 1.0 + sum(nest.trans[p] * nest.changes(x.dims, p) for p in range(len(nest.dims)))
            double = x.fetched & ~x.one_slot
            run = n / fills
            out[x.name] = Prefetch(np.where(double, self.duration(x.name, x.block / run, "fill"), 0.0),
                                   np.where(double, (n - run) / np.maximum(n - 1, 1), 0.0))
        return out

    def _steps(self, nest: LoopNest, timer: StepTimer) -> np.ndarray:
        """The cycles of all steps, by kind. With q the first loop that runs (`LoopNest.first`), between
        transitions of q run counts[q] - 2 steps outer[q] times; a transition of an outer loop p comes between
        a step after q's and one before q's, trans[p] times:

            first(q) + last(q) + outer[q] max(counts[q] - 2, 0) mid(q, q) + sum_{p > q} trans[p] (mid(q, p) + mid(p, q))

        the first step with the array's fill and drain; one block alone: a step with neither before nor after."""
        P, size, counts = len(nest.dims), self.size, nest.counts
        fill_drain = timer.per_step.fill_drain
        i0 = np.clip(nest.first, 0, P - 1)
        total = np.zeros(size)
        for q in range(P):
            is_q = i0 == q
            if not is_q.any() or not (counts[q] > 1).any():
                continue
            first, last, mid = timer.step(None, q, fill_drain), timer.step(q, None), timer.step(q, q)
            t = first + last + nest.outer[q] * np.maximum(counts[q] - 2, 0) * mid
            for p in range(q + 1, P):
                if (counts[p] > 1).any():
                    t = t + nest.trans[p] * (timer.step(q, p) + timer.step(p, q))
            total = np.where(is_q, t, total)
        return np.where(self.blocks.n <= 1, timer.step(None, None, fill_drain), total)

    def _per_step(self, compute: np.ndarray) -> PerStep:
        """What every step carries (see `PerStep`), and per staged operand its slices (see `StageSlice`): the next
        tile of a or w arrives in slices over all but the last step of the current tile; the last tile of o
        leaves in slices over all but the first step of the next (a whole tile per step when a tile is one
        block)."""
        n, tiles, ports, slices = self.blocks.n, self.blocks.stage_tiles, self.arch.ports, {}
        steps = n / tiles
        for x in self.ops.values():
            if x.via is None:
                continue
            piece = x.total / tiles / np.maximum(steps - 1, 1)
            bw = min(self.arch.dma_bw, ports[x.home].read_bw, ports[x.via].write_bw) if x.name != "o" else \
                min(self.arch.dma_bw, ports[x.via].read_bw, ports[x.home].write_bw)
            slices[x.name] = StageSlice(x.home, np.where(x.staged & (tiles > 1), ports[x.home].latency + piece / bw,
                                                         0.0), steps <= 1, (tiles - 1) / tiles)
        stream = {x.name: x.stream / n for x in inputs_of(self.ops)}
        return PerStep(compute / n, stream, slices, float(self.arch.rows + self.arch.cols))

    def _bound(self, compute: np.ndarray, traffic: Traffic) -> np.ndarray:
        """A lower bound of the cycles: max(compute + R + C, each port's bytes / its best bandwidth + its latency
        once per transfer), the transfers per operand on its home or, staged, its staging level; the stage
        tiles' and the bias's on their home, counted as one."""
        (a, w), o = inputs_of(self.ops), self.ops["o"]
        n = self.blocks.n
        per: dict[str, np.ndarray] = {}
        o_moved = traffic.drain_final + traffic.drain_psum + traffic.reload
        o_block = self.blocks.out_elems * self.g.psum_elem
        for x, nbytes, count in ((a, traffic.fill["a"] + a.stream,
                                  traffic.fill["a"] / a.block + np.where(a.stream > 0, n, 0.0)),
                                 (w, traffic.fill["w"] + w.stream,
                                  traffic.fill["w"] / w.block + np.where(w.stream > 0, n, 0.0)),
                                 (o, o_moved, o_moved / np.maximum(o_block, 1e-9))):
            self._busy(per, x.home, np.where(x.staged, 0.0, nbytes), count)
            if x.via is not None:
                self._busy(per, x.via, np.where(x.staged, nbytes, 0.0), count)
        for x in (a, w, o):
            if x.via is not None:
                self._busy(per, x.home, x.staging, 1.0)
        if self.g.bias_home is not None and self.g.bias_bytes:
            self._busy(per, self.g.bias_home, traffic.bias, 1.0)
        bound = compute + self.arch.rows + self.arch.cols
        for v in per.values():
            bound = np.maximum(bound, v)
        return bound

    def _busy(self, per: dict[str, np.ndarray], level: str, nbytes: np.ndarray, count) -> None:
        """per[level] += nbytes / min(dma, max(read, write bandwidth)) + count x latency (when nbytes > 0)."""
        p = self.arch.ports[level]
        per[level] = per.get(level, 0.0) + nbytes / min(self.arch.dma_bw, max(p.read_bw, p.write_bw)) \
            + np.where(nbytes > 0, count * p.latency, 0.0)

    def _prologue(self) -> np.ndarray:
        """The first stage tiles (the slowest, latency + its share total / tiles of the staged bytes) and then the
        first blocks' fills (the busiest port)."""
        ports, tiles = self.arch.ports, self.blocks.stage_tiles
        first_stage = np.zeros(self.size)
        for x in (self.ops["a"], self.ops["w"]):
            if x.via is None:
                continue
            bw = min(self.arch.dma_bw, ports[x.home].read_bw, ports[x.via].write_bw)
            first_stage = np.maximum(first_stage, np.where(x.staged, ports[x.home].latency + x.staging / tiles / bw,
                                                           0.0))
        busy: dict[str, np.ndarray] = {}
        for x in inputs_of(self.ops):
            dur = self.duration(x.name, np.where(x.fetched, x.block, 0.0), "fill")
            level = np.where(x.staged, 1, 0)
            for lv, which in ((x.home, 0), (x.via, 1)):
                if lv is not None:
                    busy[lv] = busy.get(lv, 0.0) + np.where(level == which, dur, 0.0)
        return first_stage + (np.maximum.reduce(list(busy.values())) if busy else 0.0)

    def _epilogue(self) -> np.ndarray:
        """The last block's drain (after its bias slice when both use one port, else alongside it), then the last
        stage tile of o (latency + total / tiles)."""
        g, o, ports = self.g, self.ops["o"], self.arch.ports
        last = self.duration("o", np.full(self.size, self.blocks.out_elems * g.o_elem), "drain")
        if g.bias_bytes and g.bias_home is not None:
            port = ports[g.bias_home]
            bias_t = port.latency + (self.blocks.bias_slice + np.zeros(self.size)) / min(self.arch.dma_bw,
                                                                                        port.read_bw)
            o_port_staged = o.staged & (o.via == g.bias_home)
            o_port_home = ~o.staged & (o.home == g.bias_home)
            last = np.where(o_port_staged | o_port_home, last + bias_t, np.maximum(last, bias_t))
        if o.via is not None:
            bw = min(self.arch.dma_bw, ports[o.via].read_bw, ports[o.home].write_bw)
            last = last + np.where(o.staged, ports[o.home].latency + o.staging / self.blocks.stage_tiles / bw, 0.0)
        return last
