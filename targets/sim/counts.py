"""Counts: what one inference does, apart from what each action costs (Timeloop's and Accelergy's split).

A compile's simulation gives, per task, action counts and state residencies:

- dynamic (`TaskCounts.actions`): MACs per number format (zero-gated), PE register accesses (operand and
  partial sum), accumulator accesses, SFU element-scans, bytes read and written per memory level and buffer,
  bytes over the interconnect;
- static (`Static`): the time the chip is powered (logic leakage); per on-chip level, bank-ns on, in
  retention and off and the banks' wake-ups, as the program's power instructions set them
  (`power.static_energy` records them), the banks idling between inferences by state and the banks a
  power-up wakes; per DRAM that is needed, its transfers (each one's span and the bytes it moves) and the
  idle gaps before, between and after them;
- per task, what a request brings on chip after a power-up or at a switch (bytes per level, cycles).

`price(counts, prices)` gives the energies `SimResult.energy` holds (the same keys), for any price table
(`targets.sim.prices`); `priced_result` the `SimResult` the request stream (`requests.run_stream`) takes,
so a stream is re-simulated from counts without a pass or a lowering. `expected_stream` is the stream's
energy per inference in closed form for round-robin requests (the sensitivity's many samples).

Which decisions re-pricing takes again and which it holds fixed:

- held fixed: when each bank is woken and gated. The compiler writes it into the program as power
  instructions (`targets.sim.gating`, planned by `power.plan_bank` from the break-even time at the compile's
  prices), and a wake-up that cannot be hidden stalls the accesses waiting for it, so another plan is another
  schedule: the counts keep the residencies the compiled instructions give. A price that would move a gap
  across the break-even time leaves the compiled plan in place (a feasible plan: the energy of the compiled
  program at the new prices, not of a recompile's); `tests/test_counts.py` compares with a recompile only
  where the recompile's power instructions, placement and mapping are the compile's. Wake-up latency is
  timing, not a price, for the same reason;
- taken again: whether each idle gap of a DRAM goes to self-refresh or power-down (the counts keep the gaps;
  a gap longer than the price table's `sr_after_ns` enters self-refresh, as `dram.background` decides), and
  the self-refresh exits that follow;
- derived from the transfers, not from prices: the DRAM's time in active standby within each transfer (its
  bytes at the peak rate a row at a time, `dram.DramPower.active_ns`, repeated here on arrays so that a
  slower clock stretches the transfers and not the bursts).

Prices at a DVFS point (`prices.prices_of(spec.at_point(...))`) hold the regulator's drawn factor and each
memory's supply as the simulator charges them; the counts are the compiled point's, so pricing them at
another point (with `scale`, the clock's stretch) keeps the compiled schedule in cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aalbert.targets.hardware.dram import DramPower, transfers
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim import power
from aalbert.targets.sim.power import Accesses, Region, dram_needed, hold_state
from aalbert.targets.sim.prices import Prices

STATES = ("on", "retention", "off")


@dataclass
class LevelState:
    """One on-chip level over one inference: bank-ns by state and wake-ups (as its power instructions set them),
    and between inferences: banks on, holding and off, and the banks a power-up wakes."""

    time: dict[str, float]
    wakes: int
    idle: tuple[int, int, int]
    power_up_wakes: int
    gating: str
    hold: str                          # the state a held bank idles in: retention (SRAM) or off


@dataclass
class DramState:
    """A needed DRAM over one inference: its transfers (span in ns, bytes moved; `nbytes` None: in active
    standby all along), whether each moves data for some time (a zero-length one exits no self-refresh), the
    idle gaps before each transfer and after the last (the first spent in self-refresh: the DRAM starts
    asleep), and the timing of its bursts (`DramPower`: peak bytes/ns, bytes read back to back, tCKE, tXP)."""

    lengths: np.ndarray
    nbytes: np.ndarray | None
    real: np.ndarray
    gaps: np.ndarray
    bytes_per_ns: float
    chunk_bytes: int
    power_down_min_ns: float
    power_down_exit_ns: float

    def active(self, scale=1.0) -> tuple[Any, Any]:
        """Active-standby ns and power-down ns within the transfers, with every transfer `scale` times longer
        (a number or an array of samples), as `DramPower.active_ns` charges each."""
        length = self.lengths * np.asarray(scale, dtype=float)[..., None]
        if self.nbytes is None or self.chunk_bytes <= 0 or not np.isfinite(self.bytes_per_ns):
            on = length
        else:
            moving = self.nbytes / self.bytes_per_ns
            chunks = np.maximum(1.0, np.ceil(self.nbytes / self.chunk_bytes))
            with np.errstate(divide="ignore", invalid="ignore"):
                gap = (length - moving) / chunks
            stay = (moving >= length) | (gap < self.power_down_min_ns + self.power_down_exit_ns)
            on = np.where(stay, length, moving + chunks * self.power_down_exit_ns)
        return on.sum(axis=-1), (length - on).sum(axis=-1)


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
    copy_cycles: dict[str, float] = field(default_factory=dict)   # copies and merges
    store: str | None = None             # the off-chip level copies come from
    merges: dict[str, dict[str, float]] = field(default_factory=dict)  # case -> price name -> count (LoRA merges)


def dynamic_counts(program, target: Target) -> tuple[dict[str, float], tuple[str, ...]]:
    """Action counts of a program (the quantities `timing.dynamic_energy` multiplies by prices)."""
    a: dict[str, float] = {}
    touched: dict[str, None] = {}
    regs = target.parts.registers
    memories = target.memory_names

    def add(k: str, v: float) -> None:
        a[k] = a.get(k, 0.0) + v

    for ins in program.instrs:
        if ins.kind == "power":  # its wake-up is static energy, counted with the bank's residencies
            continue
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


def static_counts(st: power.Static, acc: Accesses, image: list[Region] | None, target: Target,
                  span_ns: float) -> Static:
    """Residencies of one inference: the banks' as `power.static_energy` recorded them in `st`, the DRAMs'
    transfers and gaps from the accesses, as `dram.background` cuts them."""
    levels: dict[str, LevelState] = {}
    for m in target.memories:
        if m.dram is not None or m.power is None:
            continue
        time = {state: st.bank_time.get((m.name, state), 0.0) for state in STATES}
        levels[m.name] = LevelState(time, st.wakes.get(m.name, 0), st.idle_banks.get(m.name, (0, 0, 0)),
                                    st.power_up_wakes.get(m.name, 0), m.power_gating, hold_state(m))
    drams: dict[str, DramState] = {}
    for m in target.memories:
        if m.dram is None or not dram_needed(image, target, m):
            continue
        busy, moved = acc.in_flight(m.name)
        spans = transfers(busy, span_ns, moved)
        arr = np.array(spans, dtype=float).reshape(-1, 3)
        ends = np.concatenate([[0.0], np.maximum.accumulate(arr[:, 1])]) if len(arr) else np.zeros(1)
        gaps = np.maximum(0.0, np.append(arr[:, 0], span_ns) - ends)
        d = m.dram
        drams[m.name] = DramState(arr[:, 1] - arr[:, 0], arr[:, 2] if moved is not None else None,
                                  arr[:, 1] > arr[:, 0], gaps, d.bytes_per_ns, d.chunk_bytes, d.power_down_min_ns,
                                  d.power_down_exit_ns)
    return Static(span_ns, levels, drams)


def task_counts(program, sim, image: list[Region] | None, target: Target, module=None,
                task: str | None = None) -> TaskCounts:
    """The counts of `sim` (the `SimResult` of `program`, the task's program with its power instructions), warm
    and cold; with `module`, also what a request of `task` (default: the simulated one) copies on chip and the
    LoRA merges it runs (as `requests.run_stream` does)."""
    actions, touched = dynamic_counts(program, target)
    span = sim.cycles * 1000.0 / target.clock_mhz
    warm = static_counts(sim.warm, sim.accesses, image, target, span)
    cold = static_counts(sim.cold, sim.accesses, image, target, span)
    off = sum(rw[0] + rw[1] for lvl, rw in sim.traffic.items()
              if lvl in target.memory_names and target.level(lvl).off_chip)
    out = TaskCounts(sim.task, sim.cycles, target.clock_mhz, actions, touched, warm, cold, off)
    if module is not None:
        from aalbert.targets.sim.requests import _Charges

        charges = _Charges(module, target)
        out.store = charges.store.name if charges.store is not None else None
        name = sim.task if task is None else task
        for case, (c, s) in {"cold": (True, False), "cold_switch": (True, True), "switch": (False, True)}.items():
            out.copies[case] = charges.needed(name, c, s)
            merges, cycles = charges.merge_counts(name, c, s)
            out.copy_cycles[case] = charges.load(out.copies[case]) + cycles
            if merges:
                out.merges[case] = {}
                for _, price, n in merges:
                    out.merges[case][price] = out.merges[case].get(price, 0.0) + n
    return out


def backend_counts(backend) -> dict[str, TaskCounts]:
    """Every task's counts from a `mapper.backend.Backend` (each task simulated on its own program)."""
    from aalbert.targets.sim.power import memory_image

    image = memory_image(backend.module, backend.target)
    return {t: task_counts(backend.program(t), sim, image, backend.target, backend.module)
            for t, sim in backend.results.items()}


# -- pricing ------------------------------------------------------------------------------------------------
# Every price may be a number or an array of samples (the sensitivity prices many tables at once), and so may
# `scale` (every time of the inference that many times longer: a slower clock); counts are numbers. Keys follow
# the simulator's: a key whose energy is zero in every sample is left out where it does.
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


def _level_energy(name: str, s: LevelState, p: Prices, scale, e: dict[str, float]) -> None:
    leak = p[f"bank:{name}"]
    frac = {"on": 1.0, "retention": p.get(f"retention:{name}", 0.0), "off": p[f"off:{name}"]}
    for state in STATES:
        t = s.time[state]
        if t:
            e[f"leakage:{name}:{state}"] = _out(leak * frac[state] * (t * scale))
    if s.wakes:
        e[f"wakeup:{name}"] = _out(s.wakes * p[f"wake_pj:{name}"])


def _dram_energy(name: str, d: DramState, p: Prices, scale, e: dict[str, float]) -> None:
    after = np.asarray(p[f"dram:{name}:sr_after_ns"], dtype=float)[..., None]
    active, down_within = d.active(scale)
    gaps = d.gaps * np.asarray(scale, dtype=float)[..., None]
    sr = gaps > after
    sr[..., 0] = True                                   # asleep before the first transfer
    sr_ns = (gaps * sr).sum(axis=-1)
    down = down_within + (gaps * ~sr).sum(axis=-1)
    # a transfer exits self-refresh when a gap since the last transfer went to it (the first always does)
    starts = np.concatenate([[0], np.nonzero(d.real)[0] + 1])
    exits = np.maximum.reduceat(sr, starts, axis=-1)[..., :-1].sum(axis=-1)
    energy = {"active": active * p[f"dram:{name}:active"], "power_down": down * p[f"dram:{name}:power_down"],
              "self_refresh": sr_ns * p[f"dram:{name}:self_refresh"],
              "refresh": (active + down) * p[f"dram:{name}:refresh"],
              "self_refresh_exit": exits * p[f"dram:{name}:exit_pj"]}
    for state, pj in energy.items():
        if _nz(pj):
            e[f"background:{name}:{state}"] = _out(pj)


def logic_mw(p: Prices):
    return sum(v for k, v in p.items() if k.startswith("leak:"))


def price_static(s: Static, p: Prices, scale=1.0) -> dict[str, float]:
    """Static energy (pJ, `power.static_energy`'s keys) of residencies `s` at prices `p`, every time `scale`
    times longer."""
    span = s.span_ns * scale
    e = {"leakage:pe": _out(p["leak:pe"] * span), "leakage:sfu": _out(p["leak:sfu"] * span)}
    for k, mw in p.items():
        if k.startswith("leak:") and k not in ("leak:pe", "leak:sfu") and _nz(mw):
            e[f"leakage:{k[5:]}"] = _out(mw * span)
    for name, lvl in s.levels.items():
        _level_energy(name, lvl, p, scale, e)
    for name, d in s.drams.items():
        _dram_energy(name, d, p, scale, e)
    return e


def idle_mw(s: Static, p: Prices):
    """The powered chip's leakage between inferences: logic, and every bank in its idle state."""
    mw = logic_mw(p)
    for name, lvl in s.levels.items():
        leak = p[f"bank:{name}"]
        off = p[f"off:{name}"]
        f_hold = 1.0 if lvl.gating != "idle" else p.get(f"retention:{name}", off) if lvl.hold == "retention" \
            else off
        on, hold, gone = lvl.idle
        mw = mw + leak * (on + hold * f_hold + gone * off)
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


# served(task, after a power-up?) -> a request's energy (pJ) and cycles, where it is not one inference's counts
Served = Callable[[str, bool], tuple[Any, Any]]


def expected_stream(counts: dict[str, TaskCounts], p: Prices, s: StreamSpec, served: Served | None = None):
    """Energy per request (pJ) of a long round-robin stream over the tasks: one request in `per_wakeup`
    after a power-up, the others on a powered chip; a task switch at `switch_rate` of them; each request
    pays the idle gap its predecessor leaves (as `requests.run_stream` charges them). Every cycle lasts
    `time_scale` times the compiled one; the gaps between requests are what the rate leaves. A request is
    one inference of its task's counts, or what `served` says it costs (a generation request's steps): the
    counts then give the stream's part, the idle chip, the copies and merges a switch or a power-up needs."""
    tasks = list(counts)
    n = len(tasks)
    f_cold = 1.0 / np.maximum(1.0, s.per_wakeup)
    switch = s.switch_rate if n > 1 else 0.0
    period_ns = 1e9 / np.asarray(s.rate_hz, dtype=float)
    scale = s.time_scale
    cold_case = "cold_switch" if n > 1 else "cold"
    service = {}
    for t, c in counts.items():
        copy = f_cold * c.copy_cycles.get(cold_case, 0.0) + (1 - f_cold) * switch * c.copy_cycles.get("switch", 0.0)
        cycles = c.cycles if served is None else served(t, False)[1]
        service[t] = (cycles + copy) * 1000.0 / c.clock_mhz * scale
    total = 0.0
    for i, t in enumerate(tasks):
        c = counts[t]
        gap = np.maximum(0.0, period_ns - service[tasks[i - 1]])
        dyn = sum(price_dynamic(c, p).values()) if served is None else 0.0
        for cold, case, weight in ((True, cold_case, f_cold), (False, "switch", (1 - f_cold) * switch),
                                   (False, None, (1 - f_cold) * (1 - switch))):
            if not _nz(weight):
                continue
            st = c.cold if cold else c.warm
            e = dyn + sum(price_static(st, p, scale).values()) if served is None else served(t, cold)[0]
            mw = idle_mw(st, p)
            drams = dram_power(st, p)
            if case is not None and (c.copies.get(case) or c.merges.get(case)):
                load_ns = c.copy_cycles[case] * 1000.0 / c.clock_mhz * scale
                e = e + mw * load_ns + sum((d.active_mw + d.refresh_mw) * load_ns for d in drams.values())
                if c.store is not None:
                    e = e + sum(c.copies[case].values()) * p[f"read:{c.store}"]
                e = e + sum(b * p[f"write:{lvl}"] for lvl, b in c.copies[case].items())
                for k, count in c.merges.get(case, {}).items():
                    e = e + count * p[k]
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
