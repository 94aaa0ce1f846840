"""Lowering a mapped product into instructions, step by step as the cost model counts them.

The blocks run in the mapping's loop order (`blocks.block_sequence`). Step i is block i's `gemm` on the
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

import math
from dataclasses import dataclass

from aalbert.ir.graph import Node
from aalbert.ir.mapping import Mapping
from aalbert.targets.codegen.blocks import Block, block_sequence, k_runs_kept
from aalbert.targets.codegen.program import Buf
from aalbert.targets.mapping.loops import DIMS, ceil_div, relevant
from aalbert.targets.mapping.problem import Gemm


@dataclass(frozen=True)
class Route:
    """How a transfer goes: its memory port, (level, bytes read, bytes written) per level, its hops."""

    port: str
    traffic: list
    hops: int = 1


@dataclass(frozen=True)
class Transfer:
    """One DMA of a mapped product: its role (stage, stream, fill, drain, bias, reload), operand, bytes and
    route; the buffer slot it fills, whether it completes its block, what it writes."""

    role: str
    op: str
    nbytes: int
    route: Route
    slot: int = -1
    final: bool = False
    writes: tuple = ()


class MappedLowering:
    """Emits one mapped product (`node.mapping`) through the lowering `lw` (a `targets.codegen.lower._Lowering`).
    `places` says where each operand lives: a, w, o and, optionally, bias."""

    def __init__(self, lw, index: int, node: Node, g: Gemm, places: dict[str, Buf]):
        mp: Mapping = node.mapping
        self.lw, self.i, self.node, self.g, self.mp = lw, index, node, g, mp
        self.t = lw.t
        self.places = places
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
        self.stage_base = lw.stage_base
        self.frontier: list[int] = list(lw.barrier)
        self.keep = k_runs_kept(g, mp, parts.accumulators.entries)
        self.elem = {"a": g.a_elem, "w": g.w_elem + g.w_mask, "o": g.o_elem}
        self.last_stationary: tuple | None = None
        self.psum_stored: set = set()         # output blocks whose partial sums went to memory
        self.k_done: dict[tuple, int] = {}    # reduction blocks done per output block
        self.k_total = ceil_div(g.k, mp.block[2])

    # -- helpers -------------------------------------------------------------------------------------------------
    def fetched(self, op: str) -> bool:
        return bool(self.bufs[op]) or (self.stationary == op and self.mp.hold == "pe")

    def ident(self, op: str, blk: Block) -> tuple[tuple[int, int], ...]:
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

    def dma(self, x: Transfer, deps, blk=None) -> int:
        route = x.route
        ins = self.lw.emit(self.i, self.node, kind="dma", unit=f"dma.{route.port}", deps=list(deps),
                           reads=(Buf(route.port, 0, x.nbytes),), writes=tuple(x.writes), nbytes=x.nbytes,
                           traffic=tuple((lv, int(round(r)), int(round(w))) for lv, r, w in route.traffic),
                           tile=self.tile(blk) if blk is not None else None, role=x.role, operand=x.op,
                           final=x.final, slot=x.slot, hops=route.hops)
        return ins.id

    def toward_array(self, op: str, nbytes: int, staged: bool) -> Route:
        """How `nbytes` of `op` come from its stage region or home to the array."""
        home, mid = self.homes[op], self.via[op]
        if staged:
            return Route(mid, [(mid, nbytes, 0)])
        if mid is not None:
            return Route(home, [(home, nbytes, 0), (mid, nbytes, nbytes)], 2)
        return Route(home, [(home, nbytes, 0)])

    def toward_memory(self, nbytes: int, staged: bool) -> Route:
        """How `nbytes` of the output go from the array to its stage region or home."""
        home, mid = self.homes["o"], self.via["o"]
        if staged:
            return Route(mid, [(mid, 0, nbytes)])
        if mid is not None:
            return Route(home, [(mid, nbytes, nbytes), (home, 0, nbytes)], 2)
        return Route(home, [(home, 0, nbytes)])

    def buffer_traffic(self, op: str, values: float, masks: float, read: bool) -> list:
        out = []
        for names, amount in ((self.bufs[op], values), (self.masks[op] or self.bufs[op], masks)):
            for name in names:
                share = amount / len(names)
                out.append((name, share, 0) if read else (name, 0, share))
        return [(n, r, w) for n, r, w in out if r or w]

    # -- the walk ------------------------------------------------------------------------------------------------
    def runs(self, op: str, seq: list[tuple[int, Block]]) -> list[tuple[int, int, Block]]:
        """(first step, steps, a block) of each run of consecutive blocks that share `op`'s block."""
        out: list[tuple[int, int, Block]] = []
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
        gemms: list[int] = []

        # prologue: the first stage tile of a staged a or w, then block 1's fills
        pro: list[int] = []
        for op in ("a", "w"):
            if staged[op]:
                nbytes = self.stage_bytes(op, seq, seq[0][0])
                route = Route(self.homes[op], [(self.homes[op], nbytes, 0), (self.via[op], 0, nbytes)])
                pro.append(self.dma(Transfer("stage", op, nbytes, route), self.frontier))
        self.frontier = self.frontier + pro
        step = [self.fill(op, seq[0][1], staged[op], 0, self.frontier) for op in runs]
        self.frontier = self.frontier + step
        for idx, (snum, blk) in enumerate(seq):
            prev = seq[idx - 1][1] if idx else None
            nxt = seq[idx + 1] if idx + 1 < len(seq) else None
            deps = list(self.frontier)
            step = []
            if prev is not None:
                step += self.maybe_drain(prev, blk, staged["o"], deps)
            for op in ("a", "w"):
                if not self.fetched(op) and self.stationary != op:
                    nbytes = self.stream_bytes(op, blk)
                    route = self.toward_array(op, nbytes, staged[op])
                    step.append(self.dma(Transfer("stream", op, nbytes, route), deps, blk))
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
                    step += self.fill(op, rs[q + 1][2], staged[op], (q + 1) % 2, deps, (idx - start, length))
            if nxt is not None:
                step += self.maybe_reload(blk, nxt[1], staged["o"], deps)
            step += self.stage_chunks(seq, idx, snum, steps_in, staged, deps)
            gemm = self.gemm(blk, deps, idx == 0)
            gemms.append(gemm)
            k_key = self.ident("o", blk)
            self.k_done[k_key] = self.k_done.get(k_key, 0) + 1
            for op in serial_ops:
                step.append(self.fill(op, nxt[1], staged[op], 0, deps + [gemm]))
            self.frontier = [gemm] + step
        # epilogue
        last = seq[-1][1]
        end = self.drain(last, staged["o"], True, self.frontier)
        tail = end
        if staged["o"]:
            nbytes = self.stage_bytes("o", seq, seq[-1][0])
            route = Route(self.homes["o"], [(self.via["o"], nbytes, 0), (self.homes["o"], 0, nbytes)])
            tail += [self.dma(Transfer("stage", "o", nbytes, route), self.frontier + end)]
        self.lw.program.mappings[self.i] = mp.text()
        return gemms + tail

    def single(self, op: str) -> bool:
        if self.bufs[op]:
            return self.slots[op] == 1
        return self.mp.slots[2] == 1

    def fill(self, op, blk, staged, slot, deps, piece: tuple[int, int] | None = None):
        """The fill of `op`'s block into `slot`: whole (an int id), or `piece` (part, parts): slice `part` of
        `parts` (a list)."""
        g = self.g
        values = self.nbytes(op, blk, g.a_elem if op == "a" else g.w_elem)
        masks = self.nbytes(op, blk, g.w_mask) if op == "w" and g.w_mask else 0
        part, parts = piece if piece is not None else (None, 1)
        if part is not None:
            lo_v, hi_v = values * part // parts, values * (part + 1) // parts
            lo_m, hi_m = masks * part // parts, masks * (part + 1) // parts
            values, masks = hi_v - lo_v, hi_m - lo_m
        nbytes = values + masks
        if nbytes <= 0:
            return []
        route = self.toward_array(op, nbytes, staged)
        route = Route(route.port, route.traffic + self.buffer_traffic(op, values, masks, read=False), route.hops)
        dest = self.bufs[op][0] if self.bufs[op] else "pe"
        ins = self.dma(Transfer("fill", op, nbytes, route, slot=slot, final=part is None or part == parts - 1,
                                writes=(Buf(f"{dest}.{op}{slot}", 0, nbytes),)), deps, blk)
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

    def maybe_drain(self, prev, blk, staged, deps) -> list[int]:
        same = self.ident("o", prev) == self.ident("o", blk)
        if same and self.keep:
            return []
        done = self.k_done.get(self.ident("o", prev), 0) >= self.k_total
        if not done:
            self.psum_stored.add(self.ident("o", prev))
        else:
            self.psum_stored.discard(self.ident("o", prev))
        return self.drain(prev, staged, done, deps)

    def drain(self, blk, staged, final, deps) -> list[int]:
        g = self.g
        nbytes = self.nbytes("o", blk, g.o_elem if final else g.psum_elem)
        route = self.toward_memory(nbytes, staged)
        out = []
        bias = self.places.get("bias")
        if final and bias is not None and g.bias_bytes:
            n0, n1 = blk["n"]
            part = max(1, round(g.bias_bytes * (n1 - n0) / g.n))
            aux = self.t.parts.role("aux")
            bias_route = Route(g.bias_home, [(g.bias_home, part, 0)] + ([(aux.name, 0, part)] if aux else []))
            out.append(self.dma(Transfer("bias", "o", part, bias_route), deps, blk))
            route = Route(route.port, route.traffic + ([(aux.name, part, 0)] if aux else []), route.hops)
        out.append(self.dma(Transfer("drain", "o", nbytes, route, final=final, writes=(self.places["o"],)), deps,
                            blk))
        return out

    def maybe_reload(self, blk, nxt, staged, deps) -> list[int]:
        same = self.ident("o", blk) == self.ident("o", nxt)
        if same and self.keep:
            return []
        if same or self.ident("o", nxt) in self.psum_stored:  # partial sums come back as `a` would come in
            nbytes = self.nbytes("o", nxt, self.g.psum_elem)
            return [self.dma(Transfer("reload", "o", nbytes, self.toward_array("o", nbytes, staged)), deps, nxt)]
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
            out.append(self.dma(Transfer("stage", op, part, Route(home, traffic)), deps))
        return out
