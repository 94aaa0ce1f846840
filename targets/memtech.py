"""Memory technology models: numbers for a memory of any capacity, from published anchors.

Anchors are NVMExplorer's 2 MB arrays at 22 nm with 64-bit words (Pentecost
et al., "NVMExplorer: A Framework for Cross-Stack Comparisons of Embedded
Non-Volatile Memories", HPCA 2022; the values are those of
../shared/DESIGN.md's table). A memory of capacity C is modelled as
s = C / 2 MB of the anchor, with the usual first-order rule (as CACTI's array
models behave):

- area and leakage scale linearly with s (they are per cell);
- energy and latency per access scale with sqrt(s) (word and bit lines, and
  the H-tree, grow with the side of the array);
- banks: a memory built of b banks is b arrays of C / b bytes, each with its
  own word-wide port: energy and latency per access follow the bank's size
  (sqrt of C / b / 2 MB), bandwidth is one word per bank per max(cycle, access
  time). Without a stated bank count, one bank per 2 MB.

The rule is a first-order model, documented as such in every number it
produces (`source`), so a design-space sweep can ask for any size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

MB2 = 2 * 1024 * 1024

# the technologies a target's memory level may name; a new one is added here, with an anchor if it has one
TECHNOLOGIES = ("sram", "rram", "mram", "dram")


@dataclass(frozen=True, kw_only=True)
class MemoryCells:
    """What an array of memory cells costs, whatever the clock: the fields every memory description shares."""

    word_bits: int
    read_energy_pj: float        # per word
    write_energy_pj: float       # per word
    read_latency_ns: float
    write_latency_ns: float
    leakage_mw: float
    area_mm2: float
    write_endurance: float       # writes per cell over its life (inf: no wear-out)
    volatile: bool


@dataclass(frozen=True, kw_only=True)
class MemoryCost(MemoryCells):
    """The cells at a clock: with the bandwidth its banks give."""

    read_bytes_per_cycle: float
    write_bytes_per_cycle: float


COST_FIELDS = tuple(f.name for f in dataclasses.fields(MemoryCost))


@dataclass(frozen=True, kw_only=True)
class Anchor(MemoryCells):
    """A published array: its technology, capacity and numbers, and where they come from."""

    technology: str
    capacity_bytes: int
    source: str


NVMEXPLORER = "NVMExplorer (HPCA 2022), 2 MB array, 22 nm, 64-bit word"
ANCHORS: dict[str, Anchor] = {
    "rram": Anchor(technology="rram", capacity_bytes=MB2, word_bits=64, area_mm2=0.526, read_latency_ns=0.79,
                   write_latency_ns=0.79, read_energy_pj=6.18, write_energy_pj=49.7, leakage_mw=11.98,
                   write_endurance=1e8, volatile=False,
                   source=f"{NVMEXPLORER}, RRAM optimized for read energy-delay product; write latency taken equal "
                   "to read latency (not in the anchor table); endurance 1e8 writes is an assumption "
                   "(RRAM endurance varies by orders of magnitude between devices)"),
    "rram_low_energy": Anchor(technology="rram", capacity_bytes=MB2, word_bits=64, area_mm2=0.443,
                              read_latency_ns=13.7, write_latency_ns=13.7, read_energy_pj=1.12, write_energy_pj=49.7,
                              leakage_mw=1.32, write_endurance=1e8, volatile=False,
                              source=f"{NVMEXPLORER}, RRAM optimized for read energy; write energy and latency, "
                              "endurance as for the read-EDP RRAM (not in the anchor table)"),
    "sram": Anchor(technology="sram", capacity_bytes=MB2, word_bits=64, area_mm2=1.309, read_latency_ns=4.68,
                   write_latency_ns=4.68, read_energy_pj=1.13, write_energy_pj=17.0, leakage_mw=56.3,
                   write_endurance=math.inf, volatile=True,
                   source=f"{NVMEXPLORER}, SRAM optimized for read energy-delay product; write latency taken "
                   "equal to read latency; volatile, no wear-out"),
}


@dataclass(frozen=True, kw_only=True)
class MemoryNumbers(MemoryCost):
    """A modelled memory's numbers and how they were derived."""

    source: str


def scaled(model: str, capacity_bytes: int, clock_mhz: float, banks: int | None = None) -> MemoryNumbers:
    """The anchor `model` scaled to `capacity_bytes` (in `banks` banks) by the module's rule."""
    a = ANCHORS[model]
    s = capacity_bytes / a.capacity_bytes
    banks = banks or max(1, math.ceil(s))
    root = math.sqrt(s / banks)  # per bank
    cycle_ns = 1000.0 / clock_mhz
    read_lat, write_lat = a.read_latency_ns * root, a.write_latency_ns * root
    word = a.word_bits / 8
    source = (f"{a.source}; scaled to {capacity_bytes} bytes in {banks} bank{'s' if banks > 1 else ''} (s = {s:.4g} x 2 MB): area and "
              f"leakage x s, energy and latency per access x sqrt(s / banks); bandwidth {banks} x "
              f"{a.word_bits}-bit word per max(1 cycle, access time) at {clock_mhz:g} MHz")
    return MemoryNumbers(
        area_mm2=a.area_mm2 * s, read_latency_ns=read_lat, write_latency_ns=write_lat,
        read_energy_pj=a.read_energy_pj * root, write_energy_pj=a.write_energy_pj * root,
        leakage_mw=a.leakage_mw * s,
        read_bytes_per_cycle=banks * word * min(1.0, cycle_ns / read_lat),
        write_bytes_per_cycle=banks * word * min(1.0, cycle_ns / write_lat),
        write_endurance=a.write_endurance, volatile=a.volatile, word_bits=a.word_bits, source=source)
