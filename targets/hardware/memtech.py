"""Memory technology models: numbers for a memory of any capacity, from published anchors.

SRAM (`sram`, `sram_lstp`, `sram_hp`) is calibrated against CACTI 7: one
256 KiB bank with a 64-bit port, as the edge targets' SRAMs are banked, run
at 22 nm and 300 K for each device roadmap (LOP, LSTP, HP; the raw outputs
and how they were made are in benchmarks/calibration/, docs/calibration.md
compares them) and scaled to the 12 nm node the targets are built in with
Stillmaker & Baas' fits (`targets.scaling`; 22 nm taken as their 20 nm fit,
12 nm as their 16 nm fit): access energy by their energy fit at the cell's
supply, latency by their delay fit, area and leakage by their area factor
(leakage per cell follows the cell's transistor width at CACTI's off current
per micron, to first order).

RRAM and the NVMExplorer SRAM are NVMExplorer's 2 MB arrays at 22 nm with
64-bit words (Pentecost et al., "NVMExplorer: A Framework for Cross-Stack
Comparisons of Embedded Non-Volatile Memories", HPCA 2022; the values are the
RRAM and SRAM rows of the artifact's lpentecost/NVMExplorer
AE_dnn_output/{RRAM,SRAM}_1BPC-combined.csv: RRAM_best_case and SRAM cells,
22 nm, 350 K, 2 MB, 64-bit words, one row per optimization target). RRAM
comes in NVMExplorer's three read-optimized points (read EDP, read energy,
read latency) with the area of measured silicon, Intel's 22FFL RRAM macro
(10.1 Mb/mm2); NVMExplorer's best-case cell areas remain as the
`rram_*_nvmexplorer` variants. The SRAM models before calibration remain as
`sram_nvmexplorer` (NVMExplorer's LOP point at 350 K) and its two corners
derived with CACTI 7's 22 nm device parameters (`sram_nvmexplorer_lstp`,
`sram_nvmexplorer_hp`).

A memory of capacity C is s = C / (the anchor's capacity) of it, by the usual
first-order rule (as CACTI's array models behave):

- area and leakage scale linearly with s (they are per cell);
- energy and latency per access scale with sqrt(s) (word and bit lines, and
  the H-tree, grow with the side of the array);
- banks: a memory built of b banks is b arrays of C / b bytes, each with its
  own word-wide port: energy and latency per access follow the bank's size
  (sqrt of C / b / the anchor's capacity), bandwidth is one word per bank per max(cycle, access
  time). Without a stated bank count, one bank per 2 MB.

Each technology also has power states (`POWER_STATES`): the leakage left in
retention (SRAM keeps its data at a lower supply) and when power-gated
(SRAM loses its data, non-volatile memory keeps it), and the latency and
energy of waking a bank. The rule is a first-order model, documented as
such in every number it produces (`source`), so a design-space sweep can ask
for any size.

A new technology is one file: a TOML file in `technologies/` beside this
module gives one anchor (`name`, its `technology` kind, capacity, word width,
energies, latencies, leakage, area, endurance, volatility, `source`) and, for
a kind not known here, its `[power_states]` (`technology_file`). Its name is
then a `model` a target's `[[memory]]` table may give.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aalbert.targets.hardware.scaling import AREA_FROM_45, delay_fit, energy_fit
from aalbert.targets.hardware.tables import TargetError

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
    supply_v: float | None = None    # the supply the array's numbers hold at (None: not stated)


NVMEXPLORER = ("NVMExplorer (HPCA 2022), 2 MB array, 22 nm, 64-bit word, 350 K (lpentecost/NVMExplorer "
               "AE_dnn_output/{}_1BPC-combined.csv, {} cell, optimization target {})")
RRAM_ENDURANCE = ("endurance 1e8 writes is an assumption (RRAM endurance varies by orders of magnitude between "
                  "devices)")


# measured RRAM silicon: Jain et al., "A 3.6Mb 10.1Mb/mm2 embedded non-volatile ReRAM macro in 22nm FinFET
# technology with adaptive forming/set/reset schemes yielding down to 0.5V with sensing time of 5ns at 0.7V",
# ISSCC 2019 (Intel 22FFL): 10.1 Mb per mm2 of macro
RRAM_SILICON_MB_PER_MM2 = 10.1
RRAM_SILICON = ("area from measured silicon: Intel's 22FFL RRAM macro, 10.1 Mb/mm2 (Jain et al., ISSCC 2019), "
                "{:.3f} mm2 per 2 MB, in place of NVMExplorer's best-case cell ({:.3f} mm2)")


def _rram(target: str, figures: tuple[float, float, float, float, float, float], silicon: bool = True) -> Anchor:
    """NVMExplorer's RRAM array for optimization target `target`; `figures` are its columns: area (mm2), read
    and write latency (ns), read and write energy (pJ), leakage (mW). With `silicon`, the area is the measured
    22FFL macro's density instead of NVMExplorer's best-case cell."""
    area, read_ns, write_ns, read_pj, write_pj, leak_mw = figures
    source = NVMEXPLORER.format("RRAM", "RRAM_best_case", target) + "; " + RRAM_ENDURANCE
    if silicon:
        measured = MB2 * 8 / 1e6 / RRAM_SILICON_MB_PER_MM2
        source += "; " + RRAM_SILICON.format(measured, area)
        area = measured
    return Anchor(technology="rram", capacity_bytes=MB2, word_bits=64, area_mm2=area, read_latency_ns=read_ns,
                  write_latency_ns=write_ns, read_energy_pj=read_pj, write_energy_pj=write_pj, leakage_mw=leak_mw,
                  write_endurance=1e8, volatile=False, source=source)


# CACTI 7 (HewlettPackard/cacti tech_params/22nm.dat) device parameters at 350 K (NVMExplorer's temperature):
# supply, off current (subthreshold + gate, A/um), gate capacitance (F/um), on current (A/um)
CACTI_22NM = {"hp": (0.8, 2.152e-7 + 1.81e-9, 3.27e-16, 2.6264e-3),
              "lstp": (0.8, 7.73e-10 + 4.51e-10, 3.22e-16, 7.276e-4),
              "lop": (0.6, 3.99e-7 + 2.74e-9, 3.16e-16, 9.161e-4)}


def _sram_corner(base: Anchor, corner: str) -> Anchor:
    """NVMExplorer's SRAM (LOP devices) moved to another CACTI device roadmap: leakage by I_off x Vdd, access
    energy by C_gate x Vdd^2, latency by C_gate x Vdd / I_on (first order: cells and periphery alike)."""
    v, ioff, cg, ion = CACTI_22NM[corner]
    v0, ioff0, cg0, ion0 = CACTI_22NM["lop"]
    leak = (ioff * v) / (ioff0 * v0)
    energy = (cg * v * v) / (cg0 * v0 * v0)
    delay = (cg * v / ion) / (cg0 * v0 / ion0)
    return dataclasses.replace(
        base, supply_v=v, leakage_mw=base.leakage_mw * leak, read_energy_pj=base.read_energy_pj * energy,
        write_energy_pj=base.write_energy_pj * energy, read_latency_ns=base.read_latency_ns * delay,
        write_latency_ns=base.write_latency_ns * delay,
        source=f"{base.source}, moved from CACTI's LOP to its {corner.upper()} 22 nm devices at 350 K "
        f"(HewlettPackard/cacti tech_params/22nm.dat: Vdd, I_off + I_gate, C_gate, I_on): leakage x {leak:.3g} "
        f"(I_off x Vdd), access energy x {energy:.3g} (C x Vdd^2), latency x {delay:.3g} (C x Vdd / I_on)")


_SRAM_NVMEXPLORER = Anchor(
    technology="sram", capacity_bytes=MB2, word_bits=64, area_mm2=1.309, read_latency_ns=4.684,
    write_latency_ns=4.679, read_energy_pj=1.128, write_energy_pj=17.016, leakage_mw=56.345,
    write_endurance=math.inf, volatile=True, supply_v=CACTI_22NM["lop"][0],
    source=NVMEXPLORER.format("SRAM", "SRAM", "ReadEDP") + ", CACTI device roadmap LOP, whose 22 nm devices run at "
    "0.6 V (HewlettPackard/cacti tech_params/22nm.dat), so the array's numbers are at its own 0.6 V supply; "
    "volatile, no wear-out")

# CACTI 7.0.3 (as zigzag-dse 3.9.1 ships it) for one 256 KiB scratch RAM bank, 64-bit port, one read-write port,
# 22 nm, 300 K, cells and periphery of each device roadmap: access time (ns), read and write energy per access
# (pJ), leakage of the bank (mW), area (mm2). benchmarks/calibration/cacti.json holds its outputs (the test
# checks these against it); `python benchmarks/calibration.py --run-cacti DIR` makes them again.
CACTI_BANK_BYTES = 256 * 1024
CACTI_BANK: dict[str, tuple[float, float, float, float, float]] = {
    "lop": (1.04096, 6.98381, 4.98079, 1.60181, 0.770375 * 0.270107),
    "lstp": (1.5085, 11.8577, 8.82464, 0.00379039, 0.445231 * 0.506006),
    "hp": (0.579749, 9.93381, 7.54251, 19.8574, 0.770996 * 0.270107),
}
CACTI_NODE, CACTI_FIT, TARGET_NODE, TARGET_FIT = 22, 20, 12, 16


def cacti_scaling(corner: str) -> dict[str, float]:
    """The factors taking CACTI's 22 nm bank to 12 nm: energy and delay by Stillmaker & Baas' fits at the
    corner's own supply, area and leakage by their area factor."""
    v = CACTI_22NM[corner][0]
    return {"energy": energy_fit(TARGET_FIT, v) / energy_fit(CACTI_FIT, v),
            "delay": delay_fit(TARGET_FIT, v) / delay_fit(CACTI_FIT, v),
            "area": AREA_FROM_45[CACTI_FIT] / AREA_FROM_45[TARGET_FIT]}


def _sram_cacti(corner: str) -> Anchor:
    """CACTI 7's 256 KiB bank of a device roadmap, scaled to 12 nm (`cacti_scaling`)."""
    ns, read_pj, write_pj, leak_mw, area = CACTI_BANK[corner]
    f = cacti_scaling(corner)
    return Anchor(
        technology="sram", capacity_bytes=CACTI_BANK_BYTES, word_bits=64, area_mm2=area * f["area"],
        read_latency_ns=ns * f["delay"], write_latency_ns=ns * f["delay"], read_energy_pj=read_pj * f["energy"],
        write_energy_pj=write_pj * f["energy"], leakage_mw=leak_mw * f["area"], write_endurance=math.inf,
        volatile=True, supply_v=CACTI_22NM[corner][0],
        source=f"CACTI 7.0.3 (zigzag-dse 3.9.1), one 256 KiB scratch RAM bank, 64-bit read-write port, 22 nm, "
        f"300 K, {corner.upper()} cells and periphery at {CACTI_22NM[corner][0]:g} V: {read_pj:g} / {write_pj:g} pJ "
        f"per read / write, {leak_mw:.4g} mW, {area:.4g} mm2, {ns:g} ns (benchmarks/calibration/cacti.json); "
        f"scaled to {TARGET_NODE} nm by Stillmaker & Baas (Integration 2017; {CACTI_FIT} nm fit for {CACTI_NODE} nm, "
        f"{TARGET_FIT} nm fit for {TARGET_NODE} nm): energy x {f['energy']:.3f} (energy fit at "
        f"{CACTI_22NM[corner][0]:g} V), latency x {f['delay']:.3f} (delay fit), area and leakage x {f['area']:.3f} "
        f"(area factor); volatile, no wear-out")


_RRAM = {"rram_read_edp": ("ReadEDP", (0.525828515, 0.793295, 5.53, 6.178, 49.72, 11.979)),
         "rram_read_energy": ("ReadDynamicEnergy", (0.442507258, 13.737, 16.659, 1.118, 83.81, 1.316)),
         "rram_read_latency": ("ReadLatency", (0.575811979, 0.781488, 5.53, 7.253, 47.951, 23.112))}

ANCHORS: dict[str, Anchor] = {
    **{name: _rram(t, figures) for name, (t, figures) in _RRAM.items()},
    "sram": _sram_cacti("lop"),
    "sram_hp": _sram_cacti("hp"),
    "sram_lstp": _sram_cacti("lstp"),
    # the values before calibration, kept as named variants
    **{f"{name}_nvmexplorer": _rram(t, figures, silicon=False) for name, (t, figures) in _RRAM.items()},
    "sram_nvmexplorer": _SRAM_NVMEXPLORER,
    "sram_nvmexplorer_hp": _sram_corner(_SRAM_NVMEXPLORER, "hp"),
    "sram_nvmexplorer_lstp": _sram_corner(_SRAM_NVMEXPLORER, "lstp"),
}
# older names target files may still use
ALIASES = {"rram": "rram_read_edp", "rram_low_energy": "rram_read_energy", "sram_lop": "sram",
           "rram_nvmexplorer": "rram_read_energy_nvmexplorer"}
RRAM_POINTS = ("rram_read_edp", "rram_read_energy", "rram_read_latency")
SRAM_CORNERS = ("sram_lstp", "sram", "sram_hp")
# the models before calibration against CACTI 7 and measured RRAM silicon (docs/calibration.md)
UNCALIBRATED = {"sram": "sram_nvmexplorer", "sram_lstp": "sram_nvmexplorer_lstp", "sram_hp": "sram_nvmexplorer_hp",
                **{name: f"{name}_nvmexplorer" for name in RRAM_POINTS}}


def model_name(model: str) -> str:
    """The canonical name of a memory model (resolving the older aliases)."""
    return ALIASES.get(model, model)


def model_names() -> list[str]:
    return list(anchors()) + list(ALIASES)


@dataclass(frozen=True)
class PowerStates:
    """A technology's power states, as fractions of its leakage when on, and what waking a bank costs."""

    retention: float | None      # leakage kept in retention (None: no retention state; gating keeps the data)
    off: float                   # leakage left when power-gated
    wakeup_ns: float             # back to on, per bank
    wakeup_pj: float             # per bank wake-up
    keeps_data_off: bool         # non-volatile: the data survive power gating
    source: str


GATED = ("off: supply-gated arrays keep 1/260 of their leakage (IBM, 'The design and implementation of a "
         "low-overhead supply-gated SRAM', IEEE 2006, 65 nm hardware: over 260x less with hard gating)")
WAKE = ("wake-up 20 ns and 450 pJ per bank: the restore time and energy of a 65 nm ReRAM nonvolatile processor "
        "(Liu et al., ISSCC 2016, 4.7)")
POWER_STATES: dict[str, PowerStates] = {
    "sram": PowerStates(0.10, 1 / 260, 20.0, 450.0, False,
                        "retention: data kept at the data-retention voltage with over 90 % less leakage (Qin et al., "
                        f"ISQED 2004, measured 0.13 um SRAM), so 10 %; {GATED}, contents lost; {WAKE}, taken as an "
                        "upper bound for an SRAM bank (no SRAM-specific figure found)"),
    "rram": PowerStates(None, 1 / 260, 20.0, 450.0, True,
                        f"non-volatile: the cells keep their data unpowered, the periphery is gated; {GATED}; {WAKE}"),
    "mram": PowerStates(None, 1 / 260, 1.0, 450.0, True,
                        f"non-volatile; {GATED}; wake-up 1.0 ns (Ohsawa et al., VLSI 2012, power-gated 1 Mb STT-RAM); "
                        "energy 450 pJ per bank as RRAM (Liu et al., ISSCC 2016)"),
}


def anchors() -> dict[str, Anchor]:
    """Every memory model: the built-in anchors, then those of the technology files."""
    return {**ANCHORS, **_files()[0]}


def technologies() -> tuple[str, ...]:
    """Every technology kind a memory level may be: the built-in ones, then the technology files' new ones."""
    return TECHNOLOGIES + tuple(k for k in _files()[1] if k not in TECHNOLOGIES)


def power_states(technology: str) -> PowerStates | None:
    """A technology kind's power states (None for DRAM, whose background is by state: `dram`)."""
    return _files()[1].get(technology) or POWER_STATES.get(technology)


TECHNOLOGY_DIR = Path(__file__).with_name("technologies")
ANCHOR_KEYS = {"word_bits": int, "read_energy_pj": float, "write_energy_pj": float, "read_latency_ns": float,
               "write_latency_ns": float, "leakage_mw": float, "area_mm2": float, "write_endurance": float,
               "volatile": bool, "capacity_bytes": int}
STATE_KEYS = {"retention_leakage_fraction": "retention", "off_leakage_fraction": "off", "wakeup_ns": "wakeup_ns",
              "wakeup_pj": "wakeup_pj"}


@functools.cache
def _files() -> tuple[dict[str, Anchor], dict[str, PowerStates]]:
    found: dict[str, Anchor] = {}
    states: dict[str, PowerStates] = {}
    for path in sorted(TECHNOLOGY_DIR.glob("*.toml")):
        anchor, power = technology_file(path)
        name = path.stem
        if name in ANCHORS or name in found or name in ALIASES:
            raise TargetError(f"{path}: a memory model named '{name}' exists already")
        found[name] = anchor
        if power is not None:
            states[anchor.technology] = power
    return found, states


def technology_file(path: Path) -> tuple[Anchor, PowerStates | None]:
    """One technology file: its anchor (named after the file) and the power states it gives, if any. A kind not
    built in must give them; every number needs its `source`."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise TargetError(f"{where}: not a readable technology file ({e})") from None
    kind = data.get("technology")
    if not isinstance(kind, str) or not kind:
        raise TargetError(f"{where}: key 'technology' (the kind: {', '.join(TECHNOLOGIES)} or a new one) is missing")
    values = {}
    for key, typ in ANCHOR_KEYS.items():
        v = data.get(key)
        ok = isinstance(v, bool) if typ is bool else isinstance(v, (int, float)) and not isinstance(v, bool) and (
            typ is float or isinstance(v, int)) and v >= 0
        if not ok:
            raise TargetError(f"{where}: key '{key}' must be {'true or false' if typ is bool else 'a number >= 0'}")
        values[key] = typ(v)
    source = data.get("source")
    if not isinstance(source, str) or not source:
        raise TargetError(f"{where}: key 'source' (where the numbers come from) is missing")
    supply = data.get("supply_v")
    if supply is not None and (not isinstance(supply, (int, float)) or isinstance(supply, bool) or supply <= 0):
        raise TargetError(f"{where}: key 'supply_v' (the supply its numbers hold at) must be a positive number")
    anchor = Anchor(technology=kind, source=source, supply_v=None if supply is None else float(supply), **values)
    table = data.get("power_states")
    if table is None:
        if kind not in POWER_STATES and kind != "dram":
            raise TargetError(f"{where}: a new technology kind '{kind}' needs a [power_states] table")
        return anchor, None
    numbers = {f: float(table[k]) for k, f in STATE_KEYS.items() if k in table}
    missing = [k for k, f in STATE_KEYS.items() if f not in numbers and not (f == "retention" and
                                                                            not anchor.volatile)]
    if missing or not isinstance(table.get("source"), str):
        raise TargetError(f"{where}: [power_states] needs {', '.join(missing or ['source'])}")
    power = PowerStates(numbers.get("retention"), numbers["off"], numbers["wakeup_ns"], numbers["wakeup_pj"],
                        not anchor.volatile, table["source"])
    return anchor, power


@dataclass(frozen=True, kw_only=True)
class MemoryNumbers(MemoryCost):
    """A modelled memory's numbers and how they were derived."""

    source: str


def scaled(model: str, capacity_bytes: int, clock_mhz: float, banks: int | None = None) -> MemoryNumbers:
    """The anchor `model` scaled to `capacity_bytes` (in `banks` banks) by the module's rule."""
    a = anchors()[model_name(model)]
    s = capacity_bytes / a.capacity_bytes
    banks = banks or default_banks(capacity_bytes)
    root = math.sqrt(s / banks)  # per bank
    cycle_ns = 1000.0 / clock_mhz
    read_lat, write_lat = a.read_latency_ns * root, a.write_latency_ns * root
    word = a.word_bits / 8
    source = (f"{model_name(model)}: {a.source}; scaled to {capacity_bytes} bytes in {banks} "
              f"bank{'s' if banks > 1 else ''} (s = {s:.4g} x 2 MB): area and leakage x s, energy and latency per "
              f"access x sqrt(s / banks); bandwidth {banks} x "
              f"{a.word_bits}-bit word per max(1 cycle, access time) at {clock_mhz:g} MHz")
    return MemoryNumbers(
        area_mm2=a.area_mm2 * s, read_latency_ns=read_lat, write_latency_ns=write_lat,
        read_energy_pj=a.read_energy_pj * root, write_energy_pj=a.write_energy_pj * root,
        leakage_mw=a.leakage_mw * s,
        read_bytes_per_cycle=banks * word * min(1.0, cycle_ns / read_lat),
        write_bytes_per_cycle=banks * word * min(1.0, cycle_ns / write_lat),
        write_endurance=a.write_endurance, volatile=a.volatile, word_bits=a.word_bits, source=source)


def default_banks(capacity_bytes: int) -> int:
    """One bank per 2 MB, as NVMExplorer's arrays."""
    return max(1, math.ceil(capacity_bytes / MB2))
