"""The step walk of the cost model: for each innermost block loop, which transfers every step makes and how
long the steps last (compute against the busiest port), in closed form over the step kinds; the prologue and
epilogue; and the cheap lower bound on cycles the search prunes with.

`StepWalk` is the part of `cost.Model` that times the blocks; `Model` supplies the operands' homes, the
levels they pass through, and each transfer's duration.
"""

from __future__ import annotations

import itertools

import numpy as np

from .loops import DIMS, STAGE_LOOPS, block_loops


class StepWalk:
    """Timing of the block steps; mixed into `cost.Model`."""

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

        c = self.cand
        one_slot = {"a": np.where(c.a_bufs > 0, c.a_slots == 1, c.pe_slots == 1),
                    "w": np.where(c.w_bufs > 0, c.w_slots == 1, c.pe_slots == 1)}
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
            # slices (spread over the steps inside a tile; a whole tile in the one step of a one-block tile, which
            # a stage loop's transition follows), and the slices of double-buffered operands' next blocks
            optional = []
            for op, ch_ in chunk.items():
                if (prev if op == "o" else nxt_) is None:
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
            o_port_staged = self.staged["o"] & (self.via["o"] == g.bias_home)
            o_port_home = ~self.staged["o"] & (self.homes["o"] == g.bias_home)
            last = np.where(o_port_staged | o_port_home, last + bias_t, np.maximum(last, bias_t))
        epilogue = last
        if self.via["o"] is not None:
            p = self.arch.ports
            bw = min(self.arch.dma_bw, p[self.via["o"]].read_bw, p[self.homes["o"]].write_bw)
            epilogue = epilogue + np.where(self.staged["o"], p[self.homes["o"]].latency + o_stage_drain / tiles / bw,
                                           0.0)
        return prologue + epilogue
