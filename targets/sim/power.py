"""Static energy: leakage charged per memory bank by its power state over time, and DRAM background.

Every on-chip level is cut into equal, contiguous banks (`MemoryLevel.banks`).
During one inference a bank is in one of three classes:

- empty: no placed data in it (or, after a power-up, only other tasks'
  weights in volatile memory, which the power-down erased) - off all along;
- holding data the inference does not touch at some moment: in the level's
  idle state between accesses when `power_gating = "idle"` (SRAM in
  retention, keeping its data; non-volatile memory off, keeping it), with a
  wake-up (latency and energy) before the next access; a gap is gated only
  when it is longer than the wake-up latency plus the break-even time
  (wake-up energy over the power it saves); an SRAM bank that holds no
  weights is off before its first access when that access writes it, and
  after its last access when that access reads it (nothing in it is needed
  yet, or any more); with `power_gating = "empty"` or `"none"` it stays on;
- with `power_gating = "none"` every bank, even an empty one, is on all along
  (the model before power states).

The accesses come from the program (every buffer an instruction reads or
writes, during the instruction), the placed data from the module
(`memory_image`). When the program carries power instructions
(`targets.sim.gating`, planned by `plan_bank`), a bank's states are the
ones they set, at the times they run; a bank without them (accesses moved to
another task's bytes, `relocation`) follows `plan_bank` on its accesses,
the rule the instructions are planned by. Energy = bank leakage x (time on + retention fraction x
time in retention + off fraction x time off) + wake-ups x wake-up energy, per
level and state. The PE array, SFU, registers, buffers, accumulators and
interconnect leak whenever the chip is powered.

DRAM (`targets.dram`) is in active standby while its bursts move the bytes an
instruction transfers (its `traffic` in that level, at the DRAM's peak rate),
in active power-down between the bursts of a transfer the consumer takes
slower, else in power-down or self-refresh; it is charged only while it holds
something the accelerator needs (weights kept or streamed there, or the
copies volatile on-chip memory is refilled from); otherwise it is off.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aalbert.ir.phases import task_of
from aalbert.targets.hardware.dram import DramPower, background
from aalbert.targets.hardware.spec import MemoryLevel, Target


@dataclass(frozen=True)
class Region:
    """Bytes [lo, hi) of a level that hold data; `owners` None: every task's, else those tasks'."""

    level: str
    lo: int
    hi: int
    owners: frozenset[str] | None
    weights: bool = True             # weights (not activations)


def memory_image(module, target: Target) -> list[Region]:
    """Where placed data sit: every weight (a staged one in its swap slot and at its home), every arena and
    state region (owned by their graph's task: a decoder's phases are one task)."""
    out = []
    for w in module.weights.values():
        p = w.placement
        if p is None:
            continue
        owners = None if w.role is None or w.role.shared else frozenset(w.role.tasks)
        out.append(Region(p.level, p.offset, p.offset + w.nbytes, owners))
        if p.residency == "staged":
            out.append(Region(p.home, p.home_offset, p.home_offset + w.nbytes, owners))
    for name, g in module.graphs.items():
        a = g.arena
        if a is not None and a.level is not None:
            out.append(Region(a.level, a.offset, a.offset + a.size, frozenset([task_of(name)]), weights=False))
        if a is not None and a.state and a.state_level is not None and a.state_offset is not None:
            out.append(Region(a.state_level, a.state_offset, a.state_offset + a.state, frozenset([task_of(name)]),
                              weights=False))
    return out


def dram_needed(image: list[Region] | None, target: Target, level: MemoryLevel) -> bool:
    """A DRAM holds something the accelerator needs: data placed in it, or the copies of weights kept in
    volatile on-chip memory (refilled from the cheapest off-chip store after a power-up)."""
    if image is None:
        return True
    if any(r.level == level.name for r in image):
        return True
    store = min((m for m in target.memories if m.off_chip), key=lambda m: m.read_pj_per_byte)
    volatile = {m.name for m in target.on_chip if m.volatile}
    return store.name == level.name and any(r.weights and r.level in volatile for r in image)


ROW = 6  # lo, hi, start, end, instruction id, write (1) or read (0)


class Accesses:
    """Every (level, bytes [lo, hi), time [start, end) in ns, instruction id, write) a program touches, as arrays
    per level, the power-state instructions it issues (`power`: level -> (bank, start ns, state) rows), and what
    each instruction moves to or from a DRAM (`moved`)."""

    def __init__(self, rows: dict[str, Any], power: dict[str, list] | None = None,
                 moved: dict[str, list] | None = None):
        """`rows`: per level, (lo, hi, start, end) or (lo, hi, start, end, id, write) rows (without ids, each row is
        its own instruction, a read); `moved`: per DRAM level, (start, end, bytes) of every instruction that
        transfers data to or from it."""
        self.levels = {}
        for lvl, r in rows.items():
            arr = np.asarray(r, dtype=float)
            arr = arr.reshape(len(arr), -1) if len(arr) else np.zeros((0, ROW))
            if arr.shape[1] == 4:
                arr = np.concatenate([arr, np.arange(len(arr), dtype=float)[:, None], np.zeros((len(arr), 1))], 1)
            self.levels[lvl] = arr
        self.power: dict[str, list[tuple[int, float, str]]] = power or {}
        self.moved = {lvl: list(r) for lvl, r in (moved or {}).items()}

    @classmethod
    def of(cls, program, start, finish, target: Target) -> Accesses:
        ns = 1000.0 / target.clock_mhz
        names = {m.name for m in target.memories}
        drams = {m.name for m in target.memories if m.dram is not None}
        flat: dict[str, list] = {}  # per level: lo, hi, start, end, id, write, lo, ... (no tuple kept per access)
        power: dict[str, list] = {}
        moved: dict[str, list] = {}
        for ins in program.instrs:
            a, b = start[ins.id] * ns, finish[ins.id] * ns
            if ins.kind == "power":
                power.setdefault(ins.level, []).append((ins.bank, a, ins.state))
                continue
            touched: dict[str, int] | None = None
            for write, bufs in ((0, ins.reads), (1, ins.writes)):
                for buf in bufs:
                    if buf.level in names:
                        rows = flat.get(buf.level)
                        if rows is None:
                            rows = flat[buf.level] = []
                        rows.extend((buf.offset, buf.offset + max(1, buf.nbytes), a, b, ins.id, write))
                        if buf.level in drams:
                            touched = touched or {}
                            touched[buf.level] = touched.get(buf.level, 0) + buf.nbytes
            if touched:
                traffic = {lvl: r + w for lvl, r, w in ins.traffic if lvl in touched}
                for lvl, nbytes in touched.items():
                    moved.setdefault(lvl, []).append((a, b, float(traffic.get(lvl, nbytes))))
        return cls({lvl: np.array(r, dtype=float).reshape(-1, ROW) for lvl, r in flat.items()}, power, moved)

    def relocated(self, moves: dict[str, list[tuple[int, int, int]]]) -> Accesses:
        """The accesses with byte ranges moved: per level, (lo, hi, delta) for data at [lo, hi)."""
        out = Accesses({}, moved=self.moved)
        for lvl, arr in self.levels.items():
            arr = arr.copy()
            table = sorted(moves.get(lvl, []))
            if table:
                los = [t[0] for t in table]
                for row in arr:
                    i = bisect.bisect_right(los, row[0]) - 1
                    if i >= 0 and row[0] < table[i][1]:
                        row[0] += table[i][2]
                        row[1] += table[i][2]
            out.levels[lvl] = arr
        return out

    def in_flight(self, level: str) -> tuple[list[tuple[float, float]], list[float] | None]:
        """A DRAM level's transfers, (start, end) ns, and the bytes each moves; None for the bytes when they were
        not recorded (accesses given by hand: in flight all along)."""
        rows = self.moved.get(level)
        if rows is None:
            return [(a, b) for a, b in self.busy(level)], None
        return [(a, b) for a, b, _ in rows], [n for _, _, n in rows]

    def busy(self, level: str, lo: float = 0, hi: float = float("inf")) -> np.ndarray:
        """Time intervals (n x 2) during which bytes [lo, hi) of `level` are accessed, merged."""
        arr = self.levels.get(level)
        if arr is None or not len(arr):
            return np.zeros((0, 2))
        sel = arr[(arr[:, 0] < hi) & (arr[:, 1] > lo)][:, 2:4]
        if not len(sel):
            return np.zeros((0, 2))
        sel = sel[np.argsort(sel[:, 0], kind="stable")]
        ends = np.maximum.accumulate(sel[:, 1])
        new = np.concatenate([[True], sel[1:, 0] > ends[:-1]])
        starts = sel[new, 0]
        last = np.concatenate([np.nonzero(new)[0][1:] - 1, [len(sel) - 1]])
        return np.stack([starts, ends[last]], axis=1)


def relocation(module, frm: str, to: str) -> dict[str, list[tuple[int, int, int]]]:
    """Byte moves taking task `frm`'s weights to task `to`'s, node by node (graphs of one timing signature)."""
    moves: dict[str, list] = {}
    ga, gb = module.graphs[frm], module.graphs[to]
    for na, nb in zip(ga.nodes, gb.nodes):
        if na.op != "weight":
            continue
        wa, wb = module.weights[na.attrs["name"].name], module.weights[nb.attrs["name"].name]
        pa, pb = wa.placement, wb.placement
        if pa is not None and pb is not None and pa.level == pb.level and pa.offset != pb.offset:
            moves.setdefault(pa.level, []).append((pa.offset, pa.offset + wa.nbytes, pb.offset - pa.offset))
    return moves


@dataclass
class Static:
    """Static energy of one inference (pJ, keyed as in `SimResult.energy`) and what the stream needs."""

    energy: dict[str, float]
    bank_time: dict[tuple[str, str], float]     # (level, state) -> bank x ns
    idle_mw: float                              # chip powered between inferences: logic, banks in their idle state
    dram_idle: dict[str, DramPower] = field(default_factory=dict)  # DRAM level -> its power, when needed
    power_up_pj: float = 0.0                    # waking the banks that hold data after a power-up
    banks: dict[str, dict[str, int]] = field(default_factory=dict)  # level -> empty / held / accessed -> count
    wakes: dict[str, int] = field(default_factory=dict)             # level -> bank wake-ups in the inference
    idle_banks: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # level -> banks on, holding, off
    power_up_wakes: dict[str, int] = field(default_factory=dict)    # level -> banks a power-up wakes


def _present(r: Region, task: str, cold: bool, level: MemoryLevel) -> bool:
    """Is the region's data there during `task`'s inference? After a power-up, volatile memory holds only what
    the task needs (its own and the shared weights, refilled, and its arena)."""
    if not (cold and level.volatile) or r.owners is None:
        return True
    return task_of(task) in r.owners


def static_energy(acc: Accesses, image: list[Region] | None, target: Target, span_ns: float, task: str,
                  cold: bool) -> Static:
    """Leakage by bank state and DRAM background over one inference of `span_ns` (see the module doc)."""
    energy = {"leakage:pe": target.compute.leakage_mw * span_ns, "leakage:sfu": target.sfu.leakage_mw * span_ns}
    for name, mw in target.parts.leakage_parts().items():
        energy[f"leakage:{name}"] = mw * span_ns
    bank_time: dict[tuple[str, str], float] = {}
    idle_mw = target.compute.leakage_mw + target.sfu.leakage_mw + target.parts.leakage_mw
    power_up = 0.0
    classes: dict[str, dict[str, int]] = {}
    level_wakes: dict[str, int] = {}
    idle_banks: dict[str, tuple[int, int, int]] = {}
    power_up_wakes: dict[str, int] = {}
    for m in target.memories:
        if m.dram is not None:
            continue
        p = m.power
        held = [r for r in image if r.level == m.name and _present(r, task, cold, m)] if image is not None else None
        placed = [r for r in image if r.level == m.name] if image is not None else None
        leak = m.bank_leakage_mw
        times = {"on": 0.0, "retention": 0.0, "off": 0.0}
        wakes = 0
        idle_factor = {"on": 1.0, "hold": idle_fraction(m), "off": p.off}
        idle = {"on": 0, "hold": 0, "off": 0}
        woken = 0
        events: dict[int, list[tuple[float, str]]] = {}
        for bank, at, state in acc.power.get(m.name, ()):
            events.setdefault(bank, []).append((at, state))
        for k in range(m.banks):
            lo, hi = k * m.bank_bytes, (k + 1) * m.bank_bytes
            busy = acc.busy(m.name, lo, hi)
            has_data = len(busy) > 0 if held is None else (len(busy) > 0 or any(r.lo < hi and r.hi > lo for r in held))
            cls = classes.setdefault(m.name, {"empty": 0, "held": 0, "accessed": 0})
            cls["accessed" if len(busy) else "held" if has_data else "empty"] += 1
            if k in events:  # the program's power instructions say when
                schedule = functools.partial(_instructed_times, events[k], hold_state(m), span_ns)
            elif m.power_gating == "idle" and len(busy):  # a program without them: as the plan would issue them
                schedule = functools.partial(_planned, m, k, acc, placed, span_ns)
            else:
                schedule = None
            own, n, idle_state, up = _bank(m, busy, has_data, schedule, span_ns, cold)
            for state, t in own.items():
                times[state] += t
            wakes += n
            idle_mw += leak * idle_factor[idle_state]
            idle[idle_state] += 1
            power_up += p.wakeup_pj if up else 0.0
            woken += up
        frac = {"on": 1.0, "retention": p.retention or 0.0, "off": p.off}
        for state, t in times.items():
            if t:
                energy[f"leakage:{m.name}:{state}"] = leak * frac[state] * t
                bank_time[m.name, state] = t
        if wakes:
            energy[f"wakeup:{m.name}"] = wakes * p.wakeup_pj
        level_wakes[m.name], power_up_wakes[m.name] = wakes, woken
        idle_banks[m.name] = (idle["on"], idle["hold"], idle["off"])
    dram_idle: dict[str, DramPower] = {}
    for m in target.memories:
        if m.dram is None or not dram_needed(image, target, m):
            continue
        flying, moved = acc.in_flight(m.name)
        bg = background(flying, span_ns, m.dram, asleep_before=True, moved=moved)
        for state, pj in bg.energy_pj.items():
            if pj:
                energy[f"background:{m.name}:{state}"] = pj
        dram_idle[m.name] = m.dram
    return Static(energy, bank_time, idle_mw, dram_idle, power_up, classes, level_wakes, idle_banks, power_up_wakes)


@dataclass(frozen=True)
class BankPlan:
    """The power states of one accessed bank of a gated level over an inference: `first` until its first wake-up
    (off when it holds nothing yet: its first access writes it), on over each period (from the wake-up before
    its accesses to their end), `hold` between periods, `last` after them (off when it holds no weights and its
    last access reads it: nothing it holds is needed later)."""

    bank: int
    first: str
    periods: tuple[tuple[float, float], ...]          # (wake-up start, end of the accesses) in ns
    wakers: tuple[tuple[int, ...], ...]               # per period: the instructions that wait for its wake-up
    gaters: tuple[tuple[int, ...], ...]               # ... and those its gating waits for
    hold: str
    last: str


def hold_state(m: MemoryLevel) -> str:
    """The state a gated bank keeps data in between accesses: retention (SRAM) or off (non-volatile)."""
    return "retention" if m.power.retention is not None else "off"


def plan_bank(m: MemoryLevel, k: int, rows: np.ndarray, has_weights: bool) -> BankPlan:
    """When bank `k` of gated level `m` is woken and gated, from the rows (`Accesses` columns) that touch it: a gap
    between accesses is gated when it is longer than the wake-up latency plus the break-even time (wake-up
    energy over the power the holding state saves), and when the instructions before it all come before those
    after it in program order (the power instructions of one bank then run in order)."""
    p = m.power
    rows = rows[np.lexsort((rows[:, 4], rows[:, 2]))]
    starts, ends, ids = rows[:, 2], np.maximum.accumulate(rows[:, 3]), rows[:, 4]
    hold = hold_state(m)
    saved = m.bank_leakage_mw * (1 - (p.retention if hold == "retention" else p.off))
    keep = p.wakeup_ns + (p.wakeup_pj / saved if saved > 0 else float("inf"))
    before = np.maximum.accumulate(ids)[:-1]
    after = np.minimum.accumulate(ids[::-1])[::-1][1:]
    cuts = np.nonzero((starts[1:] - ends[:-1] > keep) & (before < after))[0] + 1
    bounds = [0, *cuts.tolist(), len(rows)]
    periods, wakers, gaters = [], [], []
    for lo, hi in zip(bounds, bounds[1:]):
        s0, e0 = float(starts[lo]), float(ends[hi - 1])
        periods.append((max(0.0, s0 - p.wakeup_ns), e0))
        seg = rows[lo:hi]
        wakers.append(tuple(sorted({int(i) for i in seg[seg[:, 2] < s0 + 2 * p.wakeup_ns, 4]})))
        gaters.append(tuple(sorted({int(i) for i in seg[seg[:, 3] >= e0 - 2 * p.wakeup_ns, 4]})))
    dead = m.volatile and not has_weights
    first = "off" if dead and rows[starts == starts[0], 5].all() else hold
    last_rows = rows[rows[:, 3] == rows[:, 3].max()]
    last = "off" if dead and not last_rows[:, 5].any() else hold
    return BankPlan(k, first, tuple(periods), tuple(wakers), tuple(gaters), hold, last)


def bank_rows(acc: Accesses, m: MemoryLevel, k: int) -> np.ndarray:
    arr = acc.levels.get(m.name)
    if arr is None or not len(arr):
        return np.zeros((0, ROW))
    lo, hi = k * m.bank_bytes, (k + 1) * m.bank_bytes
    return arr[(arr[:, 0] < hi) & (arr[:, 1] > lo)]


def holds_weights(held: list[Region] | None, m: MemoryLevel, k: int) -> bool:
    lo, hi = k * m.bank_bytes, (k + 1) * m.bank_bytes
    return held is None or any(r.weights and r.lo < hi and r.hi > lo for r in held)


def idle_fraction(m: MemoryLevel) -> float:
    """The fraction of its leakage a bank holding data keeps while idle: retention (or off) when gated, else all."""
    p = m.power
    return (p.retention if p.retention is not None else p.off) if m.power_gating == "idle" else 1.0


def _bank(m: MemoryLevel, busy: np.ndarray, has_data: bool, schedule, span_ns: float,
          cold: bool) -> tuple[dict[str, float], int, str, bool]:
    """A bank of level `m` over an inference: time in each state, wake-ups, its state while the chip idles
    powered ("on", "hold": the level's idle state, or "off"), and whether a power-up wakes it; `schedule()`,
    when given, its states' times and wake-ups (by its power instructions, or as `plan_bank` plans them)."""
    f_hold = idle_fraction(m)
    if m.power_gating == "none":
        return {"on": span_ns}, 0, "on", cold
    if schedule is not None:
        times, n = schedule()
        return times, n, "hold", cold and m.volatile
    if not has_data:
        return {"off": span_ns}, 0, "off", False
    state = "on" if f_hold == 1.0 or m.power_gating == "empty" else hold_state(m)
    return {state: span_ns}, 0, "on" if state == "on" else "hold", cold and (state == "on" or m.volatile)


def _planned(m: MemoryLevel, k: int, acc: Accesses, placed: list[Region] | None,
             span_ns: float) -> tuple[dict[str, float], int]:
    return _planned_times(plan_bank(m, k, bank_rows(acc, m, k), holds_weights(placed, m, k)), span_ns)


def _planned_times(plan: BankPlan, span_ns: float) -> tuple[dict[str, float], int]:
    """Time in each state and wake-ups of a bank that follows `plan`."""
    times = {"on": 0.0, "retention": 0.0, "off": 0.0}
    t = 0.0
    state = plan.first
    for a, b in plan.periods:
        a, b = min(max(a, t), span_ns), min(max(b, a, t), span_ns)
        times[state] += a - t
        times["on"] += b - a
        t, state = b, plan.hold
    times[plan.last] += max(0.0, span_ns - t)
    return times, len(plan.periods)


def _instructed_times(events: list[tuple[float, str]], first: str, span_ns: float) -> tuple[dict[str, float], int]:
    """Time in each state and wake-ups of a bank that follows its power instructions ((start ns, state), in
    order), from `first` (a state marked '=' is one the bank is already in: a window's start, no wake-up)."""
    times = {"on": 0.0, "retention": 0.0, "off": 0.0}
    t, state, wakes = 0.0, first, 0
    for at, new in sorted(events, key=lambda e: e[0]):
        at = min(max(at, t), span_ns)
        times[state] += at - t
        wakes += new == "on"
        t, state = at, new.lstrip("=")
    times[state] += max(0.0, span_ns - t)
    return times, wakes


def dram_between(dram: dict[str, DramPower], gap_ns: float, asleep: bool) -> dict[str, float]:
    """DRAM background (pJ by state key suffix) over an idle gap between inferences: self-refresh while the
    accelerator sleeps or when the gap is long enough, else power-down and refresh."""
    out: dict[str, float] = {}
    for name, p in dram.items():
        if asleep or gap_ns > p.self_refresh_after_ns:
            out[f"background:{name}:self_refresh"] = p.self_refresh_mw * gap_ns
        else:
            out[f"background:{name}:power_down"] = p.power_down_mw * gap_ns
            out[f"background:{name}:refresh"] = p.refresh_mw * gap_ns
    return out
