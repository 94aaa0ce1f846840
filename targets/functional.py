"""Functional mode: execute a `Program`'s instructions on numpy data in the placed buffers.

The activation arena is emulated byte by byte (one float64 slot per byte,
each value written at its element stride), so an instruction that reads a
buffer before its producer wrote it, or a planner that lets two live values
share bytes, shows up as wrong numbers. Instructions run in the order of
their simulated start times (ties by program order), so a missing
dependency shows up too. GEMM chunks fill their output columns from the
weight-buffer slot their DMA filled; SFU and layout instructions apply the
op's semantics from the registry. Outputs equal the reference interpreter's
on the same (compressed) module, to floating-point tolerance: that is the
proof that lowering is correct.
"""

from __future__ import annotations

import math

import numpy as np

from ir.errors import AalbertError
from ir.graph import Value
from ir.interpreter import check_inputs
from ir.module import Module
from ir.registry import get_op

from .program import Program
from .sim import simulate
from .spec import Target


class ExecutionError(AalbertError):
    """The program did something the hardware would get wrong (a missing dependency, a bad address)."""


class _Arena:
    def __init__(self, base: int, size: int, activation_bits: int):
        self.base = base
        self.mem = np.full(size, np.nan)
        self.written = np.zeros(size, dtype=bool)
        self.ab = activation_bits / 8

    def _index(self, v: Value, offset: int) -> np.ndarray:
        eb = self.ab if v.type.dtype.is_float else v.type.dtype.itemsize
        start = offset - self.base
        return start + (np.arange(v.type.numel) * eb).astype(np.int64)

    def read(self, v: Value, offset: int) -> np.ndarray:
        idx = self._index(v, offset)
        if not self.written[idx].all():
            raise ExecutionError(f"%{v.name} is read from arena bytes nothing has written yet")
        return self.mem[idx].astype(v.type.dtype.np).reshape(v.type.shape)

    def write(self, v: Value, offset: int, array: np.ndarray, flat_positions: np.ndarray | None = None) -> None:
        idx = self._index(v, offset)
        if flat_positions is not None:
            idx = idx[flat_positions]
        self.mem[idx] = np.asarray(array, dtype=np.float64).reshape(-1)
        self.written[idx] = True


def execute(program: Program, module: Module, target: Target, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    graph = module.graphs[program.task]
    bound = check_inputs(graph, inputs)
    arena = _Arena(graph.arena.offset, graph.arena.size, target.compute.activation_bits)
    root: dict[int, Value] = {}
    for node in graph.nodes:
        if node.op == "reshape":
            root[id(node.output)] = root.get(id(node.inputs[0]), node.inputs[0])
    weights: dict[str, np.ndarray] = {}

    def address(v: Value) -> int:
        r = root.get(id(v), v)
        return graph.arena.offset + r.offset

    def value(v: Value) -> np.ndarray:
        p = v.producer
        if p is not None and p.op == "weight":
            name = p.attrs["name"].name
            if name not in weights:
                weights[name] = module.weights[name].values()
            return weights[name]
        if p is not None and p.op == "constant":
            return p.attrs["value"]
        return arena.read(v, address(v))

    for v in graph.inputs:
        arena.write(v, address(v), bound[v.name])
    slots: list[np.ndarray | None] = [None, None]
    holder: list[tuple | None] = [None, None]  # which chunk each weight-buffer slot holds
    timing = simulate(program, target)
    order = sorted(range(len(program.instrs)), key=lambda i: (timing.start[i], i))
    with np.errstate(all="ignore"):
        for i in order:
            ins = program.instrs[i]
            node = graph.nodes[ins.node]
            if ins.kind == "dma" and ins.slot >= 0:
                lo, hi = ins.cols
                operand = value(node.inputs[1])
                if _weight_product(node):  # a chunk of output columns of the weight
                    slots[ins.slot] = operand[:, lo:hi]
                else:  # some heads of attention's second operand
                    slots[ins.slot] = _batched(operand, node, lo, hi)
                holder[ins.slot] = (ins.node, ins.cols)
            elif ins.kind == "gemm":
                if holder[ins.slot] != (ins.node, ins.cols):
                    raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) reads weight-buffer slot "
                                         f"{ins.slot} before its transfer arrived (a missing dependency)")
                _gemm(ins, node, slots[ins.slot], value, arena, address)
            else:
                results = get_op(node.op).eval([value(v) for v in node.inputs], node.attrs)
                for v, r in zip(node.outputs, results):
                    arena.write(v, address(v), r)
    out = {}
    for name, v in graph.outputs:
        out[name] = value(v).astype(v.type.dtype.np)
    return out


def _weight_product(node) -> bool:
    p = node.inputs[1].producer
    return node.op == "linear" or (p is not None and p.op == "weight")


def _batched(b: np.ndarray, node, lo: int, hi: int) -> np.ndarray:
    """The stationary operand of an activation matmul for output batches [lo, hi)."""
    out_batch = node.output.type.shape[:-2]
    k, n = b.shape[-2], b.shape[-1]
    full = np.broadcast_to(b, out_batch + (k, n)).reshape(-1, k, n)
    return full[lo:hi]


def _gemm(ins, node, stationary, value, arena: _Arena, address) -> None:
    out = node.output
    lo, hi = ins.cols
    if _weight_product(node):
        x = value(node.inputs[0])
        y = np.matmul(x, stationary)
        if node.op == "linear" and len(node.inputs) == 3:
            y = y + value(node.inputs[2])[lo:hi]
        n = out.type.shape[-1]
        rows = math.prod(out.type.shape[:-1])
        positions = (np.arange(rows)[:, None] * n + np.arange(lo, hi)[None, :]).reshape(-1)
        arena.write(out, address(out), y.astype(out.type.dtype.np), positions)
        return
    a = value(node.inputs[0])
    m, k = a.shape[-2], a.shape[-1]
    out_batch = out.type.shape[:-2]
    a3 = np.broadcast_to(a, out_batch + (m, k)).reshape(-1, m, k)[lo:hi]
    y = np.matmul(a3, stationary)
    per = out.type.shape[-2] * out.type.shape[-1]
    positions = np.arange(lo * per, hi * per)
    arena.write(out, address(out), y.astype(out.type.dtype.np), positions)
