"""Lowering a mapped product into instructions, step by step as the cost model counts them.

The blocks run in the mapping's loop order. Step i is block i's `gemm` on the
PE array and, on the memories' ports (`dma.<level>`, one after another on each
port), the drain of block i-1's outputs (with its bias slice), what block i
streams from memory, the fills of block i+1 into free slots, the partial sums
block i+1 takes back, and a slice of the next stage tile. Every instruction of
step i waits for everything of step i-1, so a step lasts as long as its
slowest part; a fill into an operand's only slot waits for block i's product
as well. The prologue fills block 1 (after the first stage tile); the
epilogue drains the last block and the last stage tile.

Buffers are the target's operand buffers, the first `bufs[0]` for `a`, the
next `bufs[1]` for `w`; a stationary block held in the PEs is filled straight
from memory. A staged operand's tiles sit in the free part of the
intermediate memory (after every weight and arena there), double-buffered.
"""

from __future__ import annotations

import itertools
import math

from aalbert.ir.graph import Node
from aalbert.ir.mapping import Mapping

from aalbert.targets.codegen.program import Buf
from aalbert.targets.mapping.loops import DIMS, STAGE_LOOPS, block_loops, ceil_div, relevant
from aalbert.targets.mapping.problem import Gemm


def _cuts(extent: int, tile: int) -> list[tuple[int, int]]:
    return [(lo, min(extent, lo + tile)) for lo in range(0, extent, tile)]


def block_sequence(g: Gemm, mp: Mapping) -> list[tuple[int, dict[str, tuple[int, int]]]]:
    """(stage tile number, {dim: (lo, hi)}) of every block, in execution order."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    tile = dict(zip(DIMS, mp.stage_tile or (g.b, g.m, g.k, g.n)))
    blk = dict(zip(DIMS, mp.block))
    stage_cuts = {d: _cuts(full[d], tile[d]) for d in DIMS}
    out = []
    s_order = list(reversed(STAGE_LOOPS))                # outer to inner
    b_order = list(reversed(block_loops(mp.order)))
    for snum, sidx in enumerate(itertools.product(*(range(len(stage_cuts[d])) for d in s_order))):
        region = {d: stage_cuts[d][i] for d, i in zip(s_order, sidx)}
        cuts = {d: [(lo + a, lo + b) for a, b in _cuts(region[d][1] - lo, blk[d])]
                for d, (lo, _) in region.items()}
        for bidx in itertools.product(*(range(len(cuts[d])) for d in b_order)):
            out.append((snum, {d: cuts[d][i] for d, i in zip(b_order, bidx)}))
    return out


def k_runs_kept(g: Gemm, mp: Mapping, acc_entries: int) -> bool:
    """Do partial sums stay in the accumulators between reduction blocks (the model's `keep`): the
    reduction is the innermost loop that runs more than once, and an output block fits."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    tile = dict(zip(DIMS, mp.stage_tile or (g.b, g.m, g.k, g.n)))
    nblk = {d: ceil_div(full[d], mp.block[i]) for i, d in enumerate(DIMS)}
    nst = {d: ceil_div(full[d], tile[d]) for d in DIMS}
    loops = [(d, nblk[d] / nst[d]) for d in block_loops(mp.order)] + [(d, nst[d]) for d in STAGE_LOOPS]
    first = next((d for d, count in loops if count > 1), None)
    o_blk = g.b * g.m * g.n / (nblk["b"] * nblk["m"] * nblk["n"])
    return first == "k" and o_blk <= acc_entries


class MappedLowering:
    """Emits one mapped product through the lowering `lw` (a `targets.lower._Lowering`)."""

    def __init__(self, lw, index: int, node: Node, g: Gemm, mp: Mapping, places: dict[str, Buf],
                 stage_base: dict[str, int]):
        self.lw, self.i, self.node, self.g, self.mp = lw, index, node, g, mp
        self.t = lw.t
        self.places = places               # a, w, o, bias (optional): where each lives
        self.rel = relevant(g)
        parts = self.t.parts
        ops = [b.name for b in parts.operand_buffers()]
        masks = [b.name for b in parts.buffers if b.holds == "masks"]
        na, nw = mp.bufs
        self.bufs = {"a": ops[:na], "w": ops[na:na + nw]}
        self.masks = {"a": masks[:na], "w": masks[na:na + nw]} if masks else {"a": [], "w": []}
        self.slots = {"a": mp.slots[0], "w": mp.slots[1]}
        self.stationary = {"ws": "w", "is": "a"}.get(mp.dataflow)
        self.homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
        self.via = {op: self.t.fetch_path(h)[1] if len(self.t.fetch_path(h)) > 2 else None
                    for op, h in self.homes.items()}
        self.stage_base = stage_base
        self.frontier: list[int] = list(lw.barrier)
        self.keep = k_runs_kept(g, mp, parts.accumulators.entries)
        self.elem = {"a": g.a_elem, "w": g.w_elem + g.w_mask, "o": g.o_elem}
        self.last_stationary: tuple | None = None

    # -- helpers -------------------------------------------------------------------------------------------------
    def fetched(self, op: str) -> bool:
        return bool(self.bufs[op]) or (self.stationary == op and self.mp.hold == "pe")

    def ident(self, op: str, blk: dict) -> tuple:
        dims = [d for d in DIMS if d in self.rel[op]]
        return tuple(blk[d] for d in dims)

    def nbytes(self, op: str, blk: dict, elem: float) -> int:
        dims = [d for d in DIMS if d in self.rel[op]]
        count = 1
        for d in dims:
            lo, hi = blk[d]
            count *= hi - lo
        return max(1, round(count * elem))

    def tile(self, blk: dict) -> tuple[int, ...]:
        return tuple(x for d in DIMS for x in blk[d])

    def dma(self, role: str, op: str, nbytes: int, port: str, traffic: list, deps, blk=None, slot=-1,
            final=False, hops=1, reads=(), writes=()) -> int:
        ins = self.lw.emit(self.i, self.node, kind="dma", unit=f"dma.{port}", deps=list(deps),
                           reads=tuple(reads) or (Buf(port, 0, nbytes),), writes=tuple(writes), nbytes=nbytes,
                           traffic=tuple((lv, int(round(r)), int(round(w))) for lv, r, w in traffic),
                           tile=self.tile(blk) if blk is not None else None, role=role, operand=op, final=final,
                           slot=slot, hops=hops)
        return ins.id

    def toward_array(self, op: str, nbytes: int, staged: bool):
        """(port, traffic, hops) of bringing `nbytes` of `op` from its stage region or home to the array."""
        home, mid = self.homes[op], self.via[op]
        if staged:
            return mid, [(mid, nbytes, 0)], 1
        if mid is not None:
            return home, [(home, nbytes, 0), (mid, nbytes, nbytes)], 2
        return home, [(home, nbytes, 0)], 1

    def toward_memory(self, nbytes: int, staged: bool):
        home, mid = self.homes["o"], self.via["o"]
        if staged:
            return mid, [(mid, 0, nbytes)], 1
        if mid is not None:
            return home, [(mid, nbytes, nbytes), (home, 0, nbytes)], 2
        return home, [(home, 0, nbytes)], 1

    def buffer_traffic(self, op: str, values: float, masks: float, read: bool) -> list:
        out = []
        for names, amount in ((self.bufs[op], values), (self.masks[op] or self.bufs[op], masks)):
            for name in names:
                share = amount / len(names)
                out.append((name, share, 0) if read else (name, 0, share))
        return [(n, r, w) for n, r, w in out if r or w]

    # -- the walk ------------------------------------------------------------------------------------------------
    def runs(self, op: str, seq) -> list[tuple[int, int, dict]]:
        """(first step, steps, a block) of each run of consecutive blocks that share `op`'s block."""
        out = []
        for i, (_, blk) in enumerate(seq):
            if out and self.ident(op, seq[out[-1][0]][1]) == self.ident(op, blk):
                out[-1] = (out[-1][0], out[-1][1] + 1, out[-1][2])
            else:
                out.append((i, 1, blk))
        return out

    def run(self) -> list[int]:
        g, mp = self.g, self.mp
        seq = block_sequence(g, mp)
        staged = {op: mp.stage == op for op in ("a", "w", "o")}
        steps_in: dict[int, int] = {}
        for s_, _ in seq:
            steps_in[s_] = steps_in.get(s_, 0) + 1
        runs = {op: self.runs(op, seq) for op in ("a", "w") if self.fetched(op)}
        run_of = {op: [q for q, (_, r, _) in enumerate(rs) for _ in range(r)] for op, rs in runs.items()}
        psum_stored: set = set()
        k_done: dict[tuple, int] = {}
        k_total = ceil_div(g.k, mp.block[2])
        gemms: list[int] = []

        # prologue: the first stage tile of a staged a or w, then block 1's fills
        pro: list[int] = []
        for op in ("a", "w"):
            if staged[op]:
                nbytes = self.stage_bytes(op, seq, seq[0][0])
                pro.append(self.dma("stage", op, nbytes, self.homes[op],
                                    [(self.homes[op], nbytes, 0), (self.via[op], 0, nbytes)], self.frontier))
        self.frontier = self.frontier + pro
        step = [self.fill(op, seq[0][1], staged[op], 0, self.frontier) for op in runs]
        self.frontier = self.frontier + step
        for idx, (snum, blk) in enumerate(seq):
            prev = seq[idx - 1][1] if idx else None
            nxt = seq[idx + 1] if idx + 1 < len(seq) else None
            deps = list(self.frontier)
            step = []
            if prev is not None:
                step += self.maybe_drain(prev, blk, staged["o"], psum_stored, k_done, k_total, deps)
            for op in ("a", "w"):
                if not self.fetched(op) and self.stationary != op:
                    nbytes = self.stream_bytes(op, blk)
                    port, traffic, hops = self.toward_array(op, nbytes, staged[op])
                    step.append(self.dma("stream", op, nbytes, port, traffic, deps, blk, hops=hops))
            serial_ops = []
            for op, rs in runs.items():
                q = run_of[op][idx]
                if q + 1 >= len(rs):
                    continue
                start, length, _ = rs[q]
                if self.single(op):
                    if idx == start + length - 1:
                        serial_ops.append(op)
                else:  # the next block arrives in slices, one per step of the current one
                    step += self.fill(op, rs[q + 1][2], staged[op], (q + 1) % 2, deps, idx - start, length)
            if nxt is not None:
                step += self.maybe_reload(blk, nxt[1], staged["o"], psum_stored, deps)
            step += self.stage_chunks(seq, idx, snum, steps_in, staged, deps)
            gemm = self.gemm(blk, deps, idx == 0)
            gemms.append(gemm)
            k_key = self.ident("o", blk)
            k_done[k_key] = k_done.get(k_key, 0) + 1
            for op in serial_ops:
                step.append(self.fill(op, nxt[1], staged[op], 0, deps + [gemm]))
            self.frontier = [gemm] + step
        # epilogue
        last = seq[-1][1]
        end = self.drain(last, staged["o"], True, self.frontier)
        tail = end
        if staged["o"]:
            nbytes = self.stage_bytes("o", seq, seq[-1][0])
            tail += [self.dma("stage", "o", nbytes, self.homes["o"],
                              [(self.via["o"], nbytes, 0), (self.homes["o"], 0, nbytes)], self.frontier + end)]
        self.lw.program.mappings[self.i] = mp.text()
        return gemms + tail

    def single(self, op: str) -> bool:
        if self.bufs[op]:
            return self.slots[op] == 1
        return self.mp.slots[2] == 1

    def fill(self, op, blk, staged, slot, deps, part=None, parts=1):
        """The fill of `op`'s block into `slot`: whole (an int id), or slice `part` of `parts` (a list)."""
        g = self.g
        values = self.nbytes(op, blk, g.a_elem if op == "a" else g.w_elem)
        masks = self.nbytes(op, blk, g.w_mask) if op == "w" and g.w_mask else 0
        if part is not None:
            lo_v, hi_v = values * part // parts, values * (part + 1) // parts
            lo_m, hi_m = masks * part // parts, masks * (part + 1) // parts
            values, masks = hi_v - lo_v, hi_m - lo_m
        nbytes = values + masks
        if nbytes <= 0:
            return []
        port, traffic, hops = self.toward_array(op, nbytes, staged)
        traffic += self.buffer_traffic(op, values, masks, read=False)
        dest = self.bufs[op][0] if self.bufs[op] else "pe"
        ins = self.dma("fill", op, nbytes, port, traffic, deps, blk, slot=slot, hops=hops,
                       final=part is None or part == parts - 1, writes=(Buf(f"{dest}.{op}{slot}", 0, nbytes),))
        return ins if part is None else [ins]

    def stream_bytes(self, op: str, blk: dict) -> int:
        """Bytes an unbuffered operand's block sends into the array (re-read per array tile of the other side)."""
        g, t, mp = self.g, self.t, self.mp
        R, C = t.compute.rows, t.compute.cols
        n = blk["n"][1] - blk["n"][0]
        m = blk["m"][1] - blk["m"][0]
        if op == "a":
            times = 1 if mp.dataflow == "is" else ceil_div(n, C)
            return self.nbytes("a", blk, g.a_elem) * times
        times = ceil_div(m, R) if mp.dataflow == "os" else ceil_div(m, C) if mp.dataflow == "is" else 1
        batches = 1 if g.w_batched else (blk["b"][1] - blk["b"][0])
        return self.nbytes("w", blk, g.w_elem + g.w_mask) * times * batches

    def gemm(self, blk, deps, first) -> int:
        g, t, mp = self.g, self.t, self.mp
        R, C = t.compute.rows, t.compute.cols
        bb, m, k, n = (blk[d][1] - blk[d][0] for d in DIMS)
        t_rows = ceil_div(m, R) if mp.dataflow == "os" else ceil_div(k, R)
        t_cols = ceil_div(m, C) if mp.dataflow == "is" else ceil_div(n, C)
        traffic = []
        regfill = 0
        # operand reads from buffers
        for op in ("a", "w"):
            if not self.bufs[op]:
                continue
            values = self.nbytes(op, blk, g.a_elem if op == "a" else g.w_elem)
            masks = self.nbytes(op, blk, g.w_mask) if op == "w" and g.w_mask else 0
            if self.stationary == op:
                times = 1
            else:
                times = (1 if mp.dataflow == "is" else t_cols) if op == "a" else \
                    (ceil_div(m, R) if mp.dataflow == "os" else ceil_div(m, C)) * (1 if g.w_batched else bb)
            traffic += self.buffer_traffic(op, values * times, masks * times, read=True)
        s = self.stationary
        if s is not None:
            vals = self.nbytes(s, blk, 1.0)
            if mp.hold == "buf" or self.ident(s, blk) != self.last_stationary:
                regfill = vals
            self.last_stationary = self.ident(s, blk)
        acc = 0
        if s is not None and mp.hold == "buf" and t_rows > 1:
            stream = m if mp.dataflow == "ws" else n
            cols = n if mp.dataflow == "ws" else m
            acc += bb * stream * cols * (2 * t_rows - 1)
        if self.keep:
            acc += 2 * bb * m * n
        fmt = g.fmt
        ins = self.lw.emit(self.i, self.node, kind="gemm", unit="pe", deps=list(deps),
                           reads=(), writes=(), batch=bb, m=m, k=k, n=n, fmt=fmt, density=g.density,
                           traffic=tuple((lv, int(round(r)), int(round(w))) for lv, r, w in traffic),
                           tile=self.tile(blk), role=f"{mp.dataflow}.{mp.hold}", fill=first, acc=int(acc),
                           regfill=int(regfill))
        return ins.id

    def maybe_drain(self, prev, blk, staged, psum_stored, k_done, k_total, deps) -> list[int]:
        same = self.ident("o", prev) == self.ident("o", blk)
        if same and self.keep:
            return []
        done = k_done.get(self.ident("o", prev), 0) >= k_total
        if not done:
            psum_stored.add(self.ident("o", prev))
        else:
            psum_stored.discard(self.ident("o", prev))
        return self.drain(prev, staged, done, deps)

    def drain(self, blk, staged, final, deps) -> list[int]:
        g = self.g
        nbytes = self.nbytes("o", blk, g.o_elem if final else g.psum_elem)
        port, traffic, hops = self.toward_memory(nbytes, staged)
        out = []
        bias = self.places.get("bias")
        if final and bias is not None and g.bias_bytes:
            n0, n1 = blk["n"]
            part = max(1, round(g.bias_bytes * (n1 - n0) / g.n))
            aux = self.t.parts.role("aux")
            out.append(self.dma("bias", "o", part, g.bias_home, [(g.bias_home, part, 0)]
                                + ([(aux.name, 0, part)] if aux else []), deps, blk))
            traffic = traffic + ([(aux.name, part, 0)] if aux else [])
        out.append(self.dma("drain", "o", nbytes, port, traffic, deps, blk, final=final, hops=hops,
                            writes=(self.places["o"],)))
        return out

    def maybe_reload(self, blk, nxt, staged, psum_stored, deps) -> list[int]:
        same = self.ident("o", blk) == self.ident("o", nxt)
        if same and self.keep:
            return []
        if same or self.ident("o", nxt) in psum_stored:
            nbytes = self.nbytes("o", nxt, self.g.psum_elem)
            home, mid = self.homes["o"], self.via["o"]
            if staged:
                port, traffic, hops = mid, [(mid, nbytes, 0)], 1
            elif mid is not None:
                port, traffic, hops = home, [(home, nbytes, 0), (mid, nbytes, nbytes)], 2
            else:
                port, traffic, hops = home, [(home, nbytes, 0)], 1
            return [self.dma("reload", "o", nbytes, port, traffic, deps, nxt, hops=hops)]
        return []

    def stage_bytes(self, op: str, seq, snum: int) -> int:
        blocks = [b for s, b in seq if s == snum]
        lo = {d: min(b[d][0] for b in blocks) for d in DIMS}
        hi = {d: max(b[d][1] for b in blocks) for d in DIMS}
        return self.nbytes(op, {d: (lo[d], hi[d]) for d in DIMS}, self.elem[op])

    def stage_chunks(self, seq, idx, snum, steps_in, staged, deps) -> list[int]:
        """A slice of the next stage tile's load (a, w), or of the previous one's drain (o), per step."""
        out = []
        tiles = max(s for s, _ in seq) + 1
        pos = sum(1 for s, _ in seq[:idx] if s == snum)
        steps = steps_in[snum]
        for op in ("a", "w", "o"):
            if not staged[op]:
                continue
            src = snum + 1 if op != "o" else snum - 1
            if not 0 <= src < tiles:
                continue
            total = self.stage_bytes(op, seq, src)
            # the next tile arrives before this one's last step (a, w); the last one leaves after our first (o)
            if steps == 1:
                share, at = 1, 0
            else:
                share, at = steps - 1, (pos if op != "o" else pos - 1)
                if not 0 <= at < share:
                    continue
            lo, hi = math.floor(total * at / share), math.floor(total * (at + 1) / share)
            if hi <= lo:
                continue
            part = hi - lo
            home, mid = self.homes[op], self.via[op]
            traffic = [(home, part, 0), (mid, 0, part)] if op != "o" else [(mid, part, 0), (home, 0, part)]
            out.append(self.dma("stage", op, part, home, traffic, deps))
        return out
