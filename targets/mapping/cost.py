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

import itertools

import numpy as np

from .problem import Arch, Gemm

DIMS = ("b", "m", "k", "n")
ORDERS = ("m", "k", "n")
STAGES = ("", "a", "w", "o")
DF = ("ws", "os", "is")
FIELDS = ("df", "hold", "na", "nw", "sa", "sw", "sp", "order", "stage", "bb", "bm", "bk", "bn",
          "tb", "tm", "tk", "tn")


def ceil_div(a, b):
    return -(-a // b)


def _blocks(extent: int, tile):
    n = ceil_div(extent, tile)
    return n, extent - (n - 1) * tile


def tiles_sum(extent: int, tile, unit: int):
    """Sum over the blocks of `extent` cut into `tile`s of ceil(block / unit)."""
    n, last = _blocks(extent, tile)
    return (n - 1) * ceil_div(tile, unit) + ceil_div(last, unit)


def max_sum(extent: int, tile, floor: int):
    """Sum over the blocks of max(block, floor)."""
    n, last = _blocks(extent, tile)
    return (n - 1) * np.maximum(tile, floor) + np.maximum(last, floor)


def relevant(g: Gemm) -> dict[str, set[str]]:
    return {"a": {"b", "m", "k"}, "w": {"k", "n"} | ({"b"} if g.w_batched else set()), "o": {"b", "m", "n"}}


def block_loops(order: str) -> list[str]:
    return [order] + [d for d in ("m", "k", "n") if d != order] + ["b"]


STAGE_LOOPS = ["m", "k", "n", "b"]


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


class Model:
    """The cost model of one product on one architecture, over candidate columns `c`."""

    def __init__(self, g: Gemm, arch: Arch, c: dict[str, np.ndarray]):
        self.g, self.arch, self.c = g, arch, c
        self.size = len(c["df"])
        self.full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
        self.rel = relevant(g)
        self.homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
        self.via = {op: arch.via.get(h) for op, h in self.homes.items()}
        self.staged = {op: c["stage"] == STAGES.index(op) for op in ("a", "w", "o")}
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
        g, arch, c, size = self.g, self.arch, self.c, self.size
        R, C = arch.rows, arch.cols
        full = self.full
        blk = {d: c["b" + d] for d in DIMS}
        nblk = {d: ceil_div(full[d], blk[d]) for d in DIMS}
        stile = {d: c["t" + d] for d in DIMS}
        nst = {d: ceil_div(full[d], stile[d]) for d in DIMS}
        inner = {d: nblk[d] / nst[d] for d in DIMS}
        n = (nblk["b"] * nblk["m"] * nblk["k"] * nblk["n"]).astype(float)
        ws, os_, is_ = c["df"] == 0, c["df"] == 1, c["df"] == 2
        pe_hold = c["hold"] == 0
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
        t_rows = np.where(os_, ceil_div(c["bm"], R), ceil_div(c["bk"], R))
        t_cols = np.where(is_, ceil_div(c["bm"], C), ceil_div(c["bn"], C))
        tk_r, tn_c = tiles_sum(g.k, c["bk"], R), tiles_sum(g.n, c["bn"], C)
        tm_r, tm_c = tiles_sum(g.m, c["bm"], R), tiles_sum(g.m, c["bm"], C)
        g_ws = np.where(pe_hold, g.b * g.m * tk_r * tn_c, g.b * tk_r * tn_c * max_sum(g.m, c["bm"], R))
        g_is = np.where(pe_hold, g.b * g.n * tk_r * tm_c, g.b * tk_r * tm_c * max_sum(g.n, c["bn"], R))
        g_os = g.b * tm_r * tn_c * max_sum(g.k, c["bk"], R)
        compute = np.where(ws, g_ws, np.where(os_, g_os, g_is)).astype(float)
        if arch.skip_cycles and g.density < 1.0:
            compute = np.where(ws, np.ceil(compute * g.density), compute)

        ok = fits(g, arch, c)
        tile_acc = ~os_ & ~pe_hold & (t_rows > 1)
        keep_fits = o_blk_elems <= arch.acc_entries

        # who is fetched into a buffer or the PE registers (else streamed from memory on every use)
        fetched = {"a": (c["na"] > 0) | (s_is_a & pe_hold), "w": (c["nw"] > 0) | (s_is_w & pe_hold)}
        a_array = g.b * g.m * g.k * np.where(is_, 1, tn_c)                  # values of a the array reads
        w_array = g.b * g.k * g.n * np.where(os_, tm_r, np.where(is_, tm_c, 1))
        stream_total = {"a": np.where(~fetched["a"] & ~s_is_a, a_array * g.a_elem, 0.0),
                        "w": np.where(~fetched["w"] & ~s_is_w, w_array * (g.w_elem + g.w_mask), 0.0)}

        # -- loop structure, per order: transitions, what changes, step kinds --------------------------------
        traffic = {k: np.zeros(size) for k in ("fill_a", "fill_w", "drain_final", "drain_psum", "reload",
                                               "acc_keep", "bias")}
        steps_time = np.zeros(size)
        for oi, order in enumerate(ORDERS):
            sel = c["order"] == oi
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
        for op, nb in (("a", c["na"]), ("w", c["nw"])):
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

    def _order(self, order, sel, nblk, nst, inner, n, avg, o_blk_elems, keep_fits, fetched, stream_total, compute,
               traffic, steps_time, exact=True) -> None:
        """Transfers and step times of the candidates whose innermost block loop is `order`."""
        g, size = self.g, self.size
        bias_slice = self.bias_slice
        loops = [(d, inner[d]) for d in block_loops(order)] + [(d, nst[d].astype(float)) for d in STAGE_LOOPS]
        P = len(loops)
        counts = [cnt for _, cnt in loops]
        # transitions advancing loop p: (count_p - 1) x product of the outer counts
        outer = [np.ones(size)] * P
        acc_outer = np.ones(size)
        for p in range(P - 1, -1, -1):
            outer[p] = acc_outer
            acc_outer = acc_outer * counts[p]
        trans = [(counts[p] - 1) * outer[p] for p in range(P)]
        # what changes at a transition of loop p: its dimension, and every inner loop that runs more than once
        changed = []
        for p in range(P):
            dims = {d: np.zeros(size, dtype=bool) for d in DIMS}
            dims[loops[p][0]] = np.ones(size, dtype=bool)
            for q in range(p):
                dims[loops[q][0]] = dims[loops[q][0]] | (counts[q] > 1)
            changed.append(dims)

        def ch(op, p):
            out = np.zeros(size, dtype=bool)
            for d in self.rel[op]:
                out |= changed[p][d]
            return out

        # reduction loops outside loop p: an output block left at p is final only at their last index
        k_out = []
        for p in range(P):
            prod = np.ones(size)
            for q in range(p + 1, P):
                if loops[q][0] == "k":
                    prod = prod * counts[q]
            k_out.append(prod)
        # innermost loop that runs more than once
        p0 = np.full(size, P, dtype=int)
        for p in range(P - 1, -1, -1):
            p0 = np.where(counts[p] > 1, p, p0)
        k_first = np.zeros(size, dtype=bool)
        for p in range(P):
            k_first |= (p0 == p) & (loops[p][0] == "k")
        # back-to-back reduction blocks keep their partial sums in the accumulators; a mapping that would
        # send them out and back every block is left out (the next loop innermost moves no more)
        keep = k_first & keep_fits

        psum = g.psum_elem

        # per transition p: fill, drain and reload bytes, per operand
        def fractions(p):
            """(final, revisit): the share of transitions of p whose old output block is complete, and whose
            new one already holds partial sums."""
            if loops[p][0] == "k":
                return 0.0, 1.0
            return 1.0 / k_out[p], 1.0 - 1.0 / k_out[p]

        def as_next(p):
            """Transfers for the block after a transition of p: fills and partial sums back."""
            och = ch("o", p)
            _, rev = fractions(p)
            reload = np.where(och, o_blk_elems * psum * rev, np.where(keep, 0.0, o_blk_elems * psum))
            return {"fill_a": np.where(fetched["a"] & ch("a", p), avg["a"], 0.0),
                    "fill_w": np.where(fetched["w"] & ch("w", p), avg["w"], 0.0), "reload": reload,
                    "serial_a": np.where(fetched["a"] & ch("a", p) & one_slot["a"], avg["a"], 0.0),
                    "serial_w": np.where(fetched["w"] & ch("w", p) & one_slot["w"], avg["w"], 0.0)}

        def as_prev(p):
            """Transfers for the block before a transition of p: its drain (and its bias slice)."""
            och = ch("o", p)
            final, _ = fractions(p)
            return {"drain_final": np.where(och, o_blk_elems * g.o_elem * final, 0.0),
                    "drain_psum": np.where(och, o_blk_elems * psum * (1 - final),
                                           np.where(keep, 0.0, o_blk_elems * psum)),
                    "bias": np.where(och, bias_slice * final, 0.0)}

        c = self.c
        one_slot = {"a": np.where(c["na"] > 0, c["sa"] == 1, c["sp"] == 1),
                    "w": np.where(c["nw"] > 0, c["sw"] == 1, c["sp"] == 1)}
        nxt = [as_next(p) for p in range(P)]
        prv = [as_prev(p) for p in range(P)]
        for p in range(P):
            for key, v in list(nxt[p].items()) + list(prv[p].items()):
                if key in traffic:
                    traffic[key] += np.where(sel, trans[p] * v, 0.0)
        # a double-buffered operand's next block arrives in slices over the steps its current block is in use
        fills = {op: 1.0 + sum(trans[p] * ch(op, p) for p in range(P)) for op in ("a", "w")}
        prefetch = {}
        for op in ("a", "w"):
            double = fetched[op] & ~one_slot[op]
            run = n / fills[op]
            # slices in every step but those of the last block's run; share of the steps that have a next block
            prefetch[op] = (np.where(double, self.duration(op, avg[op] / run, "fill"), 0.0),
                            np.where(double, (n - run) / np.maximum(n - 1, 1), 0.0))
        # the first block's fills and the last block's drain
        traffic["fill_a"] += np.where(sel & fetched["a"], avg["a"], 0.0)
        traffic["fill_w"] += np.where(sel & fetched["w"], avg["w"], 0.0)
        traffic["drain_final"] += np.where(sel, o_blk_elems * g.o_elem, 0.0)
        traffic["bias"] += np.where(sel, bias_slice, 0.0)
        traffic["acc_keep"] += np.where(sel & keep, 2 * o_blk_elems * n, 0.0)

        if not exact:
            return
        # step times: per port, the transfers of a step one after another
        g_step = compute / n
        fill_drain = float(self.arch.rows + self.arch.cols)
        stream = {op: stream_total[op] / n for op in ("a", "w")}
        chunk = self._stage_chunks(n, nst)

        def step_time(prev, nxt_, extra=0.0, prev_p=None, next_p=None):
            ports: dict[str, np.ndarray] = {}
            serial: dict[str, np.ndarray] = {}   # fills that wait for this block's product (one slot)

            def add(op, nbytes, kind, after=None):
                dur = self.duration(op, nbytes, kind)
                home, mid = self.homes[op], self.via[op]
                st = self.staged[op]
                for level, share in ((home, ~st), (mid, st)):
                    if level is None:
                        continue
                    part = np.where(share, dur, 0.0)
                    if after is None:
                        ports[level] = ports.get(level, 0.0) + part
                    else:
                        ports[level] = ports.get(level, 0.0) + np.where(after, 0.0, part)
                        serial[level] = serial.get(level, 0.0) + np.where(after, part, 0.0)

            for op in ("a", "w"):
                add(op, stream[op], "stream")
                if nxt_ is not None:
                    add(op, nxt_["serial_" + op], "fill", True)
            if nxt_ is not None:
                add("o", nxt_["reload"], "reload")
            if prev is not None:
                add("o", prev["drain_final"] + prev["drain_psum"], "drain")
                if g.bias_home is not None and g.bias_bytes:
                    port = self.arch.ports[g.bias_home]
                    dur = np.where(prev["bias"] > 0, port.latency + prev["bias"] / min(self.arch.dma_bw, port.read_bw),
                                   0.0)
                    ports[g.bias_home] = ports.get(g.bias_home, 0.0) + dur
            gs = g_step + extra

            def finish(extra_ports):
                t = gs
                levels = set(ports) | set(extra_ports)
                for lv in levels:
                    t = np.maximum(t, ports.get(lv, 0.0) + extra_ports.get(lv, 0.0))
                for lv, v in serial.items():
                    t = np.maximum(t, np.maximum(gs, ports.get(lv, 0.0) + extra_ports.get(lv, 0.0)) + v)
                return t

            # transfers present in some steps of this kind only, with their share of the steps: stage-tile
            # slices, and the slices of double-buffered operands' next blocks
            optional = []
            for op, ch_ in chunk.items():
                if op == "o":
                    on = prev is not None and (prev_p is None or prev_p < 4)
                else:
                    on = nxt_ is not None and (next_p is None or next_p < 4)
                if not on:
                    continue
                block_level = (prev_p if op == "o" else next_p)
                share = np.where(ch_["one"], 1.0, ch_["later"] if (block_level is not None and block_level < 4)
                                 else 0.0)
                optional.append(({ch_["level"]: ch_["dur"]}, share))
            if nxt_ is not None:
                for op in ("a", "w"):
                    dur, share = prefetch[op]
                    if not share.any():
                        continue
                    home, mid = self.homes[op], self.via[op]
                    parts = {home: np.where(self.staged[op], 0.0, dur)}
                    if mid is not None:
                        parts[mid] = parts.get(mid, 0.0) + np.where(self.staged[op], dur, 0.0)
                    optional.append((parts, share))
            # a transfer present in every step of the kind is a plain transfer; one in none is nothing
            certain: dict[str, np.ndarray] = {}
            uncertain = []
            for parts, share in optional:
                share = np.broadcast_to(np.asarray(share, dtype=float), (size,))
                if share.min() >= 1.0:
                    for lv, d in parts.items():
                        certain[lv] = certain.get(lv, 0.0) + d
                elif share.max() > 0.0:
                    uncertain.append((parts, share))
            total_t = 0.0
            for present in itertools.product((False, True), repeat=len(uncertain)):
                weight = 1.0
                extra_ports = dict(certain)
                for on, (parts, share) in zip(present, uncertain):
                    weight = weight * (share if on else 1 - share)
                    if on:
                        for lv, d in parts.items():
                            extra_ports[lv] = extra_ports.get(lv, 0.0) + d
                total_t = total_t + weight * finish(extra_ports)
            return total_t

        i0 = np.clip(p0, 0, P - 1)
        total = np.zeros(size)
        single = n <= 1
        # kinds: (first, p0), (p0, p0), (p0, p) and (p, p0) for outer p, (p0, last)
        for q in range(P):
            is_q = i0 == q
            if not is_q.any():
                continue
            runs = outer[q]
            if not (counts[q] > 1).any():
                continue
            first = step_time(None, nxt[q], fill_drain, None, q)
            last = step_time(prv[q], None, 0.0, q, None)
            mid = step_time(prv[q], nxt[q], 0.0, q, q)
            t = first + last + runs * np.maximum(counts[q] - 2, 0) * mid
            for p in range(q + 1, P):
                if not (counts[p] > 1).any():
                    continue
                t = t + trans[p] * (step_time(prv[q], nxt[p], 0.0, q, p) + step_time(prv[p], nxt[q], 0.0, p, q))
            total = np.where(is_q, t, total)
        total = np.where(single, step_time(None, None, fill_drain), total)
        steps_time += np.where(sel, total, 0.0)

    def _bound(self, compute, traffic, stream_total, stage_fill, o_stage_drain, bias, n, avg, o_block) -> np.ndarray:
        """A lower bound of the cycles: the array's compute, or each port's transfers at its best bandwidth, each
        paying its port's latency once."""
        a, ports = self.arch, self.arch.ports
        per: dict[str, np.ndarray] = {}

        def put(level, nbytes, count):
            p = ports[level]
            per[level] = per.get(level, 0.0) + nbytes / min(a.dma_bw, max(p.read_bw, p.write_bw)) \
                + np.where(nbytes > 0, count * p.latency, 0.0)

        o_moved = traffic["drain_final"] + traffic["drain_psum"] + traffic["reload"]
        for op, nbytes, count in (("a", traffic["fill_a"] + stream_total["a"],
                                   traffic["fill_a"] / avg["a"] + np.where(stream_total["a"] > 0, n, 0.0)),
                                  ("w", traffic["fill_w"] + stream_total["w"],
                                   traffic["fill_w"] / avg["w"] + np.where(stream_total["w"] > 0, n, 0.0)),
                                  ("o", o_moved, o_moved / np.maximum(o_block, 1e-9))):
            home, mid = self.homes[op], self.via[op]
            put(home, np.where(self.staged[op], 0.0, nbytes), count)
            if mid is not None:
                put(mid, np.where(self.staged[op], nbytes, 0.0), count)
        for op, nbytes in (("a", stage_fill["a"]), ("w", stage_fill["w"]), ("o", o_stage_drain)):
            if self.via[op] is not None:
                put(self.homes[op], nbytes, 1.0)
        if self.g.bias_home is not None and self.g.bias_bytes:
            put(self.g.bias_home, bias, 1.0)
        bound = compute + self.arch.rows + self.arch.cols
        for v in per.values():
            bound = np.maximum(bound, v)
        return bound

    def _stage_chunks(self, n, nst) -> dict[str, dict[str, np.ndarray]]:
        """Per staged operand: its port and the duration of one slice of a stage tile. The next tile of a or w
        arrives in slices over all but the last step of the current tile; the last tile of o leaves in slices
        over all but the first step of the next (a whole tile per step when a tile is one block)."""
        g = self.g
        tiles = nst["b"] * nst["m"] * nst["k"] * nst["n"]
        steps = n / tiles
        out = {}
        for op in ("a", "w", "o"):
            if self.via[op] is None:
                continue
            total = {"a": g.b * g.m * g.k * g.a_elem, "w": (g.b if g.w_batched else 1) * g.k * g.n *
                     (g.w_elem + g.w_mask), "o": g.b * g.m * g.n * g.o_elem}[op]
            piece = total / tiles / np.maximum(steps - 1, 1)
            p = self.arch.ports
            home, mid = self.homes[op], self.via[op]
            bw = min(self.arch.dma_bw, p[home].read_bw, p[mid].write_bw) if op != "o" else \
                min(self.arch.dma_bw, p[mid].read_bw, p[home].write_bw)
            out[op] = {"level": home, "dur": np.where(self.staged[op] & (tiles > 1), p[home].latency + piece / bw, 0.0),
                       "one": steps <= 1, "later": (tiles - 1) / tiles}
        return out

    def _ends(self, n, nst, avg, fetched, size_b, o_blk_elems, bias, tile_bytes, stage_fill, o_stage_drain):
        """Prologue (first stage tiles and block fills) and epilogue (last drains)."""
        g, size = self.g, self.size
        tiles = nst["b"] * nst["m"] * nst["k"] * nst["n"]
        first_stage = np.zeros(size)
        for op in ("a", "w"):
            if self.via[op] is None:
                continue
            p = self.arch.ports
            bw = min(self.arch.dma_bw, p[self.homes[op]].read_bw, p[self.via[op]].write_bw)
            first_stage = np.maximum(first_stage, np.where(self.staged[op], p[self.homes[op]].latency
                                                           + stage_fill[op] / tiles / bw, 0.0))
        ports: dict[str, np.ndarray] = {}
        for op in ("a", "w"):
            dur = self.duration(op, np.where(fetched[op], avg[op], 0.0), "fill")
            level = np.where(self.staged[op], 1, 0)
            for lv, which in ((self.homes[op], 0), (self.via[op], 1)):
                if lv is not None:
                    ports[lv] = ports.get(lv, 0.0) + np.where(level == which, dur, 0.0)
        prologue = first_stage + (np.maximum.reduce(list(ports.values())) if ports else 0.0)
        last = self.duration("o", np.full(size, o_blk_elems * g.o_elem), "drain")
        if g.bias_bytes and g.bias_home is not None:
            port = self.arch.ports[g.bias_home]
            bias_t = port.latency + (self.bias_slice + np.zeros(size)) / min(self.arch.dma_bw, port.read_bw)
            same = g.bias_home == (self.homes["o"] if self.via["o"] is None else None)
            o_port_staged = self.staged["o"] & (self.via["o"] == g.bias_home)
            o_port_home = ~self.staged["o"] & (self.homes["o"] == g.bias_home)
            del same
            last = np.where(o_port_staged | o_port_home, last + bias_t, np.maximum(last, bias_t))
        epilogue = last
        if self.via["o"] is not None:
            p = self.arch.ports
            bw = min(self.arch.dma_bw, p[self.via["o"]].read_bw, p[self.homes["o"]].write_bw)
            epilogue = epilogue + np.where(self.staged["o"], p[self.homes["o"]].latency + o_stage_drain / tiles / bw,
                                           0.0)
        return prologue + epilogue


def fits(g: Gemm, arch: Arch, c: dict[str, np.ndarray]) -> np.ndarray:
    """Which candidates the hardware can run (`fits_block` and `fits_stage`)."""
    return fits_block(g, arch, c) & fits_stage(g, arch, c)


def fits_block(g: Gemm, arch: Arch, c: dict[str, np.ndarray]) -> np.ndarray:
    """The dataflow, the buffers and their slots, the PE registers and the accumulators can hold the block."""
    R, C = arch.rows, arch.cols
    ws, os_, is_ = c["df"] == 0, c["df"] == 1, c["df"] == 2
    pe_hold = c["hold"] == 0
    ok = np.isin(c["df"], [DF.index(d) for d in arch.dataflows])
    ok &= c["na"] + c["nw"] <= arch.buffers
    w_vals = np.where(g.w_batched, c["bb"], 1) * c["bk"] * c["bn"]
    a_bytes = c["bb"] * c["bm"] * c["bk"] * g.a_elem
    w_bytes = w_vals * (g.w_elem + (0.0 if arch.mask_bytes else g.w_mask))
    ok &= (c["na"] == 0) | (a_bytes * c["sa"] <= c["na"] * arch.buffer_bytes)
    ok &= (c["nw"] == 0) | (w_bytes * c["sw"] <= c["nw"] * arch.buffer_bytes)
    if arch.mask_bytes and g.w_mask:
        ok &= (c["nw"] == 0) | (w_vals * g.w_mask * c["sw"] <= c["nw"] * arch.mask_bytes)
    t_rows = np.where(os_, ceil_div(c["bm"], R), ceil_div(c["bk"], R))
    t_cols = np.where(is_, ceil_div(c["bm"], C), ceil_div(c["bn"], C))
    s_buf = np.where(is_, c["na"] > 0, np.where(ws, c["nw"] > 0, False))
    per_pe = t_rows * t_cols * np.where(ws & (not g.w_batched), 1, c["bb"])
    ok &= os_ | ~pe_hold | ((per_pe * c["sp"] <= arch.reg_entries) & ~s_buf)
    ok &= os_ | pe_hold | (s_buf & (arch.reg_entries >= 2))
    ok &= ~os_ | pe_hold
    stream_ext = np.where(ws, c["bm"], c["bn"])
    ok &= ~(~os_ & ~pe_hold & (t_rows > 1)) | (stream_ext * C <= arch.acc_entries)
    return ok


def fits_stage(g: Gemm, arch: Arch, c: dict[str, np.ndarray]) -> np.ndarray:
    """The staged operand can be staged, its tile holds whole blocks, the staging region fits the free bytes;
    and the reduction is not the innermost loop with partial sums going back to memory every block (the next
    loop innermost moves no more)."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    ok = np.ones(len(c["df"]), dtype=bool)
    homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
    via = {op: arch.via.get(h) for op, h in homes.items()}
    stage_level = next((v for v in via.values() if v is not None), None)
    for i, op in enumerate(("a", "w", "o"), start=1):
        if via[op] is None:
            ok &= c["stage"] != i
    blk = {d: c["b" + d] for d in DIMS}
    stile = {d: c["t" + d] for d in DIMS}
    for d in DIMS:
        ok &= (stile[d] == full[d]) | (stile[d] % blk[d] == 0)
    nblk = {d: ceil_div(full[d], blk[d]) for d in DIMS}
    nst = {d: ceil_div(full[d], stile[d]) for d in DIMS}
    too_big = c["bb"] * c["bm"] * c["bn"] > arch.acc_entries
    if too_big.any():
        for i, order in enumerate(ORDERS):
            sel = (c["order"] == i) & too_big
            if not sel.any():
                continue
            found = np.zeros(len(ok), dtype=bool)
            k_first = np.zeros(len(ok), dtype=bool)
            loops = [(d, nblk[d] > nst[d]) for d in block_loops(order)[:3]] + [(d, nst[d] > 1) for d in STAGE_LOOPS]
            for d, runs in loops:
                if d == "k":
                    k_first |= ~found & runs
                found |= runs
            ok &= ~(sel & k_first)
    if stage_level is None:
        return ok & (c["stage"] == 0)
    return ok & (staging_need(g, arch, c) <= arch.free.get(stage_level, 0))


def staging_need(g: Gemm, arch: Arch, c: dict[str, np.ndarray]) -> np.ndarray:
    """Bytes of the staging region: the staged operand's tile twice, two blocks of every operand passing."""
    homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
    via = {op: arch.via.get(h) for op, h in homes.items()}
    stage_level = next((v for v in via.values() if v is not None), None)
    need = np.zeros(len(c["df"]))
    for i, op in enumerate(("a", "w", "o"), start=1):
        if via[op] is None or via[op] != stage_level:
            continue
        tile = np.ones(len(need))
        block = np.ones(len(need))
        for d in STAGE_DIMS[op](g):
            tile = tile * c["t" + d]
            block = block * c["b" + d]
        need = need + np.where(c["stage"] == i, 2 * tile * STAGE_BYTES[op](g), 2 * block * STAGE_BYTES[op](g))
    return need


STAGE_DIMS = {"a": lambda g: "bmk", "w": lambda g: "kn" + ("b" if g.w_batched else ""), "o": lambda g: "bmn"}
STAGE_BYTES = {"a": lambda g: g.a_elem, "w": lambda g: g.w_elem + g.w_mask, "o": lambda g: max(g.o_elem, g.psum_elem)}


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
