"""Functional mode: execute a `Program`'s instructions on numpy data in the placed buffers.

The activation arena is emulated byte by byte (`targets.sim.arena`), so an
instruction that reads a buffer before its producer wrote it, or a planner
that lets two live values share bytes, shows up as wrong numbers or an error.
Instructions follow their simulated times - an instruction reads its operands
when it starts, its results land when it finishes - so a missing dependency
shows up too. GEMM chunks of the fixed lowering fill their output columns
from the weight-buffer slot their DMA filled; mapped products run their
blocks in their mapping's order (`targets.sim.products`: whole, as one
instruction, or block by block from the slots their fills filled when the
program was lowered with `expand=True`); SFU and layout instructions apply the
op's registry semantics. Outputs equal the reference interpreter's on the
same (compressed) module, to floating-point tolerance: that is the proof
that lowering is correct.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from aalbert.ir.analysis import buffer_bytes
from aalbert.ir.graph import Value
from aalbert.ir.interpreter import check_inputs
from aalbert.ir.module import Module
from aalbert.ir.registry import Trait, get_op, is_data
from aalbert.targets.codegen.program import Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.mapping.problem import gemm_of
from aalbert.targets.sim.arena import Arena, ExecutionError
from aalbert.targets.sim.products import MappedState
from aalbert.targets.sim.timing import simulate


def execute(program: Program, module: Module, target: Target, inputs: dict[str, np.ndarray],
            progress: Callable[[int], object] | None = None) -> dict[str, np.ndarray]:
    """Run `program` on `inputs`; `progress`, if given, is called with 1 as each instruction finishes."""
    graph = module.graphs[program.task]
    bound = check_inputs(graph, inputs)
    arena = Arena(graph.arena.offset, graph.arena.size, target.compute.activation_bits)
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
    slots = _Slots()
    mapped = MappedState(program, graph, value)
    timing = simulate(program, target)
    # an instruction reads its operands when it starts and its results land when it finishes
    events = sorted([(timing.start[i], 1, i) for i in range(len(program.instrs))]
                    + [(timing.finish[i], 0, i) for i in range(len(program.instrs))])
    pending: dict[int, Any] = {}
    with np.errstate(all="ignore"):
        for _, is_start, i in events:
            ins = program.instrs[i]
            node = graph.nodes[ins.node]
            if ins.kind == "gemm" and ins.cycles:  # a mapped product as one instruction
                if is_start:
                    _apart(ins, node, address, target.compute.activation_bits)
                    pending[i] = mapped.whole(ins, node, gemm_of(module, node, target, graph.arena.level))
                else:
                    arena.write(node.output, address(node.output), pending.pop(i))
            elif ins.role:
                if is_start:
                    pending[i] = mapped.begin(ins, node)
                else:
                    mapped.commit(ins, node, pending.pop(i), arena, address)
            elif is_start:
                pending[i] = _begin(ins, node, slots, value)
            else:
                _commit(ins, node, pending.pop(i), slots, arena, address)
            if not is_start and progress is not None:
                progress(1)
    out = {}
    for name, v in graph.outputs:
        out[name] = value(v).astype(v.type.dtype.np)
    return out


def _apart(ins, node, address, activation_bits: int) -> None:
    """A product's blocks write its output while later blocks still read its operands: they may share no byte."""
    out = node.output
    lo, hi = address(out), address(out) + buffer_bytes(out, activation_bits)
    for v in node.inputs:
        if not is_data(v) and address(v) < hi and lo < address(v) + buffer_bytes(v, activation_bits):
            raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) writes its output over %{v.name}, "
                                 "which it reads")


class _Slots:
    """The fixed lowering's two weight-buffer slots: what each holds, and which chunk (node, columns) it is."""

    def __init__(self) -> None:
        self.data: list[np.ndarray | None] = [None, None]
        self.holder: list[tuple | None] = [None, None]


def _begin(ins, node, slots: _Slots, value):
    """Read the operands and compute; nothing is written yet."""
    if ins.kind == "dma" and ins.slot >= 0:
        lo, hi = ins.cols
        operand = value(node.inputs[1])
        if _weight_product(node):  # a chunk of output columns of the weight
            return operand[:, lo:hi]
        return _batched(operand, node, lo, hi)  # some heads of attention's second operand
    if ins.kind == "gemm":
        if slots.holder[ins.slot] != (ins.node, ins.cols):
            raise ExecutionError(f"instruction {ins.id:04d} ({ins.layer}) reads weight-buffer slot "
                                 f"{ins.slot} before its transfer arrived (a missing dependency)")
        return _gemm(ins, node, slots.data[ins.slot], value)
    return get_op(node.op).eval([value(v) for v in node.inputs], node.attrs)


def _commit(ins, node, result, slots: _Slots, arena: Arena, address) -> None:
    if ins.kind == "dma" and ins.slot >= 0:
        slots.data[ins.slot] = result
        slots.holder[ins.slot] = (ins.node, ins.cols)
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
