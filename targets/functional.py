"""Functional mode: execute a `Program`'s instructions on numpy data in the placed buffers.

The activation arena is emulated byte by byte (one float64 slot per byte,
each value written at its element stride), so an instruction that reads a
buffer before its producer wrote it, or a planner that lets two live values
share bytes, shows up as wrong numbers or an error. Instructions follow their
simulated times - an instruction reads its operands when it starts, its
results land when it finishes - so a missing dependency shows up too. GEMM
chunks fill their output columns from the weight-buffer slot their DMA
filled; SFU and layout instructions apply the op's registry semantics. Outputs equal the reference interpreter's
on the same (compressed) module, to floating-point tolerance: that is the
proof that lowering is correct.
"""

from __future__ import annotations

import math

import numpy as np

from aalbert.ir.errors import AalbertError
from aalbert.ir.graph import Value
from aalbert.ir.interpreter import check_inputs
from aalbert.ir.module import Module
from aalbert.ir.registry import Trait, get_op

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
        if get_op(node.op).has(Trait.VIEW):
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
    # an instruction reads its operands when it starts and its results land when it finishes
    events = sorted([(timing.start[i], 1, i) for i in range(len(program.instrs))]
                    + [(timing.finish[i], 0, i) for i in range(len(program.instrs))])
    pending: dict[int, object] = {}
    with np.errstate(all="ignore"):
        for _, is_start, i in events:
            ins = program.instrs[i]
            node = graph.nodes[ins.node]
            if is_start:
                pending[i] = _begin(ins, node, slots, holder, value)
            else:
                _commit(ins, node, pending.pop(i), slots, holder, arena, address)
    out = {}
    for name, v in graph.outputs:
        out[name] = value(v).astype(v.type.dtype.np)
    return out


def _begin(ins, node, slots, holder, value):
    """Read the operands and compute; nothing is written yet."""
    if ins.kind == "dma" and ins.slot >= 0:
        lo, hi = ins.cols
        operand = value(node.inputs[1])
        if _weight_product(node):  # a chunk of output columns of the weight
            return operand[:, lo:hi]
        return _batched(operand, node, lo, hi)  # some heads of attention's second operand
    if ins.kind == "gemm":
        if holder[ins.slot] != (ins.node, ins.cols):
            raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) reads weight-buffer slot "
                                 f"{ins.slot} before its transfer arrived (a missing dependency)")
        return _gemm(ins, node, slots[ins.slot], value)
    return get_op(node.op).eval([value(v) for v in node.inputs], node.attrs)


def _commit(ins, node, result, slots, holder, arena: "_Arena", address) -> None:
    if ins.kind == "dma" and ins.slot >= 0:
        slots[ins.slot] = result
        holder[ins.slot] = (ins.node, ins.cols)
    elif ins.kind == "gemm":
        y, positions = result
        arena.write(node.output, address(node.output), y, positions)
    else:
        for v, r in zip(node.outputs, result):
            arena.write(v, address(v), r)


def _weight_product(node) -> bool:
    p = node.inputs[1].producer
    return node.op == "linear" or (p is not None and p.op == "weight")


def _batched(b: np.ndarray, node, lo: int, hi: int) -> np.ndarray:
    """The stationary operand of an activation matmul for output batches [lo, hi)."""
    out_batch = node.output.type.shape[:-2]
    k, n = b.shape[-2], b.shape[-1]
    full = np.broadcast_to(b, out_batch + (k, n)).reshape(-1, k, n)
    return full[lo:hi]


def _gemm(ins, node, stationary, value) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's results and their flat positions in the output tensor."""
    out = node.output
    lo, hi = ins.cols
    if _weight_product(node):
        y = np.matmul(value(node.inputs[0]), stationary)
        if node.op == "linear" and len(node.inputs) == 3:
            y = y + value(node.inputs[2])[lo:hi]
        n = out.type.shape[-1]
        rows = math.prod(out.type.shape[:-1])
        positions = (np.arange(rows)[:, None] * n + np.arange(lo, hi)[None, :]).reshape(-1)
        return y.astype(out.type.dtype.np), positions
    a = value(node.inputs[0])
    m, k = a.shape[-2], a.shape[-1]
    a3 = np.broadcast_to(a, out.type.shape[:-2] + (m, k)).reshape(-1, m, k)[lo:hi]
    y = np.matmul(a3, stationary)
    per = out.type.shape[-2] * out.type.shape[-1]
    return y.astype(out.type.dtype.np), np.arange(lo * per, hi * per)
