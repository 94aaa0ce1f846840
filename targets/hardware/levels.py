"""Memory levels of a target: what each costs, holds and reaches, its power states, and how a file gives them.

A `[[memory]]` table gives its numbers, or names a technology `model`
(`targets.hardware.memtech` for on-chip technologies, built in or one file
each, `targets.hardware.dram` for DRAM) and takes its
numbers, with their provenance, from it; any number given overrides the
model's. On-chip levels have banks (equal, contiguous address ranges, the
units of power gating), power states (`memtech.PowerStates`) and a gating
policy (`power_gating`: none, empty banks off, or also idle banks in their
idle state); DRAM levels have background power by state (`dram.DramPower`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from aalbert.targets.hardware.dram import DRAM_SPECS, DramPower
from aalbert.targets.hardware.memtech import (
    COST_FIELDS,
    MemoryCost,
    MemoryNumbers,
    PowerStates,
    anchors,
    default_banks,
    model_name,
    model_names,
    power_states,
    scaled,
    technologies,
)
from aalbert.targets.hardware.tables import Table, TargetError, named_table

DATA_KINDS = ("weights", "activations")
POWER_GATING = ("none", "empty", "idle")   # no bank gated; empty banks off; also idle banks in their idle state


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
    banks: int = 1               # power-gating units: equal, contiguous address ranges
    model: str | None = None     # the technology model its numbers come from (memtech, dram)
    power: PowerStates | None = None      # on-chip power states (not DRAM)
    power_gating: str = "none"            # none | empty | idle
    dram: DramPower | None = None         # DRAM background by state
    supply_v: float | None = None         # the supply its numbers hold at (its model's, or given; None: not stated)

    @property
    def bank_bytes(self) -> int:
        return -(-self.capacity_bytes // self.banks)

    @property
    def bank_leakage_mw(self) -> float:
        return self.leakage_mw / self.banks

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



def on_chip_model(t: Table, capacity: int, mhz: float, banks: int | None) -> tuple[str, MemoryNumbers]:
    """The table's 'model' key, an on-chip memory model, and its numbers at this capacity, clock and bank count."""
    model = t.get("model", str)
    if model_name(model) not in model_names() or model in DRAM_SPECS:
        raise TargetError(f"{t.where}: key 'model' must be one of {', '.join(model_names())}, got {model!r}")
    return model_name(model), scaled(model, capacity, mhz, banks)


def parse_memory(where: str, index: int, data, mhz: float) -> MemoryLevel:
    t = named_table(where, "memory", index, data)
    name = t.get("name", str)
    technology = t.choice("technology", technologies())
    capacity = t.positive("capacity_bytes", int)
    model = t.get("model", str, None)
    banks = t.positive("banks", int, None) if "banks" in t.data else None
    derived, note, dram = {}, "", None
    if technology == "dram":
        if banks is not None:
            raise TargetError(f"{t.where}: key 'banks' is for on-chip memories (a DRAM's background is per channel)")
        derived, note, dram, model = _dram(t, capacity, mhz, model)
        banks = 1
    elif model is not None:
        model, n = on_chip_model(t, capacity, mhz, banks)
        derived = {f: getattr(n, f) for f in COST_FIELDS}
        note = n.source
        banks = banks or default_banks(capacity)
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
    supply = anchors()[model].supply_v if model is not None and technology != "dram" else None
    if "supply_v" in t.data:
        supply = t.positive("supply_v")
    power, gating = None, "none"
    if technology != "dram":
        power = _power_states(t, technology, model is not None, values["volatile"])
        gating = t.choice("power_gating", POWER_GATING, "idle")
    source = t.get("source", str)
    if note:
        source = f"{source}; other numbers: {note}"
    if power is not None:
        source = f"{source}; power states: {power.source}"
    level = MemoryLevel(name=name, technology=technology, capacity_bytes=capacity,
                        off_chip=t.get("off_chip", bool, False), field_writable=t.get("field_writable", bool, True),
                        holds=holds, reaches=t.get("reaches", list), source=source, banks=banks or 1, model=model,
                        power=power, power_gating=gating, dram=dram, supply_v=supply, **values)
    t.done()
    return level


POWER_KEYS = {"retention_leakage_fraction": "retention", "off_leakage_fraction": "off", "wakeup_ns": "wakeup_ns",
              "wakeup_pj": "wakeup_pj"}


def _power_states(t: Table, technology: str, modelled: bool, volatile: bool) -> PowerStates:
    """The level's power states: its technology's (`memtech.power_states`) for a modelled level, overridden by
    any key given; every one given for a level that states its own numbers."""
    base = power_states(technology) if modelled else None
    values = {}
    for key, field_name in POWER_KEYS.items():
        if key == "retention_leakage_fraction" and not volatile:
            continue  # non-volatile memory keeps its data when gated: no retention state
        if key in t.data or base is None:
            v = t.positive(key, float, allow_zero=True)
            if key.endswith("fraction") and v > 1:
                raise TargetError(f"{t.where}: key '{key}' must be a fraction of the leakage (0 to 1), got {v}")
            values[field_name] = v
        else:
            values[field_name] = getattr(base, field_name)
    given = [k for k in POWER_KEYS if k in t.data]
    source = base.source if base is not None else "the level's source"
    if given and base is not None:
        source += f"; {', '.join(given)} as the level's source says"
    return PowerStates(values.get("retention"), values["off"], values["wakeup_ns"], values["wakeup_pj"],
                       not volatile, source)


DRAM_BACKGROUND_KEYS = ("background_active_mw", "background_power_down_mw", "background_self_refresh_mw",
                        "refresh_mw", "self_refresh_after_ns", "phy_area_mm2")


def _dram(t: Table, capacity: int, mhz: float, model: str | None):
    """A DRAM level: its access numbers and background from a `dram.DRAM_SPECS` model, or given."""
    channels = t.positive("channels", int, 1)
    if model is None:
        v = {k: t.positive(k, float, allow_zero=True, allow_inf=k == "self_refresh_after_ns")
             for k in DRAM_BACKGROUND_KEYS}
        power = DramPower(v["background_active_mw"], v["background_power_down_mw"], v["background_self_refresh_mw"],
                          v["refresh_mw"], v["self_refresh_after_ns"], 0.0, v["phy_area_mm2"],
                          "background as the level's source says", "as the target file says")
        return {}, "", power, None
    if model not in DRAM_SPECS:
        raise TargetError(f"{t.where}: key 'model' must be one of {', '.join(DRAM_SPECS)} for a DRAM, got {model!r}")
    spec = DRAM_SPECS[model]
    if capacity > channels * spec.capacity_bytes:
        raise TargetError(f"{t.where}: key 'capacity_bytes' {capacity:,} is more than {channels} "
                          f"channel{'s' if channels > 1 else ''} of "
                          f"{model} hold ({channels * spec.capacity_bytes:,}); raise 'channels'")
    word = spec.burst_bytes
    per_cycle = spec.bytes_per_ns * channels * 1000.0 / mhz
    derived = {"word_bits": word * 8, "read_energy_pj": spec.read_pj_per_byte * word,
               "write_energy_pj": spec.write_pj_per_byte * word,
               "read_latency_ns": (spec.t_rcd + spec.t_rl) * spec.tck_ns,
               "write_latency_ns": (spec.t_rcd + spec.t_wl) * spec.tck_ns, "leakage_mw": 0.0, "area_mm2": 0.0,
               "write_endurance": math.inf, "volatile": True, "read_bytes_per_cycle": per_cycle,
               "write_bytes_per_cycle": per_cycle}
    note = (f"{spec.describe()}; word = one BL{spec.burst} burst ({word} bytes); latency tRCD + RL (reads), "
            f"tRCD + WL (writes); {per_cycle:.3g} bytes per cycle at {mhz:g} MHz; background: "
            f"{spec.power(channels).source}")
    power = spec.power(channels)
    given = {k: t.positive(k, float, allow_zero=True, allow_inf=k == "self_refresh_after_ns")
             for k in DRAM_BACKGROUND_KEYS if k in t.data}
    if given:  # numbers given next to a model replace the model's
        names = {"background_active_mw": "active_mw", "background_power_down_mw": "power_down_mw",
                 "background_self_refresh_mw": "self_refresh_mw", "refresh_mw": "refresh_mw",
                 "self_refresh_after_ns": "self_refresh_after_ns", "phy_area_mm2": "phy_area_mm2"}
        power = dataclasses.replace(power, **{names[k]: v for k, v in given.items()},
                                    label=f"{power.label}; {', '.join(f'{k} = {v:g}' for k, v in given.items())} "
                                    "as the target says")
    return derived, note, power, model
