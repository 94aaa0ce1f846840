"""The timing and energy simulator: reads a `Program` and a `Target`, nothing else.

Each unit (the PE array, the SFU, one DMA channel per source memory) runs
its instructions in program order; an instruction starts when its unit is
free and every instruction it depends on has finished. Cycles = the
makespan. Durations:

- DMA: the source's access latency plus bytes over the narrowest of the
  source's read bandwidth, the destination's write bandwidth and the DMA path
  (a copy within one level, a layout op, reads and writes its port in turn);
- GEMM, weight-stationary R x C array: every R x C weight tile streams the m
  rows through, max(m, R) cycles per tile (the next tile loads meanwhile),
  plus R + C cycles to fill and drain; output-stationary: every R x C output
  tile accumulates over k, max(k, R) cycles per tile; `energy_and_cycles`
  zero-skipping scales the tiles by the weights' density; a format that
  runs more MACs per cycle (`throughput`, FP4's 2) divides the tiles'
  cycles; and never faster than the activations' memory traffic allows;
- SFU: elements x scans over elements per cycle, or the memory traffic.

A mapped product (see `targets.mapping`) is one `gemm` whose cycles and
traffic are its block schedule's, as the cost model counts them. Expanded
into blocks (`lower(..., expand=True)`), a block's `gemm` touches no memory
port: its transfers are the DMAs around it, so a port's transfers queue on
its unit, and its cycles are its tiles on the array by its dataflow
(`mapped_cycles`), plus the array's fill and drain on a node's first block.

Energy: MACs x the format's energy per MAC (x density when zero operands are
clock-gated), SFU elements x scans x energy per element, every byte read
or written in a memory level or a buffer at its per-byte energy, the PE
registers (per MAC, and per stationary value loaded), the accumulators (per
access), the interconnect (per byte a transfer moves, per stretch it
crosses), and the static energy over the makespan (`targets.power`: the PE
array's, SFU's and the other components' leakage, each memory bank's leakage
by its power state over time - as the program's `power` instructions set it,
where it has them (a wake-up lasts the level's wake-up latency, and the
accesses that wait for it stall until it ends) - wake-ups, DRAM background
by state). The
breakdowns (by layer, op, memory level, component, unit) add up to the total.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from aalbert.targets.codegen.program import Instr, Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.power import Accesses, Region, Static, static_energy


@dataclass
class SimResult:
    target: str
    task: str
    start: list[float]
    finish: list[float]
    cycles: float
    clock_mhz: float
    energy: dict[str, float]               # pJ: dynamic (pe, sfu, <level>) and static (`power.static_energy` keys)
    by_layer: dict[str, float] = field(default_factory=dict)   # dynamic pJ per graph node
    by_op: dict[str, float] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)      # unit -> busy cycles
    macs: int = 0
    traffic: dict[str, list[float]] = field(default_factory=dict)  # level -> [bytes read, bytes written]
    warm: Static | None = None             # static energy of an inference on a powered chip
    cold: Static | None = None             # ... right after a power-up (volatile memory held only this task's data)
    accesses: Accesses | None = field(default=None, repr=False)
    after_power_up: bool = False           # `energy` charges the static part as `cold` (else `warm`)

    @property
    def static(self) -> Static:
        return self.cold if self.after_power_up else self.warm

    @property
    def dynamic(self) -> dict[str, float]:
        return {k: v for k, v in self.energy.items() if ":" not in k}

    @property
    def seconds(self) -> float:
        return self.cycles / (self.clock_mhz * 1e6)

    @property
    def total_pj(self) -> float:
        return sum(self.energy.values())

    @property
    def power_mw(self) -> float:
        return self.total_pj * 1e-12 / self.seconds * 1e3 if self.seconds else 0.0

    def by_level(self) -> dict[str, float]:
        """Dynamic and static energy per memory level."""
        out: dict[str, float] = {}
        for k, v in self.energy.items():
            name = component(k)
            if name not in ("pe", "sfu"):
                out[name] = out.get(name, 0.0) + v
        return out


def component(key: str) -> str:
    """The component an energy key charges: 'sram', 'leakage:sram:on', 'background:dram:active' -> sram/dram."""
    parts = key.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def with_static(r: SimResult, target: Target, image: list[Region] | None, cold: bool,
                accesses: Accesses | None = None) -> SimResult:
    """`r` with its static energy computed for `image` (and `accesses`, when they were moved to another task's
    bytes), charged as right after a power-up when `cold`."""
    acc = accesses if accesses is not None else r.accesses
    span = r.cycles * 1000.0 / target.clock_mhz
    warm = static_energy(acc, image, target, span, r.task, cold=False)
    after = static_energy(acc, image, target, span, r.task, cold=True)
    energy = {**r.dynamic, **(after if cold else warm).energy}
    return dataclasses.replace(r, energy=energy, warm=warm, cold=after, accesses=acc, after_power_up=cold)


def _latency_cycles(target: Target, level: str) -> float:
    return math.ceil(target.level(level).read_latency_ns * target.clock_mhz / 1000.0)


def duration(ins: Instr, t: Target) -> float:
    if ins.cycles:
        lanes = t.compute.throughput(ins.fmt) if ins.kind == "gemm" else 1.0
        return ins.cycles if lanes == 1.0 else math.ceil(ins.cycles / lanes)  # a mapped product's schedule
    if ins.kind == "power":  # a wake-up takes the level's wake-up latency; gating takes effect at once
        return math.ceil(t.level(ins.level).power.wakeup_ns * t.clock_mhz / 1000.0) if ins.state == "on" else 0.0
    memories = t.memory_names
    if ins.kind == "dma":
        bw = [t.dma_bytes_per_cycle]
        port = 0.0  # a copy within one level (a layout op) reads and writes through the same port, in turn
        for lvl, rd, wr in ins.traffic:
            if lvl in memories:
                m = t.level(lvl)
                bw += ([m.read_bytes_per_cycle] if rd else []) + ([m.write_bytes_per_cycle] if wr else [])
                if rd and wr and not ins.role:
                    port = max(port, rd / m.read_bytes_per_cycle + wr / m.write_bytes_per_cycle)
        return _latency_cycles(t, ins.unit.split(".", 1)[1]) + max(ins.nbytes / min(bw), port)
    memory = max([rd / t.level(lvl).read_bytes_per_cycle + wr / t.level(lvl).write_bytes_per_cycle
                  for lvl, rd, wr in ins.traffic if lvl in memories] or [0.0])
    if ins.kind == "gemm":
        lanes = t.compute.throughput(ins.fmt)  # a narrower format may run more MACs per cycle (FP4: 2x)
        if ins.role:
            mapped = mapped_cycles(ins, t)
            return (mapped if lanes == 1.0 else math.ceil(mapped / lanes)) + (
                t.compute.rows + t.compute.cols if ins.fill else 0)
        cycles = gemm_cycles(ins, t)
        return max(cycles if lanes == 1.0 else math.ceil(cycles / lanes), memory)
    return max(math.ceil(ins.elements * ins.scans / t.sfu.elements_per_cycle), memory)


def gemm_cycles(ins: Instr, t: Target) -> float:
    """Cycles of the PE array for one GEMM instruction (the analytic count of its tiling)."""
    c = t.compute
    r, cols = c.rows, c.cols
    if c.dataflow == "weight_stationary":
        tiles = ins.batch * math.ceil(ins.k / r) * math.ceil(ins.n / cols)
        per_tile = max(ins.m, r)
    else:
        tiles = ins.batch * math.ceil(ins.m / r) * math.ceil(ins.n / cols)
        per_tile = max(ins.k, r)
    if c.zero_skipping == "energy_and_cycles":
        tiles = math.ceil(tiles * ins.density)
    return tiles * per_tile + r + cols


def mapped_cycles(ins: Instr, t: Target) -> float:
    """Cycles of a mapped block on the array: its tiles by dataflow, each as long as what streams through it."""
    r, c = t.compute.rows, t.compute.cols
    dataflow, hold = ins.role.split(".")
    b, m, k, n = ins.batch, ins.m, ins.k, ins.n
    if dataflow == "os":
        cycles = b * math.ceil(m / r) * math.ceil(n / c) * max(k, r)
    else:
        rows, cols, stream = (k, n, m) if dataflow == "ws" else (k, m, n)
        tiles = b * math.ceil(rows / r) * math.ceil(cols / c)
        cycles = tiles * stream if hold == "pe" else tiles * max(stream, r)
    if t.compute.zero_skipping == "energy_and_cycles" and dataflow == "ws" and ins.density < 1.0:
        cycles = math.ceil(cycles * ins.density)
    return cycles


def dynamic_energy(ins: Instr, t: Target) -> dict[str, float]:
    e: dict[str, float] = {}
    if ins.kind == "power":  # its wake-up energy is static energy (`power.static_energy`)
        return e
    parts = t.parts
    memories = t.memory_names
    gated = ins.density if t.compute.zero_skipping != "none" else 1.0
    if ins.kind == "gemm":
        e["pe"] = ins.macs * t.compute.mac_energy(ins.fmt) * gated
        regs = ins.macs * parts.registers.per_mac_pj() * gated + ins.regfill * parts.registers.operand_pj
        if regs:
            e["pe_regs"] = regs
        if ins.acc:
            e["acc"] = ins.acc * parts.accumulators.access_pj
    elif ins.kind == "vec":
        e["sfu"] = ins.elements * ins.scans * t.sfu.energy_pj_per_element
    moved = 0.0
    for lvl, rd, wr in ins.traffic:
        if lvl in memories:
            m = t.level(lvl)
            e[lvl] = e.get(lvl, 0.0) + rd * m.read_pj_per_byte + wr * m.write_pj_per_byte
            moved += rd + wr
        else:
            b = parts.buffer(lvl)
            e[lvl] = e.get(lvl, 0.0) + rd * b.read_pj_per_byte + wr * b.write_pj_per_byte
    noc = (ins.nbytes * ins.hops if ins.nbytes else moved) * parts.noc.energy_pj_per_byte
    if noc:
        e["noc"] = noc
    return e


def simulate(program: Program, target: Target, image: list[Region] | None = None, cold: bool = False) -> SimResult:
    """Schedule and charge `program`; `image` says what the memories hold (`power.memory_image`; without it,
    a bank holds data only if the program touches it), `cold` charges the inference right after a power-up."""
    n = len(program.instrs)
    start, finish = [0.0] * n, [0.0] * n
    unit_free: dict[str, float] = {}
    busy: dict[str, float] = {}
    energy: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    by_op: dict[str, float] = {}
    traffic: dict[str, list[float]] = {}
    macs = 0
    vec: dict[tuple, tuple[float, dict[str, float]]] = {}  # a vector instruction's cost is its sizes'
    for ins in program.instrs:
        s = unit_free.get(ins.unit, 0.0)
        for d in ins.deps:
            if finish[d] > s:
                s = finish[d]
        if ins.kind == "vec":
            key = (ins.elements, ins.scans, ins.traffic, ins.cycles)
            known = vec.get(key)
            if known is None:
                known = vec[key] = (duration(ins, target), dynamic_energy(ins, target))
            dur, e = known
        else:
            dur, e = duration(ins, target), dynamic_energy(ins, target)
        start[ins.id], finish[ins.id] = s, s + dur
        unit_free[ins.unit] = s + dur
        busy[ins.unit] = busy.get(ins.unit, 0.0) + dur
        total = 0.0
        for k, v in e.items():
            energy[k] = energy.get(k, 0.0) + v
            total += v
        if ins.kind != "power":
            by_layer[ins.layer] = by_layer.get(ins.layer, 0.0) + total
            by_op[ins.op] = by_op.get(ins.op, 0.0) + total
        for lvl, rd, wr in ins.traffic:
            acc = traffic.setdefault(lvl, [0.0, 0.0])
            acc[0] += rd
            acc[1] += wr
        if ins.kind == "gemm":
            macs += ins.macs
    cycles = max(finish, default=0.0)
    result = SimResult(target.name, program.task, start, finish, cycles, target.clock_mhz, energy, by_layer, by_op,
                       busy, macs, traffic, accesses=Accesses.of(program, start, finish, target))
    return with_static(result, target, image, cold)
