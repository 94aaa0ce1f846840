"""The analytic cost model of a mapped matrix product: access counts, energy and latency.

Evaluated on many candidate mappings at once (numpy columns) by `evaluate`,
and on one by `cost_of`. The same equations give the search's objective, the
allocator's cost of every placement option, and the program the lowering
emits (which the simulator then times and charges transfer by transfer).

The blocks of a product are visited in loop order: the block loops (the
innermost `order`, then the other two in m, k, n order, then the batch),
inside the stage loops (m, k, n, b) when an operand is staged. Between two
blocks one loop advances and every loop inside it restarts. An operand's block
is fetched again when a dimension it depends on changed; an output block is
drained when it changes (final, or partial sums when its reduction is not
complete) and reloaded when a block with partial sums comes back. Partial sums
stay in the accumulators across a run of reduction blocks when the block fits.

Step i runs block i's product on the array while the ports serve, one
transfer after another on each port: the fills of block i+1, the drain of
block i-1, what block i streams from memory (an operand without a buffer), a
slice of the next stage tile. A step lasts max(compute, the busiest port's
transfers). Steps are of a few kinds (which loop advanced before and after
them), counted in closed form; the first fills (prologue) and the last drain
(epilogue) come on top, and the array's fill and drain (rows + columns) once.

Energy: MACs at the format's energy; per MAC the PE registers, plus every
stationary value written into them; every byte in and out of a memory, an
operand or mask buffer, the accumulators; every byte a transfer moves over
the interconnect; a level data only passes through (DRAM -> SRAM -> array)
costs a write and a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from aalbert.targets.mapping.capacity import fits
from aalbert.targets.mapping.columns import Candidates
from aalbert.targets.mapping.loops import ORDERS, STAGE_BYTES, STAGE_DIMS
from aalbert.targets.mapping.operands import Operand, array_of, blocks_of, inputs_of, operands_of
from aalbert.targets.mapping.problem import Arch, Gemm
from aalbert.targets.mapping.steps import StepWalk, Traffic


@dataclass
class Costs:
    """Every candidate's figures, arrays over the candidates (a figure alike for all may be a scalar)."""

    feasible: np.ndarray               # the hardware can run it (`capacity.fits`)
    energy: dict[str, np.ndarray]      # component -> pJ
    reads: dict[str, np.ndarray]       # storage (memory level, buf, mask, aux) -> bytes read
    writes: dict[str, np.ndarray]
    acc_accesses: np.ndarray
    reg_fills: np.ndarray              # stationary values written into the PE registers
    noc_bytes: np.ndarray              # bytes moved over the interconnect (a pass through a level twice)
    cycles: np.ndarray
    staged_bytes: np.ndarray           # bytes it needs in `stage_level` while it runs
    stage_level: str | None

    @property
    def total_pj(self) -> np.ndarray:
        """The dynamic energy: the sum of the components, in their order."""
        return cast(np.ndarray, sum(self.energy.values()))  # never empty: not sum's 0


class LevelBytes:
    """Bytes read from and written to each storage (memory level, `buf`, `mask`, `aux`), and moved over the
    interconnect."""

    def __init__(self) -> None:
        self.reads: dict[str, np.ndarray] = {}
        self.writes: dict[str, np.ndarray] = {}
        self.noc: np.ndarray | float = 0.0

    def read(self, where: str, nbytes) -> None:
        """reads[where] += nbytes."""
        self.reads[where] = self.reads.get(where, 0.0) + nbytes

    def write(self, where: str, nbytes) -> None:
        """writes[where] += nbytes."""
        self.writes[where] = self.writes.get(where, 0.0) + nbytes

    def carry(self, x: Operand, nbytes, toward_array: bool) -> None:
        """`nbytes` of x between the array and its staging level (staged) or its home: read there toward the
        array, written there from it; not staged, they pass the intermediate level too (written and read there);
        the interconnect carries them once per hop."""
        if x.via is None:
            (self.read if toward_array else self.write)(x.home, nbytes)
            self.noc = self.noc + nbytes
            return
        self.read(x.via, nbytes) if toward_array else self.write(x.via, nbytes)
        through = np.where(x.staged, 0.0, nbytes)
        if toward_array:
            self.write(x.via, through)
            self.read(x.home, through)
        else:
            self.read(x.via, through)
            self.write(x.home, through)
        self.noc = self.noc + nbytes + through


class Model(StepWalk):
    """The cost model of one product on one architecture, over candidate columns `c` (keyed by `loops.FIELDS`)."""

    def __init__(self, g: Gemm, arch: Arch, c: dict[str, np.ndarray]):
        self.g, self.arch, self.c = g, arch, c
        self.cand = Candidates.of(c)
        self.size = len(self.cand)
        self.blocks = blocks_of(g, self.cand)
        self.work = array_of(g, arch, self.cand)
        self.ops = operands_of(g, arch, self.cand, self.blocks, self.work)
        self.stage_level = next((x.via for x in self.ops.values() if x.via is not None), None)
        self.keep_fits = self.blocks.out_elems <= arch.acc_entries   # an output block fits the accumulators
        self._links: dict[tuple[str, bool], tuple] = {}

    # -- transfers ---------------------------------------------------------------------------------------------
    def duration(self, op: str, nbytes, kind: str):
        """Cycles of one transfer of `nbytes` of `op` (fill, stream, drain or reload) on its port: latency +
        nbytes / bandwidth, none for no bytes; from its staging level when staged, else from its home (`_link`)."""
        key = (op, kind == "drain")
        if key not in self._links:
            self._links[key] = self._link(self.ops[op], kind == "drain")
        lat_d, bw_d, lat_s, bw_s = self._links[key]
        st = self.ops[op].staged
        if not st.any():
            return np.where(nbytes > 0, lat_d + nbytes / bw_d, 0.0)
        return np.where(nbytes > 0, np.where(st, lat_s + nbytes / bw_s, lat_d + nbytes / bw_d), 0.0)

    def _link(self, x: Operand, drain: bool) -> tuple[int, float, int, float]:
        """(latency, bandwidth) of a transfer straight from x's home (through its intermediate level), then from
        its staging level: the first port's latency; the least bandwidth of the DMA and every port on the way."""
        a, p = self.arch, self.arch.ports
        home, mid = x.home, x.via
        if not drain:
            direct = [p[home].read_bw] + ([p[mid].write_bw, p[mid].read_bw] if mid else [])
            from_stage = [p[mid].read_bw] if mid else [p[home].read_bw]
        else:
            direct = [p[home].write_bw] + ([p[mid].write_bw, p[mid].read_bw] if mid else [])
            from_stage = [p[mid].write_bw] if mid else [p[home].write_bw]
        return (p[home].latency, min([a.dma_bw] + direct), p[mid].latency if mid else p[home].latency,
                min([a.dma_bw] + from_stage))

    # -- the evaluation ------------------------------------------------------------------------------------------
    def run(self, exact: bool = True) -> Costs:
        """Every candidate's costs; with `exact` False its cycles are only a lower bound (the array's compute, or
        the bytes on its busiest port at that port's bandwidth), which is cheap: the search's bound.

        The loop nest of each candidate's order gives its traffic and steps (`StepWalk`); then bytes per level
        and energy; cycles = the steps + prologue + epilogue."""
        size, compute = self.size, self.work.compute
        traffic, steps_time = Traffic.zeros(size), np.zeros(size)
        per_step = self._per_step(compute) if exact else None
        for oi, order in enumerate(ORDERS):
            sel = self.cand.order == oi
            if sel.any():
                self._walk(order, sel, traffic, steps_time, per_step)
        b = self._memory_bytes(traffic)
        self._buffer_bytes(b, traffic)
        reg_fills, acc = self._reg_fills(traffic), self._acc_accesses(traffic)
        energy = self._energy(b, reg_fills, acc)
        ends = self._prologue() + self._epilogue()
        if exact:
            cycles = steps_time + ends
        else:
            cycles = np.maximum(ends + compute + self.arch.rows + self.arch.cols, self._bound(compute, traffic))
        return Costs(fits(self.g, self.arch, self.cand), energy, b.reads, b.writes, acc, reg_fills,
                     b.noc + np.zeros(size), cycles, self._staged_bytes(), self.stage_level)

    def _memory_bytes(self, traffic: Traffic) -> LevelBytes:
        """The memories' bytes: each input's fills and stream to the array, the output's drains from it and
        reloads to it (`LevelBytes.carry`); each staged operand once between home and staging level; the bias
        through the auxiliary buffer (written and read there)."""
        (a, w), o, g = inputs_of(self.ops), self.ops["o"], self.g
        b = LevelBytes()
        for x in (a, w):
            b.carry(x, traffic.fill[x.name] + x.stream, True)
        b.carry(o, traffic.drain_final + traffic.drain_psum, False)
        b.carry(o, traffic.reload, True)
        for x in (a, w):
            if x.via:
                b.read(x.home, x.staging)
                b.write(x.via, x.staging)
                b.noc = b.noc + x.staging
        if o.via:
            b.read(o.via, o.staging)
            b.write(o.home, o.staging)
            b.noc = b.noc + o.staging
        if g.bias_bytes and g.bias_home is not None:
            b.read(g.bias_home, traffic.bias)
            b.write("aux", traffic.bias)
            b.read("aux", traffic.bias)
            b.noc = b.noc + traffic.bias
        return b

    def _buffer_bytes(self, b: LevelBytes, traffic: Traffic) -> None:
        """The operand buffers: a buffered input's fills are written there and the array reads it there,
        (stationary ? visits : array_reads) x bytes per value; w's mask bits likewise, in the mask buffer when
        there is one."""
        g, (a, w) = self.g, inputs_of(self.ops)
        for x, nb in ((a, self.cand.a_bufs), (w, self.cand.w_bufs)):
            buffered = nb > 0
            vals = traffic.fill[x.name] * (g.w_elem / (g.w_elem + g.w_mask) if x.name == "w" and g.w_mask else 1.0)
            b.write("buf", np.where(buffered, vals, 0.0))
            reads = np.where(x.stationary, x.visits, x.array_reads)
            b.read("buf", np.where(buffered, reads * (g.a_elem if x.name == "a" else g.w_elem), 0.0))
            if x.name == "w" and g.w_mask:
                where = "mask" if self.arch.mask_bytes else "buf"
                b.write(where, np.where(buffered, traffic.fill["w"] - vals, 0.0))
                b.read(where, np.where(buffered, reads * g.w_mask, 0.0))

    def _reg_fills(self, traffic: Traffic) -> np.ndarray:
        """Stationary values written into the PE registers: held there, the values of its fills (fill bytes /
        bytes per value); else every block's values at each use (visits)."""
        g, (a, w), pe_hold = self.g, inputs_of(self.ops), self.cand.pe_hold
        return np.where(w.stationary, np.where(pe_hold, traffic.fill["w"] / (g.w_elem + g.w_mask), w.visits),
                        np.where(a.stationary, np.where(pe_hold, traffic.fill["a"] / g.a_elem, a.visits), 0.0))

    def _acc_accesses(self, traffic: Traffic) -> np.ndarray:
        """Accumulator accesses: a stationary tile in a buffer and more than one array tile of rows per block
        sums its row tiles there, b x streamed x columns x (2 k_rows - count[k]); plus the kept partial sums."""
        g, c, work = self.g, self.cand, self.work
        tile_acc = ~c.os & ~c.pe_hold & (work.rows > 1)
        stream_tot = np.where(c.ws, g.m, g.n)
        cols_tot = np.where(c.ws, g.n, g.m)
        acc = np.where(tile_acc, g.b * stream_tot * cols_tot * (2 * work.k_rows - self.blocks.count["k"]), 0.0)
        return acc + traffic.acc_keep

    def _energy(self, b: LevelBytes, reg_fills: np.ndarray, acc: np.ndarray) -> dict[str, np.ndarray]:
        """pJ per component: MACs x the format's energy (x density when gated); the PE registers per MAC plus per
        stationary value written; the accumulators per access; the interconnect per byte; every storage per byte
        read and written."""
        g, arch = self.g, self.arch
        gate = g.density if arch.gate_energy else 1.0
        energy = {"pe": np.full(self.size, g.macs * arch.mac_pj.get(g.fmt, 0.0) * gate),
                  "pe_regs": g.macs * arch.reg_per_mac_pj * gate + reg_fills * arch.reg_operand_pj,
                  "acc": acc * arch.acc_pj, "noc": b.noc * arch.noc_pj + np.zeros(self.size)}
        for name, nbytes in b.reads.items():
            energy[name] = energy.get(name, 0.0) + nbytes * _pj(arch, name, "read")
        for name, nbytes in b.writes.items():
            energy[name] = energy.get(name, 0.0) + nbytes * _pj(arch, name, "write")
        return energy

    def _staged_bytes(self) -> np.ndarray:
        """Bytes needed in the staging level: the staged operand's tile twice (prod of its tile extents x bytes
        per value), and two blocks of every operand passing through it unstaged."""
        g, size = self.g, self.size
        tile_bytes = np.zeros(size)
        for x in self.ops.values():
            elems = np.ones(size)
            for d in STAGE_DIMS[x.name](g):
                elems = elems * self.cand.tile[d]
            tile_bytes = np.where(x.staged, elems * STAGE_BYTES[x.name](g), tile_bytes)
        staged_bytes = 2 * tile_bytes
        for x in self.ops.values():
            if x.via is not None:
                per_block = x.block if x.name != "o" else self.blocks.out_elems * max(g.o_elem, g.psum_elem)
                staged_bytes = staged_bytes + np.where(x.staged, 0.0, 2 * per_block)
        return staged_bytes


def _pj(arch: Arch, name: str, how: str) -> float:
    """pJ per byte read (`how` "read") or written at storage `name`: a buffer of the array or a memory level."""
    if name == "buf":
        return arch.buffer_read_pj if how == "read" else arch.buffer_write_pj
    if name == "mask":
        return arch.mask_read_pj if how == "read" else arch.mask_write_pj
    if name == "aux":
        return arch.aux_read_pj if how == "read" else arch.aux_write_pj
    port = arch.ports[name]
    return port.read_pj if how == "read" else port.write_pj


def staging(g: Gemm, arch: Arch, c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, str | None]:
    """Which of the candidates `c` the hardware can run, the bytes each needs in the staging level, and that
    level: `evaluate`'s `feasible`, `staged_bytes` and `stage_level` without the costs (no loop nest is walked)."""
    model = Model(g, arch, c)
    return fits(g, arch, model.cand), model._staged_bytes(), model.stage_level


def evaluate(g: Gemm, arch: Arch, c: dict[str, np.ndarray], exact: bool = True) -> Costs:
    """The costs of the candidates `c` (columns keyed by `loops.FIELDS`) of `g` on `arch`."""
    return Model(g, arch, c).run(exact)
