"""Joint sensitivity: every uncertain input sampled together, by re-pricing the study's compiled counts.

The study compiles each configuration once (family x task count x chip) and keeps its counts
(`targets.sim.counts`) and its chip. `PARAMETERS` are the uncertain inputs with their sourced ranges:
technology prices (SRAM leakage over a continuous range, logic leakage, the retention fraction, wake-up
energy, the RRAM operating point and density, STT-MRAM where a chip has it, DRAM energy per bit and
background, clock, node, LDO efficiency, register and accumulator energies) and the workload (inferences per
power-up from one to always on, request rate, switch rate, task count). SALib draws a Saltelli sample
(`sobol.sample`, base `BASE_N`, second order) over them all at once; every sample is evaluated by re-pricing
the counts of the configurations at its task count and re-running their request stream in closed form
(`counts.expected_stream`), no pass and no simulation. Structural choices (placement, mapping, which chip the
sized architectures get, and when each bank is woken and gated: the program's power instructions) are those
compiled at the built-in prices. Decisions that depend on a price are taken again per sample where the counts
allow it: when the DRAM enters self-refresh (the counts keep its gaps), and each family's lowest-energy chip
(the minimum over its chips' re-priced energies). A placement or a gating plan the compiler would change at
other prices is not re-solved: the sampled energy is that of the compiled program, an upper bound of the
re-solved one as far as the compiler's decisions are optimal. `mapper.study.resolve` measures what this misses:
it compiles every configuration of a few samples again at their prices and workload and compares.

Each input acts on the prices the simulator charges (`targets.sim.prices`): SRAM leakage on the banks and
buffers of the CACTI-calibrated SRAM, STT-MRAM on the `mram` levels, register and accumulator energies on the
values as scaled to the target's node, the LDO efficiency on the regulator's drawn factor at the DVFS point
(`dvfs.Dvfs.drawn_factor`: the rail's prices at the lowest point over the top point's, which hold that factor).

How inputs that are not a price are re-priced: the clock stretches every residency of an inference by the
compiled clock over the sampled one (cycles as compiled, so memory latencies stay the same number of cycles;
energy per action unchanged), the idle gaps between requests not; the node scales the logic's energies per
action (MACs, SFU, registers, accumulators, interconnect) by the ratio of Stillmaker & Baas' fits; the RRAM
density scales the RRAM's area alone; the DVFS saving re-prices every inference and idle gap at the chip's
lowest operating point (`spec.at_point`) with its rail's energies divided by the LDO's efficiency.

Outputs per conclusion: the fraction of the joint distribution in which it holds, and, for the continuous
ones, Sobol first- and total-order indices with their 95 % confidence intervals and the strongest two-way
interactions (`SALib.analyze.sobol`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aalbert.mapper.study.grid import label as arch_label
from aalbert.targets.hardware.memtech import ANCHORS
from aalbert.targets.hardware.scaling import energy_fit
from aalbert.targets.hardware.spec import Target, at_point
from aalbert.targets.sim.counts import StreamSpec, TaskCounts, expected_stream
from aalbert.targets.sim.prices import Prices, prices_of

BASE_N = 512          # Saltelli base sample (a power of two); N x (2D + 2) evaluations with second order
SEED = 2025


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    low: float
    high: float
    log: bool           # sampled uniformly in its logarithm
    builtin: float      # the value the study's compile used
    source: str
    discrete: bool = False   # an integer from low to high - 1, each equally likely
    levels: tuple[float, ...] = ()   # or one of these, each equally likely

    def value(self, u: np.ndarray) -> np.ndarray:
        """Values for uniform draws u in [0, 1]."""
        if self.levels:
            return np.asarray(self.levels)[np.clip(np.floor(u * len(self.levels)).astype(int), 0,
                                                   len(self.levels) - 1)]
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)


def _ratio(model: str, other: str, f: str) -> float:
    return getattr(ANCHORS[other], f) / getattr(ANCHORS[model], f)


LSTP = _ratio("sram", "sram_lstp", "leakage_mw")
RRAM_EDP = {f: _ratio("rram_read_energy", "rram_read_edp", f) for f in ("read_energy_pj", "write_energy_pj",
                                                                         "leakage_mw")}
NODE_10 = energy_fit(10, 0.8) / energy_fit(16, 0.8)
RRAM_MM2_PER_MB = ANCHORS["rram_read_energy"].area_mm2 / 2   # built in: Intel 22FFL's measured 10.1 Mb/mm^2
RRAM_CELL_MM2_PER_MB = ANCHORS["rram_read_energy_nvmexplorer"].area_mm2 / 2   # NVMExplorer's best-case cell
# the edge targets' registers and accumulators: Aladdin's 40 nm figures (the 45 nm fit at 0.9 V) scaled to
# their 12 nm node (the 16 nm fit at 0.8 V); unscaled, they cost this many times the built-in
REGISTERS_UNSCALED = energy_fit(45, 0.9) / energy_fit(16, 0.8)


def parameters(task_counts: list[int], mram: bool) -> list[Parameter]:
    """The sampled inputs (`task_counts`: those the study compiled; `mram`: a chip of the study has STT-MRAM, whose
    figures are then sampled too)."""
    counts = sorted(set(task_counts))
    out = [
        Parameter("sram_leakage", "SRAM leakage (x built-in)", LSTP, 1.0, True, 1.0,
                  f"CACTI 7's 256 KiB bank at 22 nm (the calibrated SRAM, targets/hardware/memtech.py): the LSTP "
                  f"devices leak {LSTP:.3g}x the LOP devices built in; continuous from LSTP to LOP"),
        Parameter("logic_leakage", "logic leakage (x built-in)", 0.5, 2.0, True, 1.0,
                  "the array's, SFU's and parts' leakage are assumptions (no published figure): half to twice"),
        Parameter("retention", "SRAM retention fraction", 0.03, 0.3, True, 0.1,
                  "Qin et al. (ISQED 2004): over 90 % less leakage at the data-retention voltage; 0.03 to 0.3"),
        Parameter("wakeup", "wake-up energy (x built-in)", 0.25, 4.0, True, 1.0,
                  "450 pJ per bank (the built-in) has no silicon figure for these banks: a quarter to four times"),
        Parameter("rram_point", "RRAM point (0 read energy .. 1 read EDP)", 0.0, 1.0, False, 0.0,
                  "NVMExplorer's RRAM optimised for read energy and for read EDP, interpolated (read "
                  f"x{RRAM_EDP['read_energy_pj']:.2f}, leakage x{RRAM_EDP['leakage_mw']:.2f} at the EDP point)"),
        Parameter("rram_density", "RRAM area (mm² per MB)", RRAM_CELL_MM2_PER_MB, RRAM_MM2_PER_MB, False,
                  RRAM_MM2_PER_MB, "NVMExplorer's best-case cell to Intel 22FFL's measured 10.1 Mb/mm² "
                  "(Jain et al., ISSCC 2019; built in)"),
        Parameter("dram_energy", "DRAM energy per bit (x built-in)", 0.7, 1.5, False, 1.0,
                  "DRAMPower's LPDDR4 currents with the PHY; -30 % to +50 % (Micron's LPDDR4 power calculator "
                  "counts termination and I/O the memspec does not)"),
        Parameter("dram_background", "DRAM background (x built-in)", 0.5, 2.0, True, 1.0,
                  "IDD2P/IDD3N/IDD6 of one die; datasheets' typical to maximum currents differ about 2x"),
        Parameter("clock", "clock (MHz)", 500.0, 1000.0, False, 500.0,
                  "the HLS constraint to twice it (EdgeBERT's silicon operating points were not found)"),
        Parameter("node", "logic energy: 16 nm fit (0) .. 10 nm fit (1)", 0.0, 1.0, False, 0.0,
                  f"Stillmaker & Baas' fits bracketing 12 nm (10 nm: x{NODE_10:.2f} of the 16 nm energy)"),
        Parameter("ldo", "LDO efficiency at 0.6 V", 0.75, 0.95, False, 0.75,
                  "a linear LDO from 0.8 V delivers 0.6/0.8 = 0.75 (built in: the rail draws 0.8/0.6 of its "
                  "power); a switched-capacitor or buck converter ~0.9"),
        Parameter("registers", "register and accumulator energy (x built-in)", 1.0, REGISTERS_UNSCALED, True, 1.0,
                  "Aladdin's 40 nm figures scaled to 12 nm by Stillmaker & Baas' fit (built in) to unscaled "
                  f"({REGISTERS_UNSCALED:.2f}x: register files that do not follow the logic fit)"),
        Parameter("per_wakeup", "inferences per power-up (log10)", 0.0, 4.0, False, 0.0,
                  "one per power-up (the study's workload) to always on (10,000 between power-ups)"),
        Parameter("rate", "requests per second", 0.1, 10.0, True, 10.0,
                  "an assistant's occasional request to the study's 10 per second"),
        Parameter("switch", "task switch rate", 0.0, 1.0, False, 1.0, "one task for long stretches to a switch "
                  "at every request (the study's)"),
        _task_count(counts),
    ]
    if mram:
        out.insert(6, Parameter("mram", "STT-MRAM energy and leakage (x built-in)", 0.5, 2.0, True, 1.0,
                                "NVMExplorer's STT-MRAM points span about 2x either way"))
    return out


@dataclass
class Compiled:
    """One compiled configuration of the study: its counts, prices and chip."""

    family: str
    arch: str
    tasks: int
    counts: dict[str, TaskCounts]
    prices: Prices
    target: Target
    low: Prices | None = None          # prices at the chip's lowest DVFS point, if it has one
    decisions: tuple[str, str] | None = None  # digests of its placement and mapping, and power instructions

    @property
    def area(self) -> tuple[float, float]:
        """(area without RRAM, RRAM area) of the chip, mm^2."""
        rram = sum(m.area_mm2 for m in self.target.on_chip if m.technology == "rram")
        return self.target.area_mm2 - rram, rram


def compiled(rows: list[dict], counted: list[dict]) -> list[Compiled]:
    out = []
    for r, c in zip(rows, counted):
        t = c["target"]
        low = None
        if t.dvfs is not None and len(t.dvfs.points) > 1:
            low = prices_of(at_point(t, t.dvfs.points[-1]))
        out.append(Compiled(r["family"], r["architecture"], r["tasks"], c["counts"], c["prices"], t, low,
                            c.get("decisions")))
    return out


class Priced(Protocol):
    """A compiled configuration as re-pricing reads it: its prices and its chip."""

    prices: Prices
    target: Target


def _tech(t: Target) -> dict[str, str]:
    names = {m.name: m.technology for m in t.memories}
    names.update({b.name: "buffer" for b in t.parts.buffers})
    return names


def sampled_prices(c: Priced, x: dict[str, np.ndarray], base: Prices | None = None) -> Prices:
    """The chip's prices (or `base`, e.g. its DVFS point's) with the sample's factors."""
    p = dict(base if base is not None else c.prices)
    tech = _tech(c.target)
    rp = x["rram_point"]
    node = 1.0 + x["node"] * (NODE_10 - 1.0)
    out: Prices = {}
    for k, v in p.items():
        kind, _, rest = k.partition(":")
        level = rest.split(":")[0]
        t = tech.get(level, "")
        f: Any = 1.0
        if kind == "leak":
            f = x["sram_leakage"] if t == "buffer" else x["logic_leakage"]
        elif kind == "bank":
            f = {"sram": x["sram_leakage"], "rram": 1 + rp * (RRAM_EDP["leakage_mw"] - 1),
                 "mram": x.get("mram", 1.0)}.get(t, 1.0)
        elif kind == "retention" and t == "sram":  # at a DVFS point, the fraction keeps retention's own supply
            out[k] = x["retention"] if base is None else np.minimum(1.0, x["retention"] * v / c.prices[k])
            continue
        elif kind == "wake_pj":
            f = x["wakeup"]
        elif kind in ("read", "write"):
            f = {"rram": 1 + rp * (RRAM_EDP[f"{kind}_energy_pj"] - 1), "dram": x["dram_energy"],
                 "mram": x.get("mram", 1.0)}.get(t, 1.0)
        elif kind == "dram" and k.rsplit(":", 1)[1] in ("active", "power_down", "self_refresh", "refresh"):
            f = x["dram_background"]
        elif kind in ("mac", "sfu", "noc"):
            f = node
        elif kind in ("reg", "acc"):
            f = node * x["registers"]
        out[k] = v * f
    for k in [k for k in out if k.endswith(":sr_after_ns")]:  # the self-refresh break-even, as dram.py derives it
        n = k[len("dram:"):-len(":sr_after_ns")]
        saved = out[f"dram:{n}:power_down"] + out[f"dram:{n}:refresh"] - out[f"dram:{n}:self_refresh"]
        out[k] = out[f"dram:{n}:exit_pj"] / np.maximum(saved, 1e-12)
    return out


def _stream(c: Compiled, x: dict[str, np.ndarray], scale=1.0) -> StreamSpec:
    return StreamSpec(x["rate"], 10.0 ** x["per_wakeup"], x["switch"], c.target.clock_mhz / x["clock"] * scale)


def energy(c: Compiled, x: dict[str, np.ndarray]) -> np.ndarray:
    """Energy per inference (pJ) of the configuration's stream for the samples `x`."""
    return np.asarray(expected_stream(c.counts, sampled_prices(c, x), _stream(c, x)))


def ldo_factor(c: Compiled, x: dict[str, np.ndarray]):
    """What the sampled LDO efficiency makes of the rail's prices at the chip's lowest point: the target's
    regulator draws `drawn_factor` x what the rail uses (its prices at that point hold it), an LDO of efficiency
    `ldo` 1 / ldo x (an ideal regulator: no loss, whatever the sample)."""
    dv = c.target.dvfs
    if dv.regulator != "ldo":
        return 1.0
    return 1.0 / (dv.drawn_factor(dv.points[-1].voltage_v) * x["ldo"])


def dvfs_energy(c: Compiled, x: dict[str, np.ndarray]) -> np.ndarray:
    """Energy per inference with every inference at the chip's lowest DVFS point (`targets.hardware.spec.at_point`:
    the rail's energies and leakage scaled to its supply, through its regulator), the regulator's loss that of an
    LDO of efficiency `ldo` (`ldo_factor`, on the prices the point changes: the rail's), the clock slowed as the
    point says. A rail memory's retention fraction is divided by the same factor: retention has its own supply.
    The counts are the top point's: at the lowest point the simulator's cycles differ a little (a memory off the
    rail gives more bytes per slower cycle; on the tiny adapter-ALBERT on edge_accel, 0.6 % fewer cycles, and
    these counts price the inference 0.4 % above the simulator's at that point), which this leaves out."""
    dv = c.target.dvfs
    slow = dv.top.frequency_mhz / dv.points[-1].frequency_mhz
    return np.asarray(expected_stream(c.counts, dvfs_prices(c, x), _stream(c, x, slow)))


def dvfs_prices(c: Compiled, x: dict[str, np.ndarray]) -> Prices:
    """The chip's prices at its lowest DVFS point with the sample's factors and LDO efficiency (`dvfs_energy`)."""
    p = sampled_prices(c, x, c.low)
    f = ldo_factor(c, x)
    for k in p:
        kind = k.partition(":")[0]
        if kind == "retention":
            if c.low[k] != c.prices[k]:
                p[k] = np.minimum(1.0, p[k] / f)
        elif kind != "off" and c.low[k] != c.prices[k]:
            p[k] = p[k] * f
    return p


# -- the sample and what holds -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """Every sample's inputs and conclusions."""

    params: list[Parameter]
    x: dict[str, np.ndarray]
    energy: dict[tuple[str, str], np.ndarray]       # (family, arch) -> pJ per sample
    area: dict[tuple[str, str], np.ndarray]         # (family, arch) -> mm^2 per sample
    dvfs_saving: np.ndarray
    archs: list[str]
    builtin: dict[str, float] = field(default_factory=dict)


def _task_count(counts: list[int]) -> Parameter:
    """The task count: one the study compiled, each equally likely (a sample of another has no configuration)."""
    contiguous = counts == list(range(counts[0], counts[-1] + 1))
    listed = f"{counts[0]} to {counts[-1]}" if contiguous else ", ".join(map(str, counts))
    return Parameter("tasks", "task count", float(counts[0]), counts[-1] + 1.0, False, float(counts[-1]),
                     f"the study's task counts, {listed}, each equally likely", discrete=True,
                     levels=() if contiguous else tuple(map(float, counts)))


def inputs(params: list[Parameter], u: np.ndarray) -> dict[str, np.ndarray]:
    x = {p.name: p.value(u[:, i]) for i, p in enumerate(params)}
    for p in params:
        if p.discrete and not p.levels:
            x[p.name] = np.floor(x[p.name]).clip(p.low, p.high - 1)
    return x


def builtin_inputs(params: list[Parameter], **given: float) -> dict[str, np.ndarray]:
    """One sample: the built-in value of every input but those `given`."""
    return {p.name: np.array([given.get(p.name, p.builtin)]) for p in params}


def evaluate_samples(configs: list[Compiled], params: list[Parameter], x: dict[str, np.ndarray]) -> Outcome:
    """Every configuration's energy and area, and the DVFS saving, for the samples `x` (name -> values)."""
    archs = list(dict.fromkeys(c.arch for c in configs))
    n = len(x["tasks"])
    energies = {(c.family, c.arch): np.full(n, np.nan) for c in configs}
    area = {(c.family, c.arch): np.full(n, np.nan) for c in configs}
    saving = np.full(n, np.nan)
    for c in configs:
        sel = x["tasks"] == c.tasks
        if not sel.any():
            continue
        xs = {k: v[sel] for k, v in x.items()}
        e = np.broadcast_to(energy(c, xs), (int(sel.sum()),))
        energies[c.family, c.arch][sel] = e
        rest, rram = c.area  # RRAM's area scaled by the sampled density over NVMExplorer's (built in)
        area[c.family, c.arch][sel] = rest + rram * xs["rram_density"] / RRAM_MM2_PER_MB
        if c.family == "adapter-albert" and c.arch == DVFS_CHIP and c.low is not None:
            saving[sel] = 1.0 - dvfs_energy(c, xs) / e
    return Outcome(params, x, energies, area, saving, archs)


DVFS_CHIP = "edge_accel"
PAPER = ("rram_sram", "sram")   # adapter-ALBERT's chip, ALBERT's chip in the paper's comparison
PAPER_LABEL = "the paper's: adapter-ALBERT on sized RRAM + SRAM, ALBERT on sized all-SRAM"



def best(o: Outcome, family: str, exclude: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the family's lowest energy and the index (into `o.archs`) of its chip (none of `exclude`)."""
    stack = np.stack([o.energy.get((family, a), np.full(len(o.dvfs_saving), np.inf)) if a not in exclude
                      else np.full(len(o.dvfs_saving), np.inf) for a in o.archs])
    stack = np.where(np.isnan(stack), np.inf, stack)
    i = stack.argmin(axis=0)
    return stack[i, np.arange(stack.shape[1])], i


def ratios(o: Outcome) -> dict[str, np.ndarray]:
    """adapter-ALBERT / ALBERT energy per sample, per baseline: each chip, the paper's, each on its best."""
    out = {}
    for a in o.archs:
        if ("adapter-albert", a) in o.energy and ("albert", a) in o.energy:
            out[f"same chip: {arch_label(a)}"] = o.energy["adapter-albert", a] / o.energy["albert", a]
    if ("adapter-albert", PAPER[0]) in o.energy and ("albert", PAPER[1]) in o.energy:
        out[PAPER_LABEL] = o.energy["adapter-albert", PAPER[0]] / o.energy["albert", PAPER[1]]
    out["each on its lowest-energy chip"] = best(o, "adapter-albert")[0] / best(o, "albert")[0]
    return out


@dataclass(frozen=True)
class Conclusion:
    claim: str
    holds: float              # fraction of the joint distribution in which it holds, outside the noise band
    low: float                # 5th and 95th percentiles of its quantity (NaN for a categorical one)
    median: float
    high: float
    output: str | None        # the name of its quantity in the Sobol analysis (None: not analysed)
    within: float = 0.0       # fraction in which its quantity lies inside the noise band: neither holds nor fails


def _spread(claim: str, holds: np.ndarray, q: np.ndarray, output: str,
            near: np.ndarray | None = None) -> Conclusion:
    """A conclusion on a continuous quantity: where it holds (a boolean per sample), the quantity's samples and
    where they lie inside the noise band (`near`: there it neither holds nor fails)."""
    low, median, high = (float(v) for v in np.percentile(q, [5, 50, 95]))
    near = np.zeros(q.shape, bool) if near is None else near
    return Conclusion(claim, float(np.mean(holds & ~near)), low, median, high, output, float(np.mean(near)))


def in_band(ratio: np.ndarray, margin: float) -> np.ndarray:
    """Where an energy ratio is within the noise band of 1: between 1 / (1 + margin) and 1 + margin."""
    return (ratio >= 1 / (1 + margin)) & (ratio <= 1 + margin) if margin > 0 else np.zeros(ratio.shape, bool)


def conclusions(o: Outcome, margin: float = 0.0) -> list[Conclusion]:
    """Each conclusion with where it holds. `margin` is the study's noise band (relative energy): an energy
    ratio that close to 1, or a DVFS saving that close to 0, is a difference the layout alone makes, so it
    counts as neither holding nor failing."""
    out = []
    for name, r in ratios(o).items():
        out.append(_spread(f"adapter-ALBERT needs less energy than ALBERT, baseline {name}", r < 1, r,
                           f"ratio, {name}", in_band(r, margin)))
    for family, name in (("adapter-albert", "adapter-ALBERT"), ("albert", "ALBERT")):
        _, i = best(o, family)
        counts = np.bincount(i, minlength=len(o.archs)) / len(i)
        for k in np.argsort(-counts, kind="stable"):
            if counts[k] > 0:
                out.append(Conclusion(f"{name}'s lowest-energy chip is {arch_label(o.archs[k])}", float(counts[k]),
                                      math.nan, math.nan, math.nan, None))
    for family, name in (("adapter-albert", "adapter-ALBERT"), ("albert", "ALBERT")):
        a, b = o.area.get((family, "rram_sram")), o.area.get((family, "sram"))
        if a is not None and b is not None and np.any(a != b):  # ALBERT shares nothing: its two are one chip
            r = a / b
            out.append(_spread(f"RRAM saves area: {name}'s sized RRAM + SRAM chip is smaller than its all-SRAM chip",
                               r < 1, r, f"area ratio, {name}"))
    if not np.isnan(o.dvfs_saving).all():
        s = o.dvfs_saving
        out.append(_spread(f"DVFS saves energy: adapter-ALBERT on {DVFS_CHIP}, the chip running and idling at its "
                           "lowest operating point, against its top one", s > 0, s, "DVFS saving",
                           np.abs(s) <= margin if margin > 0 else None))
    return out


def outputs(o: Outcome) -> dict[str, np.ndarray]:
    """The continuous quantities the Sobol analysis explains (ratios in their logarithm)."""
    out = {f"ratio, {k}": np.log(v) for k, v in ratios(o).items()}
    for family, name in (("adapter-albert", "adapter-ALBERT"), ("albert", "ALBERT")):
        a, b = o.area.get((family, "rram_sram")), o.area.get((family, "sram"))
        if a is not None and b is not None and np.any(a != b):
            out[f"area ratio, {name}"] = np.log(a / b)
    if not np.isnan(o.dvfs_saving).all():
        out["DVFS saving"] = o.dvfs_saving
    return out


@dataclass(frozen=True)
class Indices:
    output: str
    names: list[str]
    s1: np.ndarray
    s1_conf: np.ndarray
    st: np.ndarray
    st_conf: np.ndarray
    s2: list[tuple[str, str, float, float]]     # the strongest two-way interactions, with their intervals


def problem(params: list[Parameter]) -> dict:
    return {"num_vars": len(params), "names": [p.name for p in params], "bounds": [[0.0, 1.0]] * len(params)}


def sample(params: list[Parameter], base: int = BASE_N, seed: int = SEED) -> np.ndarray:
    from SALib.sample import sobol

    return sobol.sample(problem(params), base, calc_second_order=True, scramble=True, seed=seed)


def analyse(params: list[Parameter], y: np.ndarray, output: str, seed: int = SEED, top: int = 3) -> Indices:
    from SALib.analyze import sobol

    si = sobol.analyze(problem(params), y, calc_second_order=True, conf_level=0.95, print_to_console=False,
                       seed=seed)
    names = [p.name for p in params]
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            pairs.append((names[i], names[j], float(si["S2"][i, j]), float(si["S2_conf"][i, j])))
    pairs.sort(key=lambda t: -t[2])
    return Indices(output, names, si["S1"], si["S1_conf"], si["ST"], si["ST_conf"], pairs[:top])


def params_for(configs: list[Compiled]) -> list[Parameter]:
    mram = any(m.technology == "mram" for c in configs for m in c.target.memories)
    return parameters([c.tasks for c in configs], mram)


def builtin_quantities(configs: list[Compiled], params: list[Parameter]) -> dict[str, float]:
    """Each conclusion's quantity at the built-in values (the study's most tasks): ratios, not logarithms."""
    o = evaluate_samples(configs, params, builtin_inputs(params))
    out = {f"ratio, {k}": float(v[0]) for k, v in ratios(o).items()}
    for family, name in (("adapter-albert", "adapter-ALBERT"), ("albert", "ALBERT")):
        a, b = o.area.get((family, "rram_sram")), o.area.get((family, "sram"))
        if a is not None and b is not None:
            out[f"area ratio, {name}"] = float(a[0] / b[0])
    if not np.isnan(o.dvfs_saving).all():
        out["DVFS saving"] = float(o.dvfs_saving[0])
    return out


def run(configs: list[Compiled], base: int = BASE_N, seed: int = SEED) -> tuple[Outcome, list[Indices]]:
    """Sample, evaluate, conclude and analyse."""
    params = params_for(configs)
    u = sample(params, base, seed)
    o = evaluate_samples(configs, params, inputs(params, u))
    found = []
    for name, y in outputs(o).items():
        if np.isfinite(y).all() and np.std(y) > 0:
            found.append(analyse(params, y, name, seed))
    return o, found
