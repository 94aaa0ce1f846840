"""Target descriptions: a TOML file loaded into typed, validated dataclasses.

A target is data: the clock and supply voltage, the technology node, the
compute array (with the energy of a MAC in each number format it supports),
the special-function unit, the memory levels (technology, capacity, banks,
word width, per-word read/write energy, latency, bandwidth, leakage, area,
write endurance, volatility, power states, what data each may hold and where
its data can move; for DRAM, background power by state), and the DMA
bandwidth. Every table that holds numbers carries a `source` saying where
they come from (a paper, a tool's file, or the arithmetic behind a chosen
size); a memory level may instead name a technology `model` (see
`targets.memtech`, `targets.dram`) and take its numbers, with their
provenance, from it. Compute energies and areas are scaled from their
published node to the target's (`targets.scaling`). A target may list the
voltages it can also run at (`[dvfs]`, `targets.dvfs`).

`load_target("edge_accel")` finds a built-in target (targets/builtin/);
`load_target("path/to/chip.toml")` a user's. Every problem is one
`TargetError` naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from aalbert.ir.fileio import TOML_BYTES_PER_CHAR, loads_toml, read_regular
from aalbert.ir.formats import parse_format
from aalbert.ir.registry import all_ops
from aalbert.outputs import note_read
from aalbert.targets.hardware.components import Components, parse_components, scale_components
from aalbert.targets.hardware.dvfs import Dvfs, OperatingPoint, parse_dvfs
from aalbert.targets.hardware.levels import MemoryLevel, parse_memory
from aalbert.targets.hardware.scaling import NODES, UNSCALED, Technology
from aalbert.targets.hardware.tables import Table, TargetError

if TYPE_CHECKING:
    import networkx as nx

DATAFLOWS = ("weight_stationary", "output_stationary", "input_stationary")
ZERO_SKIPPING = ("none", "energy", "energy_and_cycles")


@dataclass(frozen=True)
class FormatCost:
    name: str
    energy_pj_per_mac: float
    source: str
    throughput: float = 1.0      # MACs per cycle in this format, in units of [compute] macs_per_cycle


@dataclass(frozen=True)
class Compute:
    rows: int
    cols: int
    dataflow: str
    macs_per_cycle: int
    activation_bits: int
    matmul_format: str           # number format of activation x activation products
    zero_skipping: str
    input_buffer_bytes: int
    input_buffers: int
    area_mm2: float
    leakage_mw: float
    formats: dict[str, FormatCost]
    source: str
    dataflows: tuple[str, ...] = ()      # what a mapping search may choose (default: the dataflow alone)
    predicated_format: str = ""          # the format early exit's first entropy may switch the products to

    def mac_energy(self, fmt: str) -> float:
        if fmt in self.formats:
            return self.formats[fmt].energy_pj_per_mac
        raise KeyError(fmt)

    def throughput(self, fmt: str) -> float:
        """MACs per cycle in `fmt` over `macs_per_cycle` (1 for a format the table does not list)."""
        cost = self.formats.get(fmt)
        return cost.throughput if cost is not None else 1.0


@dataclass(frozen=True)
class SFU:
    elements_per_cycle: int
    energy_pj_per_element: float
    area_mm2: float
    leakage_mw: float
    scans: dict[str, int]   # reads over the data per op (LayerNorm: 2, softmax: 3), by op name
    source: str


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    clock_mhz: float
    voltage_v: float | None
    technology: Technology
    compute: Compute
    sfu: SFU
    memories: tuple[MemoryLevel, ...]
    dma_bytes_per_cycle: float
    alignment_bytes: int                 # buffers and weights start on multiples of this (a DMA beat)
    sources: dict[str, str] = field(default_factory=dict)
    path: str = ""
    parts: Components = Components()     # PE registers, buffers, accumulators, interconnect
    dvfs: Dvfs | None = None             # the operating points it can also run at
    tables: dict | None = field(default=None, repr=False, compare=False)  # the file's tables, for `at_point`

    def level(self, name: str) -> MemoryLevel:
        for m in self.memories:
            if m.name == name:
                return m
        raise KeyError(name)

    @functools.cached_property
    def memory_names(self) -> frozenset[str]:
        return frozenset(m.name for m in self.memories)

    @property
    def on_chip(self) -> tuple[MemoryLevel, ...]:
        return tuple(m for m in self.memories if not m.off_chip)

    @property
    def area_mm2(self) -> float:
        """Compute, SFU, on-chip memories, and the PHY and controller of every DRAM."""
        phy = sum(m.dram.phy_area_mm2 for m in self.memories if m.dram is not None)
        return (self.compute.area_mm2 + self.sfu.area_mm2 + sum(m.area_mm2 for m in self.on_chip) + phy
                + self.parts.area_mm2)

    @property
    def leakage_mw(self) -> float:
        """Leakage with every bank on (the upper bound; `targets.power` charges banks by state)."""
        return (self.compute.leakage_mw + self.sfu.leakage_mw + sum(m.leakage_mw for m in self.memories)
                + self.parts.leakage_mw)

    @property
    def memory_models(self) -> str:
        """The technology models of its memories, e.g. 'rram: rram_read_energy, sram: sram'."""
        return ", ".join(f"{m.name}: {m.model}" for m in self.memories if m.model)

    def reach_graph(self) -> nx.DiGraph:
        import networkx as nx  # imported when used: reading a target file does not need it

        g = nx.DiGraph()
        g.add_node("compute")
        for m in self.memories:
            g.add_node(m.name)
            for r in m.reaches:
                g.add_edge(m.name, r)
        return g

    def fetch_pj_per_byte(self, level: str) -> float:
        """Energy to bring one byte from `level` to the compute array, on the cheapest path:
        a read at the source, then a write and a read at every level it passes through."""
        import networkx as nx

        g = self.reach_graph()
        for a, b in g.edges:
            src = self.level(a)
            hop = src.read_pj_per_byte + (0.0 if b == "compute" else self.level(b).write_pj_per_byte)
            g.edges[a, b]["pj"] = hop
        return nx.shortest_path_length(g, level, "compute", weight="pj")

    def fetch_path(self, level: str) -> list[str]:
        import networkx as nx

        g = self.reach_graph()
        for a, b in g.edges:
            src = self.level(a)
            g.edges[a, b]["pj"] = src.read_pj_per_byte + (0.0 if b == "compute" else self.level(b).write_pj_per_byte)
        return nx.shortest_path(g, level, "compute", weight="pj")


# -- loading ----------------------------------------------------------------------------------------------------
def builtin_targets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("aalbert.targets").joinpath("builtin").iterdir()
                  if p.name.endswith(".toml"))


def load_target(spec: str | Target) -> Target:
    """A built-in target by name, or a TOML file by path (a `Target` given in Python is itself)."""
    if isinstance(spec, Target):
        return spec
    text, where = target_text(spec)
    return parse_target(text, where)


def parse_target(text: str, where: str) -> Target:
    return target_from_dict(target_dict(text, where), where)


def target_dict(text: str, where: str) -> dict:
    """The raw tables of a target file (to edit before `target_from_dict`, as sweeps do)."""
    return loads_toml(text, where, TargetError)


def target_text(spec: str) -> tuple[str, str]:
    """(TOML text, where) of a built-in target or a target file."""
    if spec in builtin_targets():
        text = resources.files("aalbert.targets").joinpath("builtin", f"{spec}.toml").read_text()
        return text, f"{spec}.toml (built-in)"
    path = Path(spec)
    if not path.exists():
        raise TargetError(f"{spec}: no such target file (built-in targets: {', '.join(builtin_targets())})")
    note_read(path)
    try:
        return read_regular(path, "a target", TOML_BYTES_PER_CHAR, "parsed").decode("utf-8"), spec
    except UnicodeDecodeError as e:
        raise TargetError(f"{spec}: cannot read ({e})") from None


def target_from_dict(data: dict, where: str) -> Target:
    top = Table(where, data, required_source=False)
    name = top.get("name", str)
    description = top.get("description", str, "")
    clock = Table(f"{where}: [clock]", top.get("clock", dict))
    mhz = clock.positive("frequency_mhz")
    volts = clock.positive("voltage_v", float, None) if "voltage_v" in clock.data else None
    clock.done()
    tech = _technology(where, top.get("technology", dict, None), volts)
    compute = _scale_compute(_compute(where, top.get("compute", dict)), tech)
    sfu = _scale_sfu(_sfu(where, top.get("sfu", dict)), tech)
    inter = Table(f"{where}: [interconnect]", top.get("interconnect", dict))
    dma = inter.positive("dma_bytes_per_cycle")
    alignment = inter.positive("alignment_bytes", int)
    inter.done()
    raw_memories = data.get("memory")
    top.used.add("memory")
    if not isinstance(raw_memories, list) or not raw_memories:
        raise TargetError(f"{where}: no [[memory]] levels")
    memories = tuple(parse_memory(where, i, m, mhz) for i, m in enumerate(raw_memories, start=1))
    parts = parse_components(where, data, mhz, top.used)
    on_chip = {m.name: m.supply_v for m in memories if not m.off_chip}
    dvfs = parse_dvfs(where, top.get("dvfs", dict, None), mhz, volts, tech, on_chip)
    if tech is UNSCALED and (parts.registers.reference or parts.accumulators.reference):
        raise TargetError(f"{where}: [pe_registers] or [accumulators] gives a reference_node to scale from, which "
                          "needs a [technology] table (the node to scale to)")
    parts = scale_components(parts, tech, compute.mac_energy(compute.matmul_format))
    top.done()
    names = [m.name for m in memories]
    if len(set(names)) != len(names):
        raise TargetError(f"{where}: two memory levels are named '{next(n for n in names if names.count(n) > 1)}'")
    target = Target(name, description, mhz, volts, tech, compute, sfu, memories, dma, alignment, path=where,
                    parts=parts, dvfs=dvfs, tables=copy.deepcopy(data) if dvfs is not None else None)
    _check_topology(target)
    return target


def _compute(where: str, data) -> Compute:
    t = Table(f"{where}: [compute]", data)
    rows, cols = t.positive("rows", int), t.positive("cols", int)
    dataflow = t.choice("dataflow", DATAFLOWS)
    macs = t.positive("macs_per_cycle", int)
    if macs != rows * cols:
        raise TargetError(f"{where}: [compute] macs_per_cycle {macs} is not rows x cols = {rows * cols}")
    formats = {}
    raw = t.get("formats", dict)
    if not raw:
        raise TargetError(f"{where}: [compute.formats] lists no number format")
    for fname, fdata in raw.items():
        ft = Table(f"{where}: [compute.formats.{fname}]", fdata)
        name = _format_name(ft.where, fname)
        if name in formats:
            raise TargetError(f"{ft.where}: names {name}, which another [compute.formats] table names too")
        formats[name] = FormatCost(name, ft.positive("energy_pj_per_mac"), ft.get("source", str),
                                   ft.positive("throughput", float, 1.0))
        ft.done()
    matmul_format = _format_name(f"{where}: [compute] key 'matmul_format'", t.get("matmul_format", str))
    if matmul_format not in formats:
        raise TargetError(f"{where}: [compute] matmul_format '{matmul_format}' is not in [compute.formats] "
                          f"({', '.join(formats)})")
    predicated = ""
    if "predicated_format" in t.data:
        predicated = _format_name(f"{where}: [compute] key 'predicated_format'", t.get("predicated_format", str))
        if predicated not in formats:
            raise TargetError(f"{where}: [compute] predicated_format '{predicated}' is not in [compute.formats] "
                              f"({', '.join(formats)})")
    dataflows = t.get("dataflows", list, (dataflow,))
    bad = [d for d in dataflows if d not in DATAFLOWS]
    if bad or not dataflows:
        raise TargetError(f"{where}: [compute] key 'dataflows' lists {bad[0] if bad else 'nothing'!r}; dataflows are "
                          f"{', '.join(DATAFLOWS)}")
    result = Compute(rows, cols, dataflow, macs, t.positive("activation_bits", int), matmul_format,
                     t.choice("zero_skipping", ZERO_SKIPPING), t.positive("input_buffer_bytes", int),
                     t.positive("input_buffers", int), t.positive("area_mm2", allow_zero=True),
                     t.positive("leakage_mw", allow_zero=True), formats, t.get("source", str), tuple(dataflows),
                     predicated)
    t.done()
    return result


def _format_name(where: str, text: str) -> str:
    """The one spelling of a number format named in a target file (afloat8 is afloat<8,3>)."""
    try:
        return str(parse_format(text))
    except ValueError as e:
        raise TargetError(f"{where}: {e}") from None


def _sfu(where: str, data) -> SFU:
    t = Table(f"{where}: [sfu]", data)
    if "scans" in t.data and "passes" in t.data:
        raise TargetError(f"{where}: [sfu] has both 'scans' and 'passes', its old name: keep one")
    key = "passes" if "passes" in t.data else "scans"
    scans = {}
    ops = sorted(all_ops())
    for op, n in t.get(key, dict).items():
        if op not in ops:
            near = difflib.get_close_matches(op, ops, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise TargetError(f"{where}: [sfu.{key}] names '{op}', which is not an op{hint}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise TargetError(f"{where}: [sfu.{key}] key '{op}' must be a positive integer, got {n!r}")
        scans[op] = n
    result = SFU(t.positive("elements_per_cycle", int), t.positive("energy_pj_per_element"),
                 t.positive("area_mm2", allow_zero=True), t.positive("leakage_mw", allow_zero=True),
                 scans, t.get("source", str))
    t.done()
    return result


def _technology(where: str, data, volts: float | None) -> Technology:
    if data is None:
        return UNSCALED
    t = Table(f"{where}: [technology]", data)
    node = t.positive("node_nm")
    fit = t.positive("scaling_node", int)
    ref = t.positive("reference_node", int)
    ref_v = t.positive("reference_voltage_v")
    for key, n in (("scaling_node", fit), ("reference_node", ref)):
        if n not in NODES:
            raise TargetError(f"{t.where}: key '{key}' must be one of {', '.join(map(str, NODES))} (the nodes "
                              f"Stillmaker & Baas fit), got {n}")
    if volts is None:
        raise TargetError(f"{where}: [clock]: missing key 'voltage_v' (the supply the [technology] scaling needs)")
    tech = Technology(node, fit, volts, ref, ref_v, t.get("source", str))
    t.done()
    return tech


def _scale_compute(c: Compute, tech: Technology) -> Compute:
    if tech is UNSCALED:
        return c
    e, a = tech.energy_factor, tech.area_factor
    formats = {k: FormatCost(f.name, f.energy_pj_per_mac * e, f"{f.source}; {tech.describe()}", f.throughput)
               for k, f in c.formats.items()}
    return dataclasses.replace(c, formats=formats, area_mm2=c.area_mm2 * a,
                               source=f"{c.source}; area {tech.describe()}")


def _scale_sfu(u: SFU, tech: Technology) -> SFU:
    if tech is UNSCALED:
        return u
    return dataclasses.replace(u, energy_pj_per_element=u.energy_pj_per_element * tech.energy_factor,
                               area_mm2=u.area_mm2 * tech.area_factor, source=f"{u.source}; {tech.describe()}")


def _check_topology(target: Target) -> None:
    names = {m.name for m in target.memories}
    for m in target.memories:
        for r in m.reaches:
            if r != "compute" and r not in names:
                raise TargetError(f"{target.path}: memory '{m.name}': key 'reaches' names unknown level '{r}'")
    import networkx as nx

    g = target.reach_graph()
    for m in target.memories:
        if not nx.has_path(g, m.name, "compute"):
            raise TargetError(f"{target.path}: memory '{m.name}': nothing it holds can reach the compute array "
                              f"(key 'reaches')")
    if not any("weights" in m.holds for m in target.memories):
        raise TargetError(f"{target.path}: no memory level holds weights (key 'holds')")
    if not any("activations" in m.holds for m in target.memories):
        raise TargetError(f"{target.path}: no memory level holds activations (key 'holds')")


def at_point(target, point: OperatingPoint):
    """`target` as it runs at `point`: its clock and supply, its rail's energies, leakage and bandwidth, and what
    its regulator loses (`Dvfs.drawn_factor`)."""
    from aalbert.targets.hardware.spec import target_from_dict

    dvfs = target.dvfs
    if point == dvfs.top:
        return target
    data = copy.deepcopy(target.tables)
    data.pop("dvfs")
    data["clock"].update(frequency_mhz=point.frequency_mhz, voltage_v=point.voltage_v)
    drawn = dvfs.drawn_factor(point.voltage_v)
    leak, access = dvfs.leakage_factor(point.voltage_v) * drawn, dvfs.access_factor(point.voltage_v) * drawn
    for unit, now in (("compute", target.compute), ("sfu", target.sfu)):
        if unit not in dvfs.rail:
            continue
        # energies follow the technology's fit at the new supply (target_from_dict), times the regulator's loss
        data[unit]["leakage_mw"] = now.leakage_mw * leak
        if unit == "compute":
            for f in data["compute"]["formats"].values():
                f["energy_pj_per_mac"] = f["energy_pj_per_mac"] * drawn
        else:
            data["sfu"]["energy_pj_per_element"] = data["sfu"]["energy_pj_per_element"] * drawn
    for table in data["memory"]:
        if table.get("name") not in dvfs.rail:
            continue
        m = target.level(table["name"])
        table.update(read_energy_pj=m.read_energy_pj * access, write_energy_pj=m.write_energy_pj * access,
                     leakage_mw=m.leakage_mw * leak, read_bytes_per_cycle=m.read_bytes_per_cycle,
                     write_bytes_per_cycle=m.write_bytes_per_cycle)
        if m.power is not None and m.power.retention is not None:
            # retention has its own supply: the same power as at the top point
            table["retention_leakage_fraction"] = min(1.0, m.power.retention / leak)
    if "compute" in dvfs.rail:  # the parts around the array run on the array's supply
        _scale_parts(data, target.parts, access, leak, drawn, dvfs.top.voltage_v)
    return target_from_dict(data, f"{target.path} at {point.label()}")


PART_ENERGIES = {"pe_registers": ("operand_pj", "psum_pj"), "accumulators": ("access_pj",),
                 "noc": ("energy_pj_per_byte",)}


def _scale_parts(data: dict, parts, access: float, leak: float, drawn: float, top_v: float) -> None:
    """PE registers, accumulators, interconnect and buffers: energies per access x `access` (x `drawn` alone for
    those the technology's fit scales at the new supply: registers and accumulators given at a reference node,
    an interconnect priced in MACs), leakage x `leak`; a buffer whose memory model holds at another supply than
    the rail's top (the LOP SRAM's 0.6 V) runs at its own, off the rail, and keeps its numbers."""
    from aalbert.targets.hardware.memtech import anchors, model_name

    for key, fields in PART_ENERGIES.items():
        table = data.get(key)
        if table is None:
            continue
        fitted = "reference_node" in table
        for f in fields + ("leakage_mw",):
            if f in table:
                table[f] = table[f] * (leak if f == "leakage_mw" else drawn if fitted else access)
    for table in data.get("buffer", []):
        b = next(b for b in parts.buffers if b.name == table.get("name"))
        supply = anchors()[model_name(table["model"])].supply_v if "model" in table else None
        if supply is not None and abs(supply - top_v) > 1e-9:
            continue
        for k in ("model", "banks"):
            table.pop(k, None)
        table.update(read_pj_per_byte=b.read_pj_per_byte * access, write_pj_per_byte=b.write_pj_per_byte * access,
                     leakage_mw=b.leakage_mw * leak, area_mm2=b.area_mm2)
