"""The roofline of a simulated program: per layer, achieved cycles against the two bounds.

For each graph node a program implements (a "layer" of the report):

- compute-bound cycles: its work at the peak rate of the unit that does it
  (MACs over the PE array's MACs per cycle; elements x scans over the
  special-function unit's elements per cycle); 0 for pure data movement;
- memory-bound cycles: for each memory level, the bytes it reads over the
  level's read bandwidth plus the bytes it writes over its write bandwidth;
  the slowest level binds;
- achieved cycles: from the start of the node's first instruction to the
  end of its last, as simulated (overlap with neighbours included).

`efficiency` = the larger bound over the achieved cycles: 100 % means the
layer runs at its roof; well below means it waits for something else
(dependencies, a busy unit, DMA latency, tiles that do not fill the array).
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.targets.codegen.program import Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.timing import SimResult


@dataclass(slots=True)  # not frozen: one per node, and a frozen __init__ pays a call per field; never changed
class LayerBound:
    layer: str            # e.g. "linear %57"
    op: str
    unit: str             # pe | sfu | dma: what does its work
    ops: float            # MACs (pe) or element-scans (sfu); 0 for data movement
    achieved: float       # cycles
    compute: float        # cycles at the unit's peak
    memory: float         # cycles at the binding level's bandwidth
    level: str            # the binding memory level
    level_bytes: float    # bytes read and written in that level
    shape: str = ""       # GEMM: m x k x n (batch x m x k x n); SFU: elements

    @property
    def bound(self) -> str:
        return "compute" if self.compute >= self.memory else f"memory ({self.level})"

    @property
    def efficiency(self) -> float:
        return max(self.compute, self.memory) / self.achieved if self.achieved else 1.0


def roofline(program: Program, sim: SimResult, target: Target) -> list[LayerBound]:
    """One `LayerBound` per graph node of the program, in program order."""
    groups: dict[int, list] = {}
    for ins in program.instrs:
        if ins.kind != "power":  # a bank's power state, no layer's work
            groups.setdefault(ins.node, []).append(ins)
    bounds: dict[tuple, tuple] = {}  # a lone vector instruction's bounds are its sizes': like layers share them
    out = []
    for instrs in groups.values():
        first = instrs[0]
        key = (first.op, first.elements, first.scans, first.traffic) \
            if len(instrs) == 1 and first.kind == "vec" else None
        known = bounds.get(key) if key is not None else None
        if known is None:
            known = _bounds(instrs, target)
            if key is not None:
                bounds[key] = known
        if len(instrs) == 1:
            achieved = sim.finish[first.id] - sim.start[first.id]
        else:
            achieved = max(sim.finish[i.id] for i in instrs) - min(sim.start[i.id] for i in instrs)
        unit, ops, compute, memory, level, nbytes, shape = known
        out.append(LayerBound(first.layer, first.op, unit, ops, achieved, compute, memory, level, nbytes, shape))
    return out


def _bounds(instrs: list, target: Target) -> tuple:
    """(unit, ops, compute-bound cycles, memory-bound cycles, binding level, its bytes, shape) of one layer."""
    c = target.compute
    macs = sum(i.macs for i in instrs)
    elems = sum(i.elements * i.scans for i in instrs if i.kind == "vec")
    shape = ""
    if macs:
        unit, ops, compute = "pe", float(macs), macs / c.macs_per_cycle
        g = next(i for i in instrs if i.kind == "gemm")
        if g.tile is not None:  # the blocks of a mapped product: its whole extent
            b, m, k, n = (max(i.tile[j] for i in instrs if i.kind == "gemm") for j in (1, 3, 5, 7))
            shape = f"{m}x{k}x{n}" if b == 1 else f"{b}x{m}x{k}x{n}"
        elif all(i.batch == 1 for i in instrs if i.kind == "gemm"):  # column chunks of one product
            shape = f"{g.m}x{g.k}x{macs // (g.m * g.k)}"
        else:  # head chunks of a batched product
            shape = f"{macs // (g.m * g.k * g.n)}x{g.m}x{g.k}x{g.n}"
    elif elems:
        unit, ops, compute = "sfu", float(elems), elems / target.sfu.elements_per_cycle
        shape = f"{sum(i.elements for i in instrs if i.kind == 'vec')}"
    else:
        unit, ops, compute = "dma", 0.0, 0.0
    per_level: dict[str, list[float]] = {}
    for i in instrs:
        for lvl, rd, wr in i.traffic:
            acc = per_level.setdefault(lvl, [0.0, 0.0])
            acc[0] += rd
            acc[1] += wr
    memory, level, nbytes = 0.0, "", 0.0
    for lvl, (rd, wr) in sorted(per_level.items()):
        if lvl not in target.memory_names:
            continue
        m = target.level(lvl)
        cycles = rd / m.read_bytes_per_cycle + wr / m.write_bytes_per_cycle
        if cycles > memory:
            memory, level, nbytes = cycles, lvl, rd + wr
    return unit, ops, compute, memory, level, nbytes, shape
