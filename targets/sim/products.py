"""Functional execution of mapped products (`targets.codegen.mapped`), as the program gives them.

Block by block (a program lowered with `expand=True`): a fill puts an
operand's tile into a slot; a block's product reads its tiles from the slots
their fills filled (or from memory when the operand streams) and adds into
its output block's partial sums; a final drain writes the block (and its
bias slice) to the arena. A product that reads a slot before its fill
arrived, or a drain before its reduction is complete, is an error.

Whole (one `gemm` instruction standing for its block schedule, as `lower`
emits it by default): the same blocks in the same order - the mapping's
block sequence, which the block-by-block program follows - each product
added into its output block's partial sums as the block-by-block program
adds them, so the result is the same to the bit; it reads its operands when
the instruction starts and writes every output block when it finishes. The
instruction must cover the whole product, and its output must not share
bytes with its operands (its blocks write while later blocks still read).
"""

from __future__ import annotations

import math

import numpy as np

from aalbert.ir.facts import FactError
from aalbert.ir.mapping import Mapping
from aalbert.targets.codegen.blocks import block_sequence
from aalbert.targets.codegen.program import Instr, Program
from aalbert.targets.mapping.loops import DIMS
from aalbert.targets.mapping.problem import Gemm
from aalbert.targets.sim.arena import ExecutionError


class MappedState:
    """Slots, partial sums and checks of mapped products during functional execution."""

    def __init__(self, program: Program, graph, value):
        self.program, self.graph, self.value = program, graph, value
        self.slots: dict[tuple, tuple] = {}        # (node, operand, slot) -> (tile, data)
        self.acc: dict[tuple, np.ndarray] = {}     # (node, output block) -> partial sums
        self.k_seen: dict[tuple, int] = {}         # (node, output block) -> reduction extent added
        self.filled = {(i.node, i.operand) for i in program.instrs if i.role == "fill"}

    def operands(self, node) -> tuple[np.ndarray, np.ndarray]:
        """a as (batch, m, k) and w as (batch or 1, k, n)."""
        a, w = self.value(node.inputs[0]), self.value(node.inputs[1])
        out = node.output.type.shape
        if node.op == "linear" or w.ndim == 2 and len(out) <= 2:
            return a.reshape(1, -1, a.shape[-1]), w.reshape(1, w.shape[-2], w.shape[-1])
        batch = out[:-2]
        a3 = np.broadcast_to(a, batch + a.shape[-2:]).reshape(-1, a.shape[-2], a.shape[-1])
        w3 = w.reshape(-1, w.shape[-2], w.shape[-1]) if math.prod(w.shape[:-2]) > 1 else w.reshape(1, *w.shape[-2:])
        return a3, w3

    @staticmethod
    def part(x: np.ndarray, t, dims: str) -> np.ndarray:
        rng = {"b": (t[0], t[1]), "m": (t[2], t[3]), "k": (t[4], t[5]), "n": (t[6], t[7])}
        b = rng["b"] if x.shape[0] > 1 else (0, 1)
        d1, d2 = dims[0], dims[1]
        return x[b[0]:b[1], rng[d1][0]:rng[d1][1], rng[d2][0]:rng[d2][1]]

    def bias(self, node, y: np.ndarray, n0: int, n1: int) -> np.ndarray:
        """An output block's final value: its partial sums plus its bias slice (a linear's third operand)."""
        if node.op == "linear" and len(node.inputs) == 3:
            return y + self.value(node.inputs[2])[n0:n1]
        return y

    def begin(self, ins, node):
        if ins.kind == "dma" and ins.role == "fill":
            a3, w3 = self.operands(node)
            data = self.part(a3, ins.tile, "mk") if ins.operand == "a" else self.part(w3, ins.tile, "kn")
            return data
        if ins.kind == "dma" and ins.role == "drain" and ins.final:
            key = (ins.node, self.out_key(ins.tile))
            if key not in self.acc or self.k_seen.get(key, 0) != node.inputs[0].type.shape[-1]:
                raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) drains an output block before its "
                                     f"reduction is complete (a missing dependency or block)")
            y = self.acc.pop(key)
            self.k_seen.pop(key, None)
            return self.bias(node, y, ins.tile[6], ins.tile[7])
        if ins.kind == "gemm":
            a3, w3 = self.operands(node)
            tiles = {}
            for op, x, dims in (("a", a3, "mk"), ("w", w3, "kn")):
                want = self.part(x, ins.tile, dims)
                if (ins.node, op) in self.filled:
                    held = [d for (n_, o_, _), (tile, d) in self.slots.items() if n_ == ins.node and o_ == op
                            and d.shape == want.shape and self.covers(tile, ins.tile, op, x.shape[0] > 1)]
                    if not held:
                        raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) reads its {op} block before "
                                             f"the transfer that fills it arrived (a missing dependency)")
                    tiles[op] = held[0]
                else:
                    tiles[op] = want
            return np.matmul(tiles["a"], tiles["w"])
        return None

    @staticmethod
    def covers(held, want, op: str, batched: bool) -> bool:
        dims = {"a": (0, 1, 2), "w": ((0,) if batched else ()) + (2, 3)}[op]
        return all(held[2 * d] == want[2 * d] and held[2 * d + 1] == want[2 * d + 1] for d in dims)

    @staticmethod
    def out_key(t) -> tuple:
        return (t[0], t[1], t[2], t[3], t[6], t[7])

    def commit(self, ins, node, result, arena, address) -> None:
        if ins.kind == "dma" and ins.role == "fill" and ins.final:  # the last slice of a tile completes it
            self.slots[(ins.node, ins.operand, ins.slot)] = (ins.tile, result)
        elif ins.kind == "gemm":
            key = (ins.node, self.out_key(ins.tile))
            self.acc[key] = self.acc.get(key, 0.0) + result
            self.k_seen[key] = self.k_seen.get(key, 0) + (ins.tile[5] - ins.tile[4])
        elif ins.kind == "dma" and ins.role == "drain" and ins.final:
            out = node.output
            shape = out.type.shape
            m_total, n_total = math.prod(shape[:-1]) if node.op == "linear" else shape[-2], shape[-1]
            b0, b1, m0, m1, _, _, n0, n1 = ins.tile
            per_b = (m_total * n_total) if node.op != "linear" else 0
            pos = (np.arange(b0, b1)[:, None, None] * per_b + np.arange(m0, m1)[None, :, None] * n_total
                   + np.arange(n0, n1)[None, None, :]).reshape(-1)
            arena.write(out, address(out), np.asarray(result, dtype=out.type.dtype.np).reshape(-1), pos)

    # -- a product as one instruction ----------------------------------------------------------------------------
    def whole(self, ins: Instr, node, g: Gemm) -> np.ndarray:
        """The output of a product given as one instruction, as (b, m, n): its mapping's blocks cover it."""
        if tuple(ins.tile or ()) != (0, g.b, 0, g.m, 0, g.k, 0, g.n):
            raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) covers {ins.tile} of a product of "
                                 f"{g.b}x{g.m}x{g.k}x{g.n} (b x m x k x n)")
        text = self.program.mappings.get(ins.node)
        try:
            mapping = Mapping.parse(text) if text is not None else None
        except FactError as e:
            raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}): {e}") from None
        if mapping is None:
            raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) is a mapped product the program gives "
                                 "no mapping for")
        a3, w3 = self.operands(node)
        acc: dict[tuple, np.ndarray] = {}
        for _, blk in block_sequence(g, mapping):  # the block-by-block program's order: its partial sums' order
            t = tuple(x for d in DIMS for x in blk[d])
            key = self.out_key(t)
            acc[key] = acc.get(key, 0.0) + np.matmul(self.part(a3, t, "mk"), self.part(w3, t, "kn"))
        out = node.output.type
        y = np.empty((g.b, g.m, g.n), dtype=out.dtype.np)  # a linear's rows are its m: b is 1
        for (b0, b1, m0, m1, n0, n1), part in acc.items():
            y[b0:b1, m0:m1, n0:n1] = self.bias(node, part, n0, n1)
        return y
