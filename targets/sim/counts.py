"""Counts: what one inference does, apart from what each action costs (Timeloop's and Accelergy's split).

A compile's simulation gives, per task, action counts and state residencies:

- dynamic (`Dynamic.actions`): MACs per number format (zero-gated), PE register accesses (operand and
  partial sum), accumulator accesses, SFU element-scans, bytes read and written per memory level and buffer,
  bytes over the interconnect;
- static (`Static`): the time the chip is powered (logic leakage); per on-chip level, bank-ns on, in the
  hold state and off, and for every bank gated between accesses its busy time, first access and the idle
  gaps between accesses (so that the gating decision, a gap longer than the wake-up latency plus the
  break-even time, is taken again at any price); banks idling between inferences by state, and the banks a
  power-up wakes; per DRAM that is needed, ns active and the idle gaps (the self-refresh decision again);
- per task, what a request brings on chip after a power-up or at a switch (bytes per level, cycles).

`price(counts, prices)` gives the energies `SimResult.energy` holds (the same keys), for any price table
(`targets.sim.prices`); `priced_result` the `SimResult` the request stream (`requests.run_stream`) takes,
so a stream is re-simulated from counts without a pass or a lowering. `expected_stream` is the stream's
energy per inference in closed form for round-robin requests (the sensitivity's many samples).

The bank and DRAM state rules are those of `targets.sim.power` (`static_energy`, `_gated_on_time`,
`dram.background`); `tests/test_counts.py` checks that counts x prices equal the simulator's energies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aalbert.targets.hardware.dram import DramPower, merge
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim import power
from aalbert.targets.sim.power import Accesses, Region, dram_needed
from aalbert.targets.sim.prices import Prices


@dataclass
class Gated:
    """Banks of one level gated between their accesses: total busy ns, each bank's first access, and the idle
    gaps between accesses (unique values and how often each occurs), over `banks` banks."""

    banks: int
    busy: float
    firsts: np.ndarray
    gaps: np.ndarray
    weights: np.ndarray

    def on_and_wakes(self, keep, wake_ns) -> tuple[np.ndarray, np.ndarray]:
        """Bank-ns on and wake-ups, for gaps longer than `keep` gated (`keep`, `wake_ns`: scalars or arrays)."""
        keep, wake_ns = np.asarray(keep, dtype=float), np.asarray(wake_ns, dtype=float)
        cum = np.concatenate([[0.0], np.cumsum(self.gaps * self.weights)])
        cnt = np.concatenate([[0.0], np.cumsum(self.weights)])
        i = np.searchsorted(self.gaps, keep, side="right")
        gated = cnt[-1] - cnt[i]
        first = np.minimum.outer(wake_ns, self.firsts).sum(axis=-1) if len(self.firsts) else 0.0
        return self.busy + cum[i] + wake_ns * gated + first, gated + self.banks


@dataclass
class LevelState:
    """One on-chip level over one inference (bank-ns by class) and between inferences (banks by state)."""

    on_ns: float = 0.0
    hold_ns: float = 0.0
    off_ns: float = 0.0
    hold_state: str = "on"                 # the state held banks and gated banks' gaps are in
    gated: Gated | None = None
    idle: tuple[int, int, int] = (0, 0, 0)  # banks on, holding, off while the chip idles powered
    power_up_wakes: int = 0
    gating: str = "none"


@dataclass
class DramState:
    """A needed DRAM over one inference: ns active, the self-refresh before the first transfer, the gaps between
    transfers and after the last one (the decision between power-down and self-refresh is taken at pricing)."""

    active: float
    first_sr: float
    inner: np.ndarray
    last: float
    transfers: int


@dataclass
class Static:
    span_ns: float
    levels: dict[str, LevelState]
    drams: dict[str, DramState]


@dataclass
class TaskCounts:
    """One task's inference: its dynamic actions, static residencies warm and cold, cycles and copies."""

    task: str
    cycles: float
    clock_mhz: float
    actions: dict[str, float]            # price name -> count (see `targets.sim.prices`)
    touched: tuple[str, ...]             # the dynamic keys the simulator charges even at zero
    warm: Static
    cold: Static
    offchip_bytes: float                 # DRAM bytes per inference (read and written)
    copies: dict[str, dict[str, int]] = field(default_factory=dict)  # "cold", "cold_switch", "switch" -> level bytes
    copy_cycles: dict[str, float] = field(default_factory=dict)
    store: str | None = None             # the off-chip level copies come from


def dynamic_counts(program, target: Target) -> tuple[dict[str, float], tuple[str, ...]]:
    """Action counts of a program (the quantities `timing.dynamic_energy` multiplies by prices)."""
    a: dict[str, float] = {}
    touched: dict[str, None] = {}
    regs = target.parts.registers
    memories = target.memory_names

    def add(k: str, v: float) -> None:
        a[k] = a.get(k, 0.0) + v

    for ins in program.instrs:
        gated = ins.density if target.compute.zero_skipping != "none" else 1.0
        if ins.kind == "gemm":
            add(f"mac:{ins.fmt}", ins.macs * gated)
            touched["pe"] = None
            add("reg:operand", ins.macs * gated * regs.operand_accesses_per_mac + ins.regfill)
            add("reg:psum", ins.macs * gated * regs.psum_accesses_per_mac)
            if ins.acc:
                add("acc", ins.acc)
                touched["acc"] = None
        elif ins.kind == "vec":
            add("sfu", ins.elements * ins.scans)
            touched["sfu"] = None
        moved = 0.0
        for lvl, rd, wr in ins.traffic:
            add(f"read:{lvl}", rd)
            add(f"write:{lvl}", wr)
            touched[lvl] = None
            if lvl in memories:
                moved += rd + wr
        add("noc", ins.nbytes * ins.hops if ins.nbytes else moved)
    return a, tuple(touched)


def static_counts(acc: Accesses, image: list[Region] | None, target: Target, span_ns: float, task: str,
                  cold: bool) -> Static:
    """Residencies of one inference, by the rules of `power.static_energy`."""
    levels: dict[str, LevelState] = {}
    for m in target.memories:
        if m.dram is not None:
            continue
        p = m.power
        held = [r for r in image if r.level == m.name and power._present(r, task, cold, m)] \
            if image is not None else None
        f_hold = (p.retention if p.retention is not None else p.off) if m.power_gating == "idle" else 1.0
        hold_state = "on" if f_hold == 1.0 else ("retention" if p.retention is not None else "off")
        s = LevelState(hold_state=hold_state, gating=m.power_gating)
        idle = [0, 0, 0]
        busy_total, firsts, gaps, gated_banks = 0.0, [], [], 0
        for k in range(m.banks):
            lo, hi = k * m.bank_bytes, (k + 1) * m.bank_bytes
            busy = acc.busy(m.name, lo, hi)
            has_data = len(busy) > 0 if held is None else (len(busy) > 0 or any(r.lo < hi and r.hi > lo for r in held))
            if m.power_gating == "none":
                s.on_ns += span_ns
                idle[0] += 1
                s.power_up_wakes += cold
            elif not has_data:
                s.off_ns += span_ns
                idle[2] += 1
            elif m.power_gating == "empty" or not len(busy):
                if m.power_gating == "empty" or hold_state == "on":
                    s.on_ns += span_ns
                    idle[0] += 1
                    s.power_up_wakes += cold
                else:
                    s.hold_ns += span_ns
                    idle[1] += 1
                    s.power_up_wakes += cold and m.volatile
            else:
                gated_banks += 1
                busy_total += float((busy[:, 1] - busy[:, 0]).sum())
                firsts.append(float(busy[0, 0]))
                gaps.append(busy[1:, 0] - busy[:-1, 1])
                idle[1] += 1
                s.power_up_wakes += cold and m.volatile
        if gated_banks:
            values, weights = np.unique(np.concatenate(gaps), return_counts=True)
            s.gated = Gated(gated_banks, busy_total, np.array(firsts), values, weights.astype(float))
        s.idle = (idle[0], idle[1], idle[2])
        levels[m.name] = s
    drams: dict[str, DramState] = {}
    for m in target.memories:
        if m.dram is None or not dram_needed(image, target, m):
            continue
        spans = [(max(0.0, a), min(span_ns, b)) for a, b in merge([tuple(x) for x in acc.busy(m.name)])
                 if b > 0 and a < span_ns]
        if not spans:
            drams[m.name] = DramState(0.0, span_ns, np.zeros(0), 0.0, 0)
            continue
        arr = np.array(spans)
        drams[m.name] = DramState(float((arr[:, 1] - arr[:, 0]).sum()), float(arr[0, 0]),
                                  arr[1:, 0] - arr[:-1, 1], float(span_ns - arr[-1, 1]), len(arr))
    return Static(span_ns, levels, drams)


def task_counts(program, sim, image: list[Region] | None, target: Target, module=None) -> TaskCounts:
    """The counts of `sim` (a `SimResult` of `program`, or of a task with the same program), warm and cold; with
    `module`, also what a request copies on chip (as `requests.run_stream` does)."""
    actions, touched = dynamic_counts(program, target)
    span = sim.cycles * 1000.0 / target.clock_mhz
    warm = static_counts(sim.accesses, image, target, span, sim.task, cold=False)
    cold = static_counts(sim.accesses, image, target, span, sim.task, cold=True)
    off = sum(rw[0] + rw[1] for lvl, rw in sim.traffic.items()
              if lvl in target.memory_names and target.level(lvl).off_chip)
    out = TaskCounts(sim.task, sim.cycles, target.clock_mhz, actions, touched, warm, cold, off)
    if module is not None:
        from aalbert.targets.sim.requests import _Charges

        charges = _Charges(module, target)
        out.store = charges.store.name if charges.store is not None else None
        for case, (c, s) in {"cold": (True, False), "cold_switch": (True, True), "switch": (False, True)}.items():
            out.copies[case] = charges.needed(sim.task, c, s)
            out.copy_cycles[case] = charges.load(out.copies[case])
    return out


def backend_counts(backend) -> dict[str, TaskCounts]:
    """Every task's counts from a `mapper.backend.Backend` (tasks simulated as another use its program)."""
    from aalbert.targets.sim.power import memory_image

    image = memory_image(backend.module, backend.target)
    out = {}
    for t, sim in backend.results.items():
        program = backend.program(backend.same_as.get(t, t))
        out[t] = task_counts(program, sim, image, backend.target, backend.module)
    return out


# -- pricing ------------------------------------------------------------------------------------------------
# Every price may be a number or an array of samples (the sensitivity prices many tables at once); counts are
# numbers. Keys follow the simulator's: a key whose energy is zero in every sample is left out where it does.
def _nz(x) -> bool:
    return bool(np.any(x))


def _out(x):
    """A number stays a number; an array of samples stays an array."""
    return float(x) if np.ndim(x) == 0 else x


def price_dynamic(c: TaskCounts, p: Prices) -> dict[str, float]:
    e: dict[str, float] = {}
    for k, n in c.actions.items():
        kind, _, name = k.partition(":")
        key = "pe" if kind == "mac" else "pe_regs" if kind == "reg" else name if kind in ("read", "write") else kind
        e[key] = e.get(key, 0.0) + n * p[k]
    return {k: v for k, v in e.items() if k in c.touched or _nz(v)}


def _level_energy(name: str, s: LevelState, span: float, p: Prices, e: dict[str, float]) -> None:
    leak = p[f"bank:{name}"]
    frac = {"on": 1.0, "retention": p.get(f"retention:{name}", 0.0), "off": p[f"off:{name}"]}
    times: dict[str, Any] = {"on": s.on_ns, "retention": 0.0, "off": s.off_ns}
    times[s.hold_state] += s.hold_ns
    wakes: Any = 0.0
    if s.gated is not None:
        saved = leak * (1 - frac[s.hold_state])
        wake_ns, wake_pj = p[f"wake_ns:{name}"], p[f"wake_pj:{name}"]
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = wake_ns + np.where(np.asarray(saved) > 0, wake_pj / np.maximum(saved, 1e-300), np.inf)
        on, wakes = s.gated.on_and_wakes(keep, wake_ns)
        times["on"] = times["on"] + on
        times[s.hold_state] = times[s.hold_state] + s.gated.banks * span - on
    for state, t in times.items():
        if _nz(t):
            e[f"leakage:{name}:{state}"] = _out(leak * frac[state] * t)
    if _nz(wakes):
        e[f"wakeup:{name}"] = _out(wakes * p[f"wake_pj:{name}"])


def _dram_energy(name: str, d: DramState, p: Prices, e: dict[str, float]) -> None:
    after = np.asarray(p[f"dram:{name}:sr_after_ns"], dtype=float)[..., None]
    gaps = np.append(d.inner, d.last) if d.transfers else np.zeros(0)
    sr = d.first_sr + (gaps * (gaps > after)).sum(axis=-1)
    down = gaps.sum() - (sr - d.first_sr)
    exits = (1 + (d.inner > after).sum(axis=-1)) if d.transfers else 0.0 * sr
    energy = {"active": d.active * p[f"dram:{name}:active"], "power_down": down * p[f"dram:{name}:power_down"],
              "self_refresh": sr * p[f"dram:{name}:self_refresh"],
              "refresh": (d.active + down) * p[f"dram:{name}:refresh"],
              "self_refresh_exit": exits * p[f"dram:{name}:exit_pj"]}
    for state, pj in energy.items():
        if _nz(pj):
            e[f"background:{name}:{state}"] = _out(pj)


def logic_mw(p: Prices):
    return sum(v for k, v in p.items() if k.startswith("leak:"))


def price_static(s: Static, p: Prices) -> dict[str, float]:
    """Static energy (pJ, `power.static_energy`'s keys) of residencies `s` at prices `p`."""
    e = {"leakage:pe": p["leak:pe"] * s.span_ns, "leakage:sfu": p["leak:sfu"] * s.span_ns}
    for k, mw in p.items():
        if k.startswith("leak:") and k not in ("leak:pe", "leak:sfu") and _nz(mw):
            e[f"leakage:{k[5:]}"] = mw * s.span_ns
    for name, lvl in s.levels.items():
        _level_energy(name, lvl, s.span_ns, p, e)
    for name, d in s.drams.items():
        _dram_energy(name, d, p, e)
    return e


def idle_mw(s: Static, p: Prices):
    """The powered chip's leakage between inferences: logic, and every bank in its idle state."""
    mw = logic_mw(p)
    for name, lvl in s.levels.items():
        leak = p[f"bank:{name}"]
        f_hold = 1.0 if lvl.gating != "idle" else p.get(f"retention:{name}", p[f"off:{name}"])
        on, hold, off = lvl.idle
        mw = mw + leak * (on + hold * f_hold + off * p[f"off:{name}"])
    return mw


def power_up_pj(s: Static, p: Prices):
    return sum(lvl.power_up_wakes * p[f"wake_pj:{name}"] for name, lvl in s.levels.items())


def dram_power(s: Static, p: Prices) -> dict[str, DramPower]:
    return {n: DramPower(p[f"dram:{n}:active"], p[f"dram:{n}:power_down"], p[f"dram:{n}:self_refresh"],
                         p[f"dram:{n}:refresh"], p[f"dram:{n}:sr_after_ns"], p[f"dram:{n}:exit_pj"], 0.0, "priced")
            for n in s.drams}


def price(c: TaskCounts, p: Prices, cold: bool) -> dict[str, float]:
    """`SimResult.energy` of the task at prices `p`, charged as after a power-up when `cold`."""
    return {**price_dynamic(c, p), **price_static(c.cold if cold else c.warm, p)}


def priced_result(c: TaskCounts, p: Prices, cold: bool):
    """The `SimResult` of the task at prices `p` (what `requests.run_stream` reads), built from counts alone."""
    from aalbert.targets.sim import timing

    def static(s: Static):
        return timing.Static(price_static(s, p), {}, idle_mw(s, p), dram_power(s, p), power_up_pj(s, p))

    warm, after = static(c.warm), static(c.cold)
    traffic = {c.store: [c.offchip_bytes, 0.0]} if c.store and c.offchip_bytes else {}
    energy = {**price_dynamic(c, p), **(after if cold else warm).energy}
    return timing.SimResult("priced", c.task, [], [], c.cycles, c.clock_mhz, energy, traffic=traffic, warm=warm,
                            cold=after, after_power_up=cold)


# -- the request stream in closed form ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamSpec:
    """A round-robin stream: requests per second, inferences per power-up (inf: always on), switch rate, and how
    much longer than compiled every cycle is (a slower clock: > 1). Each may be an array of samples."""

    rate_hz: Any = 10.0
    per_wakeup: Any = 1.0
    switch_rate: Any = 1.0
    time_scale: Any = 1.0


TIME_PRICES = ("leak:", "bank:", "dram:")


def timed(p: Prices, scale) -> Prices:
    """Prices for residencies counted at one clock charged at a clock `scale` times slower: every mW x scale,
    every threshold in ns / scale (energy per action unchanged)."""
    out = {}
    for k, v in p.items():
        if k.startswith("wake_ns:") or k.endswith(":sr_after_ns"):
            out[k] = v / scale
        elif k.startswith(TIME_PRICES) and not k.endswith(":exit_pj"):
            out[k] = v * scale
        else:
            out[k] = v
    return out


def expected_stream(counts: dict[str, TaskCounts], p: Prices, s: StreamSpec):
    """Energy per inference (pJ) of a long round-robin stream over the tasks: one request in `per_wakeup`
    after a power-up, the others on a powered chip; a task switch at `switch_rate` of them; each request
    pays the idle gap its predecessor leaves (as `requests.run_stream` charges them)."""
    tasks = list(counts)
    n = len(tasks)
    f_cold = 1.0 / np.maximum(1.0, s.per_wakeup)
    switch = s.switch_rate if n > 1 else 0.0
    period_ns = 1e9 / np.asarray(s.rate_hz, dtype=float)
    pt = timed(p, s.time_scale) if np.any(np.asarray(s.time_scale) != 1.0) else p
    cold_case = "cold_switch" if n > 1 else "cold"
    service = {}
    for t, c in counts.items():
        copy = f_cold * c.copy_cycles.get(cold_case, 0.0) + (1 - f_cold) * switch * c.copy_cycles.get("switch", 0.0)
        service[t] = (c.cycles + copy) * 1000.0 / c.clock_mhz * s.time_scale
    total = 0.0
    for i, t in enumerate(tasks):
        c = counts[t]
        gap = np.maximum(0.0, period_ns - service[tasks[i - 1]])
        dyn = sum(price_dynamic(c, p).values())
        for cold, case, weight in ((True, cold_case, f_cold), (False, "switch", (1 - f_cold) * switch),
                                   (False, None, (1 - f_cold) * (1 - switch))):
            if not _nz(weight):
                continue
            st = c.cold if cold else c.warm
            e = dyn + sum(price_static(st, pt).values())
            mw, mwt = idle_mw(st, p), idle_mw(st, pt)
            drams, dramst = dram_power(st, p), dram_power(st, pt)
            if case is not None and c.copies.get(case):
                load_ns = c.copy_cycles[case] * 1000.0 / c.clock_mhz
                e = e + mwt * load_ns + sum((d.active_mw + d.refresh_mw) * load_ns for d in dramst.values())
                if c.store is not None:
                    e = e + sum(c.copies[case].values()) * p[f"read:{c.store}"]
                e = e + sum(b * p[f"write:{lvl}"] for lvl, b in c.copies[case].items())
            if cold:
                e = e + power_up_pj(st, p)
            else:
                e = e + mw * gap
            for d in drams.values():
                sr = np.logical_or(cold, gap > d.self_refresh_after_ns)
                e = e + np.where(sr, d.self_refresh_mw * gap, (d.power_down_mw + d.refresh_mw) * gap)
            total = total + weight * e
    return _out(total / n)


def scaled(p: Prices, factors: dict[str, float]) -> Prices:
    """`p` with each price whose name starts with a key of `factors` multiplied by it (fractions kept <= 1)."""
    out = dict(p)
    for k in out:
        for prefix, f in factors.items():
            if k.startswith(prefix):
                out[k] *= f
        if k.startswith(("retention:", "off:")):
            out[k] = min(1.0, out[k])
    return out
