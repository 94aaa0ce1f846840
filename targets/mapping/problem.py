"""What the mapper sees: one matrix product (`Gemm`) and the hardware it runs on (`Arch`).

`Gemm` is `out[b, m, n] = sum_k a[b, m, k] * w[b, k, n]` with the bytes of
each element as stored, the memory level each operand lives in (its home),
and what the product costs per MAC. `gemm_of(node, ...)` reads it off a
`linear` or an activation x activation `matmul` of an allocated graph.

`Arch` is a target reduced to what a mapping's cost depends on: the array,
its registers, the operand buffers, the accumulators, the interconnect, and
for every memory level its energy per byte, bandwidth, DMA latency and the
path its data takes to the array (a level that does not reach the array
itself passes its data through an intermediate one: DRAM -> SRAM -> array),
plus the bytes each level has free for staging tiles (after placement).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

from aalbert.ir.graph import Node, Value
from aalbert.ir.module import Module, Weight
from aalbert.targets.hardware.spec import Target

DATAFLOW_CODES = {"weight_stationary": "ws", "output_stationary": "os", "input_stationary": "is"}


@dataclass(frozen=True)
class Gemm:
    b: int
    m: int
    k: int
    n: int
    a_elem: float              # bytes per element of a, as stored
    w_elem: float              # bytes per element of w, values only (a sparse weight: its non-zeros' share)
    w_mask: float              # bytes of bit mask per element of w (0: dense)
    o_elem: float              # bytes per output element
    psum_elem: float           # bytes per partial sum
    a_home: str
    w_home: str
    o_home: str
    w_batched: bool            # w differs per batch element (attention) rather than shared by all
    density: float = 1.0       # non-zero share of w (zero-skipping)
    fmt: str = ""
    bias_bytes: float = 0.0    # bias read with every final output row block (bytes per row block)
    bias_home: str | None = None

    @property
    def macs(self) -> int:
        return self.b * self.m * self.k * self.n

    @property
    def key(self) -> tuple:
        return tuple(getattr(self, f) for f in self.__dataclass_fields__)


@dataclass(frozen=True)
class Port:
    """A memory level as a transfer sees it."""

    name: str
    read_pj: float             # per byte
    write_pj: float
    read_bw: float             # bytes per cycle
    write_bw: float
    latency: int               # cycles before a DMA's first byte


@dataclass(frozen=True)
class Arch:
    name: str
    rows: int
    cols: int
    dataflows: tuple[str, ...]             # ws, os, is
    skip_cycles: bool                      # zero-skipping saves cycles too
    gate_energy: bool                      # zero operands are clock-gated
    mac_pj: dict[str, float]
    reg_entries: int
    reg_operand_pj: float
    reg_per_mac_pj: float
    buffers: int                           # operand buffers
    buffer_bytes: int                      # each
    buffer_read_pj: float                  # per byte
    buffer_write_pj: float
    mask_bytes: int                        # per mask buffer (0: masks travel with their operand)
    mask_read_pj: float
    mask_write_pj: float
    aux_read_pj: float                     # the auxiliary buffer (biases, LayerNorm parameters), per byte
    aux_write_pj: float
    acc_entries: int
    acc_pj: float                          # per access
    noc_pj: float                          # per byte moved
    dma_bw: float
    ports: dict[str, Port] = field(default_factory=dict)
    via: dict[str, str | None] = field(default_factory=dict)   # level -> the intermediate level its data passes
    free: dict[str, int] = field(default_factory=dict)          # bytes free for staging tiles, per level

    @functools.cached_property
    def identity(self) -> tuple:
        """Every number a mapping's costs depend on (all but the bytes free for staging, which decide only what
        fits): two targets alike here cost every mapping alike, whatever their names or their other numbers."""
        out = []
        for f in dataclasses.fields(self):
            if f.name in ("name", "free"):
                continue
            v = getattr(self, f.name)
            out.append(tuple(sorted(v.items())) if isinstance(v, dict) else v)
        return tuple(out)

    def key_for(self, g: Gemm) -> tuple:
        """What a product's mappings depend on: the architecture, and the bytes free where its operands pass."""
        levels = sorted({v for v in (self.via.get(g.a_home), self.via.get(g.w_home), self.via.get(g.o_home)) if v})
        return self.identity + tuple((lv, self.free.get(lv, 0)) for lv in levels)


def arch_of(target: Target, free: dict[str, int] | None = None) -> Arch:
    """The mapper's view of `target`; `free` bytes per level may hold staging tiles (default: none)."""
    c, parts = target.compute, target.parts
    ops = parts.operand_buffers()
    mask = parts.role("masks")
    aux = parts.role("aux")
    ports, via = {}, {}
    for m in target.memories:
        lat = math.ceil(m.read_latency_ns * target.clock_mhz / 1000.0)
        ports[m.name] = Port(m.name, m.read_pj_per_byte, m.write_pj_per_byte, m.read_bytes_per_cycle,
                             m.write_bytes_per_cycle, lat)
        path = target.fetch_path(m.name)
        via[m.name] = path[1] if len(path) > 2 else None
    acc = parts.accumulators
    return Arch(target.name, c.rows, c.cols, tuple(DATAFLOW_CODES[d] for d in c.dataflows),
                c.zero_skipping == "energy_and_cycles", c.zero_skipping != "none",
                {f: v.energy_pj_per_mac for f, v in c.formats.items()}, parts.registers.entries,
                parts.registers.operand_pj, parts.registers.per_mac_pj(), len(ops),
                min((b.capacity_bytes for b in ops), default=0),
                sum(b.read_pj_per_byte for b in ops) / len(ops) if ops else 0.0,
                sum(b.write_pj_per_byte for b in ops) / len(ops) if ops else 0.0,
                mask.capacity_bytes if mask else 0, mask.read_pj_per_byte if mask else 0.0,
                mask.write_pj_per_byte if mask else 0.0, aux.read_pj_per_byte if aux else 0.0,
                aux.write_pj_per_byte if aux else 0.0, acc.entries, acc.access_pj, parts.noc.energy_pj_per_byte,
                target.dma_bytes_per_cycle, ports, via, dict(free or {}))


def psum_bytes(target: Target) -> float:
    acc = target.parts.accumulators
    return acc.bits / 8 if acc.entries or acc.bits else 4.0


def weight_of(module: Module, v: Value) -> Weight | None:
    p = v.producer
    return module.weights[p.attrs["name"].name] if p is not None and p.op == "weight" else None


def gemm_of(module: Module, node: Node, target: Target, arena_level: str,
            levels: dict[str, str] | None = None) -> Gemm:
    """The product a `linear` (weight second operand) or an activation x activation `matmul` computes;
    weights in `levels` (name -> memory level) or where they are placed."""
    levels = levels or {}

    def level(w: Weight) -> str:
        return levels.get(w.name) or w.placement.level
    act = target.compute.activation_bits / 8
    a, second = node.inputs[0], node.inputs[1]
    out = node.output
    w = weight_of(module, second)
    if w is not None:
        k, n = w.type.shape
        m = math.prod(a.type.shape[:-1])
        enc = w.encoding
        mask = math.ceil(w.numel / 8) / w.numel if enc.storage == "bitmask" else 0.0
        values = (w.nbytes - enc.metadata_bytes(w.type)) / w.numel - mask
        density = (enc.nnz / w.numel) if enc.storage == "bitmask" else 1.0
        bias = module.weights[node.inputs[2].producer.attrs["name"].name] if len(node.inputs) == 3 and \
            weight_of(module, node.inputs[2]) is not None else None
        return Gemm(1, m, k, n, act, values, mask, act, psum_bytes(target), arena_level, level(w),
                    arena_level, False, density, str(enc.number_format),
                    bias.nbytes if bias is not None else 0.0, level(bias) if bias is not None else None)
    m, k = a.type.shape[-2], a.type.shape[-1]
    n = second.type.shape[-1]
    batch = math.prod(out.type.shape[:-2])
    batched = math.prod(second.type.shape[:-2]) > 1
    return Gemm(batch, m, k, n, act, act, 0.0, act, psum_bytes(target), arena_level, arena_level, arena_level,
                batched, 1.0, target.compute.matmul_format)
