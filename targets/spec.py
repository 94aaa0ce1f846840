"""Target descriptions: a TOML file loaded into typed, validated dataclasses.

A target is data: the clock, the compute array (with the energy of a MAC in
each number format it supports), the special-function unit, the memory
levels (technology, capacity, word width, per-word read/write energy,
latency, bandwidth, leakage, area, write endurance, volatility, what data
each may hold and where its data can move), and the DMA bandwidth. Every
table that holds numbers carries a `source` saying where they come from (a
paper, a tool's file, or the arithmetic behind a chosen size); a memory
level may instead name a technology `model` (see `targets.memtech`) and
take its numbers, with their provenance, from it.

`load_target("edge_accel")` finds a built-in target (targets/builtin/);
`load_target("path/to/chip.toml")` a user's. Every problem is one
`TargetError` naming the file and the key.
"""

from __future__ import annotations

import difflib
import functools
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import networkx as nx

from aalbert.ir.errors import AalbertError
from aalbert.ir.formats import parse_format
from aalbert.ir.outputs import note_read

from .components import Components, parse_components
from .memtech import ANCHORS, COST_FIELDS, TECHNOLOGIES, MemoryCost, scaled

DATA_KINDS = ("weights", "activations")
DATAFLOWS = ("weight_stationary", "output_stationary", "input_stationary")
ZERO_SKIPPING = ("none", "energy", "energy_and_cycles")


class TargetError(AalbertError):
    """A target (or workload) file that cannot be used."""


@dataclass(frozen=True)
class FormatCost:
    name: str
    energy_pj_per_mac: float
    source: str


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

    def mac_energy(self, fmt: str) -> float:
        if fmt in self.formats:
            return self.formats[fmt].energy_pj_per_mac
        raise KeyError(fmt)


@dataclass(frozen=True)
class SFU:
    elements_per_cycle: int
    energy_pj_per_element: float
    area_mm2: float
    leakage_mw: float
    passes: dict[str, int]
    source: str


@dataclass(frozen=True, kw_only=True)
class MemoryLevel(MemoryCost):
    """One memory of a target: its cost numbers (`memtech.MemoryCost`), and what it may hold and reach."""

    name: str
    technology: str
    capacity_bytes: int
    off_chip: bool
    field_writable: bool         # false: written once (at deployment), never during operation
    holds: tuple[str, ...]
    reaches: tuple[str, ...]     # other levels, or "compute"
    source: str

    @property
    def word_bytes(self) -> int:
        return max(1, self.word_bits // 8)

    def words(self, nbytes: int) -> int:
        return math.ceil(nbytes / self.word_bytes)

    @property
    def read_pj_per_byte(self) -> float:
        return self.read_energy_pj / self.word_bytes

    @property
    def write_pj_per_byte(self) -> float:
        return self.write_energy_pj / self.word_bytes


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    clock_mhz: float
    compute: Compute
    sfu: SFU
    memories: tuple[MemoryLevel, ...]
    dma_bytes_per_cycle: float
    alignment_bytes: int                 # buffers and weights start on multiples of this (a DMA beat)
    sources: dict[str, str] = field(default_factory=dict)
    path: str = ""
    parts: Components = Components()     # PE registers, buffers, accumulators, interconnect

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
        return (self.compute.area_mm2 + self.sfu.area_mm2 + sum(m.area_mm2 for m in self.on_chip)
                + self.parts.area_mm2)

    @property
    def leakage_mw(self) -> float:
        return (self.compute.leakage_mw + self.sfu.leakage_mw + sum(m.leakage_mw for m in self.memories)
                + self.parts.leakage_mw)

    def reach_graph(self) -> nx.DiGraph:
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
        g = self.reach_graph()
        for a, b in g.edges:
            src = self.level(a)
            hop = src.read_pj_per_byte + (0.0 if b == "compute" else self.level(b).write_pj_per_byte)
            g.edges[a, b]["pj"] = hop
        return nx.shortest_path_length(g, level, "compute", weight="pj")

    def fetch_path(self, level: str) -> list[str]:
        g = self.reach_graph()
        for a, b in g.edges:
            src = self.level(a)
            g.edges[a, b]["pj"] = src.read_pj_per_byte + (0.0 if b == "compute" else self.level(b).write_pj_per_byte)
        return nx.shortest_path(g, level, "compute", weight="pj")


# -- loading ----------------------------------------------------------------------------------------------------
def builtin_targets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("aalbert.targets").joinpath("builtin").iterdir()
                  if p.name.endswith(".toml"))


def load_target(spec: str) -> Target:
    """A built-in target by name, or a TOML file by path."""
    text, where = target_text(spec)
    return parse_target(text, where)


class _Table:
    """A TOML table being read: typed getters, and unknown keys reported at the end."""

    def __init__(self, where: str, data, required_source: bool = True):
        if not isinstance(data, dict):
            raise TargetError(f"{where}: expected a table")
        self.where = where
        self.data = data
        self.used: set[str] = set()
        if required_source and _has_numbers(data) and not isinstance(data.get("source"), str):
            raise TargetError(f"{where}: numbers without a 'source' (say where they come from)")

    def get(self, key: str, kind, default=...):
        self.used.add(key)
        if key not in self.data:
            near = difflib.get_close_matches(key, [k for k in self.data if k not in self.used], n=1)
            if near and default is ...:  # a misspelling is more useful to hear about than a missing key
                raise TargetError(f"{self.where}: unknown key '{near[0]}' (did you mean '{key}'?)")
            if default is ...:
                raise TargetError(f"{self.where}: missing key '{key}'")
            return default
        value = self.data[key]
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind is bool:
            ok = isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, str)
        elif kind is list:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            value = tuple(value) if ok else value
        elif kind is dict:
            ok = isinstance(value, dict)
        else:
            raise TypeError(kind)
        if not ok:
            raise TargetError(f"{self.where}: key '{key}' must be {getattr(kind, '__name__', kind)}, got {value!r}")
        return value

    def positive(self, key: str, kind=float, default=..., allow_zero: bool = False, allow_inf: bool = False):
        """A positive number (or zero) in the range where every figure derived from it stays finite: floats
        in [1e-9, 1e12] in the table's unit (inf only where it means "never", as an endurance), integers up
        to 2^50."""
        value = self.get(key, kind, default)
        if value is None:
            return value
        sign = "non-negative" if allow_zero else "positive"
        if math.isnan(value) or value < 0 or (value == 0 and not allow_zero):
            raise TargetError(f"{self.where}: key '{key}' must be {sign}, got {value}")
        if math.isinf(value):
            if allow_inf:
                return value
            raise TargetError(f"{self.where}: key '{key}' must be finite, got {value}")
        if kind is int and value > 2 ** 50 or kind is float and value and not 1e-9 <= value <= (
                math.inf if allow_inf else 1e12):
            raise TargetError(f"{self.where}: key '{key}' = {value} is outside the range aalbert models "
                              f"({'1 to 2^50' if kind is int else '1e-9 to 1e12'})")
        return value

    def choice(self, key: str, choices, default=...):
        value = self.get(key, str, default)
        if value not in choices:
            raise TargetError(f"{self.where}: key '{key}' must be one of {', '.join(choices)}, got {value!r}")
        return value

    def done(self, extra=()) -> None:
        unknown = set(self.data) - self.used - {"source"} - set(extra)
        if unknown:
            key = sorted(unknown)[0]
            near = difflib.get_close_matches(key, sorted(self.used | set(extra)), n=1)
            raise TargetError(f"{self.where}: unknown key '{key}'" + (f" (did you mean '{near[0]}'?)" if near else ""))


def _has_numbers(data: dict) -> bool:
    return any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values())


def parse_target(text: str, where: str) -> Target:
    return target_from_dict(target_dict(text, where), where)


def target_dict(text: str, where: str) -> dict:
    """The raw tables of a target file (to edit before `target_from_dict`, as sweeps do)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"{where}: not valid TOML ({e})") from None


def target_text(spec: str) -> tuple[str, str]:
    """(TOML text, where) of a built-in target or a target file."""
    if spec in builtin_targets():
        return resources.files("aalbert.targets").joinpath("builtin", f"{spec}.toml").read_text(), f"{spec}.toml (built-in)"
    path = Path(spec)
    if not path.exists():
        raise TargetError(f"{spec}: no such target file (built-in targets: {', '.join(builtin_targets())})")
    try:
        note_read(path)
        return path.read_text(encoding="utf-8"), spec
    except (OSError, UnicodeDecodeError) as e:
        raise TargetError(f"{spec}: cannot read ({e})") from None


def target_from_dict(data: dict, where: str) -> Target:
    top = _Table(where, data, required_source=False)
    name = top.get("name", str)
    description = top.get("description", str, "")
    clock = _Table(f"{where}: [clock]", top.get("clock", dict))
    mhz = clock.positive("frequency_mhz")
    clock.done()
    compute = _compute(where, top.get("compute", dict))
    sfu = _sfu(where, top.get("sfu", dict))
    inter = _Table(f"{where}: [interconnect]", top.get("interconnect", dict))
    dma = inter.positive("dma_bytes_per_cycle")
    alignment = inter.positive("alignment_bytes", int)
    inter.done()
    raw_memories = data.get("memory")
    top.used.add("memory")
    if not isinstance(raw_memories, list) or not raw_memories:
        raise TargetError(f"{where}: no [[memory]] levels")
    memories = tuple(_memory(where, i, m, mhz) for i, m in enumerate(raw_memories, start=1))
    parts = parse_components(where, data, mhz, top.used)
    top.done()
    names = [m.name for m in memories]
    if len(set(names)) != len(names):
        raise TargetError(f"{where}: two memory levels are named '{next(n for n in names if names.count(n) > 1)}'")
    target = Target(name, description, mhz, compute, sfu, memories, dma, alignment, path=where, parts=parts)
    _check_topology(target)
    return target


def _compute(where: str, data) -> Compute:
    t = _Table(f"{where}: [compute]", data)
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
        ft = _Table(f"{where}: [compute.formats.{fname}]", fdata)
        name = _format_name(ft.where, fname)
        if name in formats:
            raise TargetError(f"{ft.where}: names {name}, which another [compute.formats] table names too")
        formats[name] = FormatCost(name, ft.positive("energy_pj_per_mac"), ft.get("source", str))
        ft.done()
    matmul_format = _format_name(f"{where}: [compute] key 'matmul_format'", t.get("matmul_format", str))
    if matmul_format not in formats:
        raise TargetError(f"{where}: [compute] matmul_format '{matmul_format}' is not in [compute.formats] "
                          f"({', '.join(formats)})")
    dataflows = t.get("dataflows", list, (dataflow,))
    bad = [d for d in dataflows if d not in DATAFLOWS]
    if bad or not dataflows:
        raise TargetError(f"{where}: [compute] key 'dataflows' lists {bad[0] if bad else 'nothing'!r}; dataflows are "
                          f"{', '.join(DATAFLOWS)}")
    result = Compute(rows, cols, dataflow, macs, t.positive("activation_bits", int), matmul_format,
                     t.choice("zero_skipping", ZERO_SKIPPING), t.positive("input_buffer_bytes", int),
                     t.positive("input_buffers", int), t.positive("area_mm2", allow_zero=True),
                     t.positive("leakage_mw", allow_zero=True), formats, t.get("source", str), tuple(dataflows))
    t.done()
    return result


def _format_name(where: str, text: str) -> str:
    """The one spelling of a number format named in a target file (afloat8 is afloat<8,3>)."""
    try:
        return str(parse_format(text))
    except ValueError as e:
        raise TargetError(f"{where}: {e}") from None


def _sfu(where: str, data) -> SFU:
    t = _Table(f"{where}: [sfu]", data)
    raw = t.get("passes", dict)
    passes = {}
    for op, n in raw.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise TargetError(f"{where}: [sfu.passes] key '{op}' must be a positive integer, got {n!r}")
        passes[op] = n
    result = SFU(t.positive("elements_per_cycle", int), t.positive("energy_pj_per_element"),
                 t.positive("area_mm2", allow_zero=True), t.positive("leakage_mw", allow_zero=True),
                 passes, t.get("source", str))
    t.done()
    return result


def _memory(where: str, index: int, data, mhz: float) -> MemoryLevel:
    label = data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else f"#{index}"
    t = _Table(f"{where}: memory '{label}'", data)
    name = t.get("name", str)
    technology = t.choice("technology", TECHNOLOGIES)
    capacity = t.positive("capacity_bytes", int)
    model = t.get("model", str, None)
    banks = t.positive("banks", int, None) if "banks" in t.data else None
    derived = {}
    if model is not None:
        if model not in ANCHORS:
            raise TargetError(f"{t.where}: key 'model' must be one of {', '.join(ANCHORS)}, got {model!r}")
        n = scaled(model, capacity, mhz, banks)
        derived = {f: getattr(n, f) for f in COST_FIELDS}
    elif banks is not None:
        raise TargetError(f"{t.where}: key 'banks' goes with 'model' (give bandwidths directly otherwise)")
    values = {}
    for f in COST_FIELDS:
        kind = bool if f == "volatile" else int if f == "word_bits" else float
        if f in t.data or f not in derived:
            values[f] = t.get(f, kind) if kind is bool else t.positive(
                f, kind, allow_zero=f in ("leakage_mw", "area_mm2"), allow_inf=f == "write_endurance")
        else:
            values[f] = derived[f]
    holds = t.get("holds", list)
    bad = [h for h in holds if h not in DATA_KINDS]
    if bad:
        raise TargetError(f"{t.where}: key 'holds' names '{bad[0]}'; data kinds are {', '.join(DATA_KINDS)}")
    source = t.get("source", str)
    if model is not None:
        source = f"{source}; other numbers: {scaled(model, capacity, mhz, banks).source}"
    level = MemoryLevel(name=name, technology=technology, capacity_bytes=capacity,
                        off_chip=t.get("off_chip", bool, False), field_writable=t.get("field_writable", bool, True),
                        holds=holds, reaches=t.get("reaches", list), source=source, **values)
    t.done()
    return level


def _check_topology(target: Target) -> None:
    names = {m.name for m in target.memories}
    for m in target.memories:
        for r in m.reaches:
            if r != "compute" and r not in names:
                raise TargetError(f"{target.path}: memory '{m.name}': key 'reaches' names unknown level '{r}'")
    g = target.reach_graph()
    for m in target.memories:
        if not nx.has_path(g, m.name, "compute"):
            raise TargetError(f"{target.path}: memory '{m.name}': nothing it holds can reach the compute array "
                              f"(key 'reaches')")
    if not any("weights" in m.holds for m in target.memories):
        raise TargetError(f"{target.path}: no memory level holds weights (key 'holds')")
    if not any("activations" in m.holds for m in target.memories):
        raise TargetError(f"{target.path}: no memory level holds activations (key 'holds')")
