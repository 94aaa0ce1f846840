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

import numpy as np

from .capacity import fits
from .columns import Candidates
from .loops import DIMS, ORDERS, STAGES, ceil_div, max_sum, relevant, tiles_sum
from .problem import Arch, Gemm
from .steps import StepWalk


@dataclass
class Costs:
    feasible: np.ndarray
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
        return sum(self.energy.values())


class _Bytes:
    def __init__(self):
        self.reads: dict[str, np.ndarray] = {}
        self.writes: dict[str, np.ndarray] = {}
        self.noc = 0.0

    def read(self, where: str, nbytes) -> None:
        self.reads[where] = self.reads.get(where, 0.0) + nbytes

    def write(self, where: str, nbytes) -> None:
        self.writes[where] = self.writes.get(where, 0.0) + nbytes


class Model(StepWalk):
    """The cost model of one product on one architecture, over candidate columns `c`."""

    def __init__(self, g: Gemm, arch: Arch, c: dict[str, np.ndarray]):
        self.g, self.arch, self.c = g, arch, c
        self.cand = Candidates.of(c)
        self.size = len(self.cand)
        self.full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
        self.rel = relevant(g)
        self.homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
        self.via = {op: arch.via.get(h) for op, h in self.homes.items()}
        self.staged = {op: self.cand.stage == STAGES.index(op) for op in ("a", "w", "o")}
        self.stage_level = next((v for v in self.via.values() if v is not None), None)
        self._dur: dict[tuple, tuple] = {}

    # -- transfers ---------------------------------------------------------------------------------------------
    def unit(self, op: str, staged) -> np.ndarray:
        """The port a transfer of operand `op` (or its outputs) occupies: the staging level, else its home."""
        return staged

    def duration(self, op: str, nbytes, kind: str):
        """Cycles of one transfer of `nbytes` of `op` (fill, stream, drain or reload) on its port."""
        key = (op, kind == "drain")
        if key not in self._dur:
            a, p = self.arch, self.arch.ports
            home, mid = self.homes[op], self.via[op]
            if kind != "drain":
                direct = [p[home].read_bw] + ([p[mid].write_bw, p[mid].read_bw] if mid else [])
                from_stage = [p[mid].read_bw] if mid else [p[home].read_bw]
            else:
                direct = [p[home].write_bw] + ([p[mid].write_bw, p[mid].read_bw] if mid else [])
                from_stage = [p[mid].write_bw] if mid else [p[home].write_bw]
            self._dur[key] = (p[home].latency, min([a.dma_bw] + direct),
                              p[mid].latency if mid else p[home].latency, min([a.dma_bw] + from_stage))
        lat_d, bw_d, lat_s, bw_s = self._dur[key]
        st = self.staged[op]
        if not st.any():
            return np.where(nbytes > 0, lat_d + nbytes / bw_d, 0.0)
        return np.where(nbytes > 0, np.where(st, lat_s + nbytes / bw_s, lat_d + nbytes / bw_d), 0.0)

    def port(self, op: str) -> tuple[str, str | None]:
        """(port when not staged, port when staged)."""
        return self.homes[op], self.via[op]

    def charge(self, b: _Bytes, op: str, nbytes, toward_array: bool) -> None:
        """Energy-side bytes of moving `nbytes` of `op` between its staging region or home and the array."""
        home, mid = self.homes[op], self.via[op]
        st = self.staged[op]
        if mid is None:
            (b.read if toward_array else b.write)(home, nbytes)
            b.noc = b.noc + nbytes
            return
        b.read(mid, nbytes) if toward_array else b.write(mid, nbytes)
        through = np.where(st, 0.0, nbytes)  # not staged: it passes the intermediate level on its way
        if toward_array:
            b.write(mid, through)
            b.read(home, through)
        else:
            b.read(mid, through)
            b.write(home, through)
        b.noc = b.noc + nbytes + through

    # -- the evaluation ------------------------------------------------------------------------------------------
    def run(self, exact: bool = True) -> Costs:
        """Every candidate's costs; with `exact` False its cycles are only a lower bound (the array's compute, or
        the bytes on its busiest port at that port's bandwidth), which is cheap: the search's bound."""
        g, arch, c, size = self.g, self.arch, self.cand, self.size
        R, C = arch.rows, arch.cols
        full = self.full
        blk = c.block
        nblk = {d: ceil_div(full[d], blk[d]) for d in DIMS}
        stile = c.tile
        nst = {d: ceil_div(full[d], stile[d]) for d in DIMS}
        inner = {d: nblk[d] / nst[d] for d in DIMS}
        n = (nblk["b"] * nblk["m"] * nblk["k"] * nblk["n"]).astype(float)
        ws, os_, is_ = c.ws, c.os, c.is_
        pe_hold = c.pe_hold
        w_b = g.b if g.w_batched else 1
        size_b = {"a": g.b * g.m * g.k * g.a_elem, "w": w_b * g.k * g.n * (g.w_elem + g.w_mask),
                  "o": g.b * g.m * g.n * g.o_elem}
        o_elems = g.b * g.m * g.n
        distinct = {"a": nblk["b"] * nblk["m"] * nblk["k"],
                    "w": (nblk["b"] if g.w_batched else 1) * nblk["k"] * nblk["n"],
                    "o": nblk["b"] * nblk["m"] * nblk["n"]}
        avg = {op: size_b[op] / distinct[op] for op in ("a", "w", "o")}   # bytes of one block, on average
        o_blk_elems = o_elems / distinct["o"]
        self.bias_slice = g.bias_bytes / nblk["n"] if g.bias_home is not None else 0.0 * n
        s_is_a, s_is_w = is_, ws

        # array tiles and compute
        t_rows = np.where(os_, ceil_div(c.block["m"], R), ceil_div(c.block["k"], R))
        tk_r, tn_c = tiles_sum(g.k, c.block["k"], R), tiles_sum(g.n, c.block["n"], C)
        tm_r, tm_c = tiles_sum(g.m, c.block["m"], R), tiles_sum(g.m, c.block["m"], C)
        g_ws = np.where(pe_hold, g.b * g.m * tk_r * tn_c, g.b * tk_r * tn_c * max_sum(g.m, c.block["m"], R))
        g_is = np.where(pe_hold, g.b * g.n * tk_r * tm_c, g.b * tk_r * tm_c * max_sum(g.n, c.block["n"], R))
        g_os = g.b * tm_r * tn_c * max_sum(g.k, c.block["k"], R)
        compute = np.where(ws, g_ws, np.where(os_, g_os, g_is)).astype(float)
        if arch.skip_cycles and g.density < 1.0:
            compute = np.where(ws, np.ceil(compute * g.density), compute)

        ok = fits(g, arch, self.c)
        tile_acc = ~os_ & ~pe_hold & (t_rows > 1)
        keep_fits = o_blk_elems <= arch.acc_entries

        # who is fetched into a buffer or the PE registers (else streamed from memory on every use)
        fetched = {"a": (c.a_bufs > 0) | (s_is_a & pe_hold), "w": (c.w_bufs > 0) | (s_is_w & pe_hold)}
        a_array = g.b * g.m * g.k * np.where(is_, 1, tn_c)                  # values of a the array reads
        w_array = g.b * g.k * g.n * np.where(os_, tm_r, np.where(is_, tm_c, 1))
        stream_total = {"a": np.where(~fetched["a"] & ~s_is_a, a_array * g.a_elem, 0.0),
                        "w": np.where(~fetched["w"] & ~s_is_w, w_array * (g.w_elem + g.w_mask), 0.0)}

        # -- loop structure, per order: transitions, what changes, step kinds --------------------------------
        traffic = {k: np.zeros(size) for k in ("fill_a", "fill_w", "drain_final", "drain_psum", "reload",
                                               "acc_keep", "bias")}
        steps_time = np.zeros(size)
        for oi, order in enumerate(ORDERS):
            sel = c.order == oi
            if not sel.any():
                continue
            self._order(order, sel, nblk, nst, inner, n, avg, o_blk_elems, keep_fits, fetched, stream_total,
                        compute, traffic, steps_time, exact)


        # -- bytes and energy -----------------------------------------------------------------------------------
        b = _Bytes()
        for op in ("a", "w"):
            self.charge(b, op, traffic["fill_" + op] + stream_total[op], True)
        psum = traffic["drain_psum"]
        self.charge(b, "o", traffic["drain_final"] + psum, False)
        self.charge(b, "o", traffic["reload"], True)
        stage_fill = {op: np.where(self.staged[op], size_b[op], 0.0) for op in ("a", "w")}
        for op in ("a", "w"):
            if self.via[op]:
                b.read(self.homes[op], stage_fill[op])
                b.write(self.via[op], stage_fill[op])
                b.noc = b.noc + stage_fill[op]
        o_stage_drain = np.where(self.staged["o"], size_b["o"], 0.0)
        if self.via["o"]:
            b.read(self.via["o"], o_stage_drain)
            b.write(self.homes["o"], o_stage_drain)
            b.noc = b.noc + o_stage_drain
        bias = traffic["bias"]
        if g.bias_bytes and g.bias_home is not None:
            b.read(g.bias_home, bias)
            b.write("aux", bias)
            b.read("aux", bias)
            b.noc = b.noc + bias
        # buffers: written when filled, read by the array
        for op, nb in (("a", c.a_bufs), ("w", c.w_bufs)):
            buffered = nb > 0
            vals = traffic["fill_" + op] * (g.w_elem / (g.w_elem + g.w_mask) if op == "w" and g.w_mask else 1.0)
            masks = traffic["fill_w"] - vals if op == "w" else 0.0
            b.write("buf", np.where(buffered, vals, 0.0))
            elem = g.a_elem if op == "a" else g.w_elem
            is_s = s_is_a if op == "a" else s_is_w
            visits = (g.b * g.m * g.k * nblk["n"]) if op == "a" else \
                ((g.b if g.w_batched else nblk["b"]) * g.k * g.n * nblk["m"])
            array = a_array if op == "a" else w_array
            reads = np.where(is_s, visits, array)
            b.read("buf", np.where(buffered, reads * elem, 0.0))
            if op == "w" and g.w_mask:
                where = "mask" if arch.mask_bytes else "buf"
                b.write(where, np.where(buffered, masks, 0.0))
                b.read(where, np.where(buffered, reads * g.w_mask, 0.0))
        s_vals = np.where(s_is_w, np.where(pe_hold, traffic["fill_w"] / (g.w_elem + g.w_mask),
                                           (g.b if g.w_batched else nblk["b"]) * g.k * g.n * nblk["m"]),
                          np.where(s_is_a, np.where(pe_hold, traffic["fill_a"] / g.a_elem,
                                                    g.b * g.m * g.k * nblk["n"]), 0.0))
        stream_tot = np.where(ws, g.m, g.n)
        cols_tot = np.where(ws, g.n, g.m)
        acc_acc = np.where(tile_acc, g.b * stream_tot * cols_tot * (2 * tk_r - nblk["k"]), 0.0)
        acc_acc = acc_acc + traffic["acc_keep"]
        gate = g.density if arch.gate_energy else 1.0
        energy = {"pe": np.full(size, g.macs * arch.mac_pj.get(g.fmt, 0.0) * gate),
                  "pe_regs": g.macs * arch.reg_per_mac_pj * gate + s_vals * arch.reg_operand_pj,
                  "acc": acc_acc * arch.acc_pj, "noc": b.noc * arch.noc_pj + np.zeros(size)}
        for name, nbytes in b.reads.items():
            energy[name] = energy.get(name, 0.0) + nbytes * _pj(arch, name, "read")
        for name, nbytes in b.writes.items():
            energy[name] = energy.get(name, 0.0) + nbytes * _pj(arch, name, "write")

        # staging footprint
        tile_bytes = np.zeros(size)
        dims_of = {"a": "bmk", "w": "kn" + ("b" if g.w_batched else ""), "o": "bmn"}
        per = {"a": g.a_elem, "w": g.w_elem + g.w_mask, "o": max(g.o_elem, g.psum_elem)}
        for op in ("a", "w", "o"):
            elems = np.ones(size)
            for d in dims_of[op]:
                elems = elems * stile[d]
            tile_bytes = np.where(self.staged[op], elems * per[op], tile_bytes)
        staged_bytes = 2 * tile_bytes
        for op in ("a", "w", "o"):
            if self.via[op] is not None:
                per_block = avg[op] if op != "o" else o_blk_elems * max(g.o_elem, g.psum_elem)
                staged_bytes = staged_bytes + np.where(self.staged[op], 0.0, 2 * per_block)

        # prologue, epilogue, stage transfers
        if exact:
            cycles = steps_time + self._ends(n, nst, avg, fetched, size_b, o_blk_elems, bias, tile_bytes, stage_fill,
                                             o_stage_drain)
        else:
            ends = self._ends(n, nst, avg, fetched, size_b, o_blk_elems, bias, tile_bytes, stage_fill, o_stage_drain)
            cycles = np.maximum(ends + compute + self.arch.rows + self.arch.cols,
                                self._bound(compute, traffic, stream_total, stage_fill, o_stage_drain, bias, n, avg,
                                            o_blk_elems * g.psum_elem))
        return Costs(ok, energy, b.reads, b.writes, acc_acc, s_vals, b.noc + np.zeros(size), cycles, staged_bytes,
                     self.stage_level)


def _pj(arch: Arch, name: str, how: str) -> float:
    if name == "buf":
        return arch.buffer_read_pj if how == "read" else arch.buffer_write_pj
    if name == "mask":
        return arch.mask_read_pj if how == "read" else arch.mask_write_pj
    if name == "aux":
        return arch.aux_read_pj if how == "read" else arch.aux_write_pj
    port = arch.ports[name]
    return port.read_pj if how == "read" else port.write_pj


def evaluate(g: Gemm, arch: Arch, c: dict[str, np.ndarray], exact: bool = True) -> Costs:
    return Model(g, arch, c).run(exact)
