"""Dynamic voltage and frequency scaling: a target's operating points, and what its supply voltage changes.

A target may list the supply voltages it can run at (`[dvfs]`); the first
is its `[clock]` point, the others lower. Each point's clock comes from the
delay fit of the target's technology (`targets.scaling`: Stillmaker & Baas,
the same source as its energies), f(V) = f0 x d(V0) / d(V), unless the table
gives the frequencies. The supply feeds a rail: the PE array and the SFU,
and any on-chip memory named in `rail`; with the array, the parts around it
(registers, accumulators, interconnect and buffers, whose energy per access
scales as a memory's). On it, at voltage V against V0:

- logic energy per operation follows the technology's energy fit
  (e(V) / e(V0), Stillmaker & Baas, as every compute energy of the target);
- memory energy per access follows C V^2, (V / V0)^2 (as CACTI scales its
  devices, and `targets.memtech` its SRAM corners), and a memory keeps its
  bytes per cycle (its access time stretches with the logic's delay);
- leakage power follows P ~ V exp(k V) (Martin, Flautner, Mudge and Blaauw,
  ICCAD 2002: the subthreshold and DIBL model V K3 e^(K4 V) at zero body
  bias, K4 = 1.83 / V for their 70 nm process), so it scales by
  (V / V0) exp(k (V - V0)).

A memory on the rail must hold its numbers at the rail's top voltage: a
memory model states the supply its numbers hold at (`supply_v`; NVMExplorer's
SRAM is CACTI's LOP array at its own 0.6 V, which is therefore kept off an
0.8 V rail), and a rail that names a memory at another supply is refused;
a buffer around the array whose model holds at another supply than the
rail's (the LOP SRAM's) likewise runs at its own and keeps its numbers.
Retention is on its own supply (the data-retention voltage), so a memory's
retention leakage stays what it is at the top point.

The rail is regulated from its input supply (`regulator`): `"ldo"`, an
on-chip linear regulator fed from the top point's supply, passes its load
current from input to output, so the rail draws V_in / V_out times the power
it delivers (efficiency Vout / Vin, quiescent current neglected: Texas
Instruments, "Understanding the terms and definitions of LDO voltage
regulators", SLVA079); at the top point it is in dropout and loses nothing.
`"ideal"` (the default) charges no conversion loss. Fed from 0.8 V, an LDO
at 0.6 V draws (0.6/0.8)^2 x 0.8/0.6 = 0.75x a C V^2 energy, and
0.52 x 1.33 = 0.69x the leakage power, about 0.96x the leakage energy over
the 1.38x longer inference.

Memories off the rail (a write-once RRAM, DRAM, an SRAM at its own supply)
keep their numbers and their speed in nanoseconds, so they give more bytes
per (slower) cycle. Switching points stalls the chip for `transition_ns`
and costs `transition_pj`.

    [dvfs]
    voltages_v = [0.8, 0.7, 0.6]        # the first is [clock] voltage_v
    rail = ["compute", "sfu"]
    regulator = "ldo"
    leakage_per_volt = 1.83
    transition_ns = 1240
    transition_pj = 15.6
    source = "..."

`spec.at_point` gives the target as it is at one operating point: the simulator
runs the same program on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aalbert.targets.hardware.scaling import UNSCALED, Technology, delay_fit
from aalbert.targets.hardware.tables import Table, TargetError

RAIL_LOGIC = ("compute", "sfu")
REGULATORS = ("ideal", "ldo")


@dataclass(frozen=True)
class OperatingPoint:
    voltage_v: float
    frequency_mhz: float

    def label(self) -> str:
        return f"{self.voltage_v:.2f} V, {self.frequency_mhz:.0f} MHz"


@dataclass(frozen=True)
class Dvfs:
    points: tuple[OperatingPoint, ...]      # highest voltage first: the [clock] point
    rail: tuple[str, ...]                   # compute, sfu and the on-chip memories the scaled supply feeds
    leakage_per_volt: float                 # k of P_leak ~ V exp(k V)
    transition_ns: float
    transition_pj: float
    source: str
    frequency_source: str = ""
    regulator: str = "ideal"                # ideal | ldo (fed from the top point's supply)

    @property
    def top(self) -> OperatingPoint:
        return self.points[0]

    def drawn_factor(self, volts: float) -> float:
        """Power drawn from the supply over power delivered to the rail at `volts` (an LDO: V_in / V_out)."""
        return self.top.voltage_v / volts if self.regulator == "ldo" else 1.0

    def leakage_factor(self, volts: float) -> float:
        v0 = self.top.voltage_v
        return volts / v0 * math.exp(self.leakage_per_volt * (volts - v0))

    def access_factor(self, volts: float) -> float:
        return (volts / self.top.voltage_v) ** 2


def parse_dvfs(where: str, data, mhz: float, volts: float | None, tech: Technology,
               on_chip: dict[str, float | None]) -> Dvfs | None:
    """The `[dvfs]` table of a target file (None without one), `on_chip` the on-chip memories and the supply each
    one's numbers hold at; every problem one `TargetError`."""
    if data is None:
        return None
    t = Table(f"{where}: [dvfs]", data)
    if volts is None or tech is UNSCALED:
        raise TargetError(f"{t.where}: needs [clock] voltage_v and a [technology] table (their fits give each "
                          "point's energy and clock)")
    voltages = _numbers(t, "voltages_v")
    if voltages[0] != volts or any(b >= a for a, b in zip(voltages, voltages[1:])):
        raise TargetError(f"{t.where}: key 'voltages_v' must start at the [clock] voltage {volts:g} and fall, "
                          f"got {list(voltages)}")
    if "frequencies_mhz" in t.data:
        freqs = _numbers(t, "frequencies_mhz")
        if len(freqs) != len(voltages) or freqs[0] != mhz:
            raise TargetError(f"{t.where}: key 'frequencies_mhz' needs one frequency per voltage, the first the "
                              f"[clock] {mhz:g} MHz, got {list(freqs)}")
        note = "frequencies as the target file gives them"
    else:
        d0 = delay_fit(tech.scaling_node, volts)
        freqs = tuple(mhz * d0 / delay_fit(tech.scaling_node, v) for v in voltages)
        note = (f"frequencies from the {tech.scaling_node} nm delay fit of Stillmaker & Baas (Integration 58, "
                f"2017): f = {mhz:g} MHz x d({volts:g} V) / d(V)")
    if any(not 0 < b <= a for a, b in zip(freqs, freqs[1:])):
        raise TargetError(f"{t.where}: the clock must slow down as the voltage falls, got "
                          f"{', '.join(f'{f:.4g} MHz' for f in freqs)} at {', '.join(f'{v:g} V' for v in voltages)}"
                          " (outside the delay fit's range: give frequencies_mhz)")
    rail = t.get("rail", list, RAIL_LOGIC)
    for name in rail:
        if name not in RAIL_LOGIC and name not in on_chip:
            raise TargetError(f"{t.where}: key 'rail' names '{name}', which is neither compute, sfu nor an "
                              f"on-chip memory ({', '.join(on_chip)})")
        supply = on_chip.get(name)
        if supply is not None and abs(supply - volts) > 1e-9:
            raise TargetError(f"{t.where}: key 'rail' names '{name}', whose numbers hold at its own {supply:g} V "
                              f"supply, not the rail's {volts:g} V: keep it off the rail, or give it a model or "
                              "numbers at the rail's supply")
    dvfs = Dvfs(tuple(OperatingPoint(v, f) for v, f in zip(voltages, freqs)), tuple(rail),
                t.positive("leakage_per_volt", allow_zero=True), t.positive("transition_ns", allow_zero=True),
                t.positive("transition_pj", allow_zero=True), t.get("source", str), note,
                t.choice("regulator", REGULATORS, "ideal"))
    t.done()
    return dvfs


def _numbers(t: Table, key: str) -> tuple[float, ...]:
    """A non-empty list of positive, finite numbers."""
    t.used.add(key)
    if key not in t.data:
        raise TargetError(f"{t.where}: missing key '{key}'")
    value = t.data[key]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise TargetError(f"{t.where}: key '{key}' must be a list of numbers, got {value!r}")
    bad = [v for v in value if not (math.isfinite(v) and 1e-9 <= v <= 1e12)]
    if bad:
        raise TargetError(f"{t.where}: key '{key}' holds {bad[0]!r}, outside the range aalbert models "
                          "(positive and finite)")
    return tuple(float(v) for v in value)
