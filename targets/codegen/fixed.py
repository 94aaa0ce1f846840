"""The fixed lowering of a matrix product that has no mapping (`--mapping fixed`).

- `linear`: the weight is cut into chunks of output columns that fit one
  slot of the PE array's double-buffered weight buffer; each chunk is a DMA
  from wherever the allocator placed the weight (RRAM, SRAM or DRAM, on that
  level's channel) into a slot, then a GEMM reading the activations from the
  arena. A DMA into a slot waits for the GEMM that last read it, so the
  next chunk's transfer overlaps the current chunk's compute. The bias is
  added in the accumulators. ALBERT's repeated layer lowers to twelve such
  sequences reading the same weights.
- `matmul` of two activations (attention): the second operand is copied
  into the weight buffer a few heads at a time and multiplied the same way.

A GEMM reads its activations once if they fit an input buffer, else once per
16-column tile (weight-stationary).
"""

from __future__ import annotations

import math

from aalbert.ir.graph import Node
from aalbert.targets.codegen.program import Buf


class FixedLowering:
    """Emits fixed-lowered products through the lowering `lw` (a `targets.codegen.lower._Lowering`); owns the
    two weight-buffer slots the chunks alternate between."""

    def __init__(self, lw):
        self.lw = lw
        self.t = lw.t
        self.ab = lw.t.compute.activation_bits / 8
        self.slot_bytes = lw.t.compute.input_buffer_bytes
        self.slot_users: list[list[int]] = [[], []]
        self.slot = 0
        ops = lw.t.parts.operand_buffers()
        self.slot_buffers = [ops[i % len(ops)].name for i in range(2)] if ops else []

    def next_slot(self) -> int:
        s = self.slot
        self.slot ^= 1
        return s

    def linear(self, i: int, node: Node) -> None:
        lw = self.lw
        x, wv = node.inputs[0], node.inputs[1]
        w = lw.weight_of(wv)
        fmt = lw.check_format(w)
        out = node.output
        k, n = w.type.shape
        rows = math.prod(x.type.shape[:-1])
        col_bytes = (w.nbytes - w.encoding.metadata_bytes(w.type)) / n  # scales and exponent biases aside
        c = self.t.compute.cols
        width = max(c, int(self.slot_bytes / max(col_bytes, 1e-9)) // c * c)
        density = (w.encoding.nnz / w.numel) if w.encoding.storage == "bitmask" else 1.0
        level = w.placement.level
        x_bytes = lw.bytes_of(x)
        first = lw.read_deps([x]) + lw.write_deps(out)
        gemms = []
        for c0 in range(0, n, width):
            c1 = min(n, c0 + width)
            chunk = max(1, round(col_bytes * (c1 - c0)))
            slot = self.next_slot()
            dma = lw.emit(i, node, kind="dma", unit=f"dma.{level}", deps=self.slot_users[slot],
                          reads=(Buf(level, w.placement.offset + round(col_bytes * c0), chunk),),
                          writes=(Buf(f"wbuf{slot}", 0, chunk),), nbytes=chunk, cols=(c0, c1), slot=slot,
                          traffic=((level, chunk, 0),) + self.slot_traffic(slot, 0, chunk))
            refetch = 1 if x_bytes <= self.slot_bytes else math.ceil((c1 - c0) / c)
            out_bytes = math.ceil(rows * (c1 - c0) * self.ab)
            gemm = lw.emit(i, node, kind="gemm", unit="pe", deps=[dma.id] + first,
                           reads=(lw.buf(x), Buf(f"wbuf{slot}", 0, chunk)), writes=(lw.buf(out),),
                           m=rows, k=k, n=c1 - c0, fmt=fmt, density=density, cols=(c0, c1), slot=slot,
                           traffic=((lw.arena, x_bytes * refetch, out_bytes),) + self.slot_traffic(slot, chunk, 0),
                           regfill=k * (c1 - c0), acc=self.fixed_acc(rows, k, c1 - c0))
            lw.note_reads(gemm, [x])
            self.slot_users[slot] = [gemm.id]
            gemms.append(gemm.id)
        lw.note_write(out, gemms)

    def act_matmul(self, i: int, node: Node) -> None:
        lw = self.lw
        a, b = node.inputs
        out = node.output
        m, k = a.type.shape[-2], a.type.shape[-1]
        n = b.type.shape[-1]
        batch = math.prod(out.type.shape[:-2])
        b_batch = math.prod(b.type.shape[:-2])
        per_head = math.ceil(k * n * self.ab)
        heads = max(1, int(self.slot_bytes // per_head)) if b_batch > 1 else batch
        first = lw.read_deps([a, b]) + lw.write_deps(out)
        a_per = math.ceil(m * k * self.ab)
        gemms = []
        for h0 in range(0, batch, heads):
            h1 = min(batch, h0 + heads)
            nb = per_head * ((h1 - h0) if b_batch > 1 else 1)
            slot = self.next_slot()
            dma = lw.emit(i, node, kind="dma", unit=f"dma.{lw.arena}", deps=self.slot_users[slot] + first,
                          reads=(lw.buf(b),), writes=(Buf(f"wbuf{slot}", 0, nb),), nbytes=nb, cols=(h0, h1),
                          slot=slot, traffic=((lw.arena, nb, 0),) + self.slot_traffic(slot, 0, nb))
            refetch = 1 if a_per * (h1 - h0) <= self.slot_bytes else math.ceil(n / self.t.compute.cols)
            out_bytes = math.ceil((h1 - h0) * m * n * self.ab)
            gemm = lw.emit(i, node, kind="gemm", unit="pe", deps=[dma.id] + first,
                           reads=(lw.buf(a), Buf(f"wbuf{slot}", 0, nb)), writes=(lw.buf(out),),
                           batch=h1 - h0, m=m, k=k, n=n, fmt=self.t.compute.matmul_format, cols=(h0, h1),
                           slot=slot, traffic=((lw.arena, a_per * (h1 - h0) * refetch, out_bytes),)
                           + self.slot_traffic(slot, nb, 0),
                           regfill=(h1 - h0) * k * n, acc=(h1 - h0) * self.fixed_acc(m, k, n))
            lw.note_reads(dma, [b])
            lw.note_reads(gemm, [a])
            self.slot_users[slot] = [gemm.id]
            gemms.append(gemm.id)
        lw.note_write(out, gemms)

    def slot_traffic(self, slot: int, rd: int, wr: int) -> tuple:
        """A weight-buffer slot of the fixed lowering is one of the target's operand buffers."""
        return ((self.slot_buffers[slot], rd, wr),) if self.slot_buffers else ()

    def fixed_acc(self, rows: int, k: int, n: int) -> int:
        """Accumulator accesses of a weight-stationary chunk: each column tile's partial sums over its k tiles."""
        t_k = math.ceil(k / self.t.compute.rows)
        return rows * n * (2 * t_k - 1) if t_k > 1 else 0
