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

A mapped product's blocks (`targets.codegen.mapped`): a fill puts an
operand's tile into a slot; a block's product reads its tiles from the slots
their fills filled (or from memory when the operand streams) and adds into
its output block's partial sums; a final drain writes the block (and its bias
slice) to the arena. A product that reads a slot before its fill arrived, or
a drain before its reduction is complete, is an error.
"""

from __future__ import annotations

import math

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.graph import Value
from aalbert.ir.interpreter import check_inputs
from aalbert.ir.module import Module
from aalbert.ir.registry import Trait, get_op
from aalbert.targets.codegen.program import Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.timing import simulate


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
    """Run `program` on `inputs`; a mapped product runs block by block (the program is lowered again with
    its products expanded when they are single instructions)."""
    if any(i.cycles for i in program.instrs):
        from aalbert.targets.codegen.lower import lower
        program = lower(module, target, program.task, expand=True)
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
    slots = _Slots()
    mapped = _MappedState(program, graph, value)
    timing = simulate(program, target)
    # an instruction reads its operands when it starts and its results land when it finishes
    events = sorted([(timing.start[i], 1, i) for i in range(len(program.instrs))]
                    + [(timing.finish[i], 0, i) for i in range(len(program.instrs))])
    pending: dict[int, object] = {}
    with np.errstate(all="ignore"):
        for _, is_start, i in events:
            ins = program.instrs[i]
            node = graph.nodes[ins.node]
            if ins.role:
                if is_start:
                    pending[i] = mapped.begin(ins, node)
                else:
                    mapped.commit(ins, node, pending.pop(i), arena, address)
            elif is_start:
                pending[i] = _begin(ins, node, slots, value)
            else:
                _commit(ins, node, pending.pop(i), slots, arena, address)
    out = {}
    for name, v in graph.outputs:
        out[name] = value(v).astype(v.type.dtype.np)
    return out


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


def _commit(ins, node, result, slots: _Slots, arena: _Arena, address) -> None:
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


class _MappedState:
    """Slots, partial sums and checks of mapped products during functional execution."""

    def __init__(self, program: Program, graph, value):
        self.graph, self.value = graph, value
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
        d1, d2 = dims
        return x[b[0]:b[1], rng[d1][0]:rng[d1][1], rng[d2][0]:rng[d2][1]]

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
            if node.op == "linear" and len(node.inputs) == 3:
                y = y + self.value(node.inputs[2])[ins.tile[6]:ins.tile[7]]
            return y
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
