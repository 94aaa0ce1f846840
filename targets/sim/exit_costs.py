"""What an inference costs up to each early-exit test (`targets.codegen.exit_tests`).

`Timeline` is one program simulated at one operating point and cut after
each test: the cycles when each test finishes, the dynamic energy and the
off-chip bytes of the instructions up to it. `ExitCosts.static` charges the
static energy (`targets.sim.power`: banks by power state, DRAM background) of
the accesses between two cuts, as an inference of that span. The last cut
is the program's end: a sentence no off-ramp let go. A target with a
predicated format (`targets.hardware.predication`) has a second timeline per
point, `mode` "predicated": the same program with every product in that
format, which the early-exit policies run after the first off-ramp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aalbert.ir.offramps import off_ramps
from aalbert.targets.codegen.exit_tests import exit_tests
from aalbert.targets.codegen.program import Program
from aalbert.targets.hardware.predication import predicated
from aalbert.targets.hardware.spec import Target, at_point
from aalbert.targets.sim.power import Accesses, Region, Static, static_energy
from aalbert.targets.sim.timing import SimResult, dynamic_energy


@dataclass
class Timeline:
    """One program simulated at one operating point, cut after each exit test (the last cut: its end)."""

    sim: SimResult
    target: Target
    ends: list[float]                    # cycles: each test's finish, then the makespan
    dynamic: list[dict[str, float]]      # pJ by component of the instructions up to each cut
    dram: list[float]                    # off-chip bytes up to each cut

    def seconds(self, cut: int) -> float:
        return self.ends[cut] / (self.target.clock_mhz * 1e6)

    def ns(self, cut: int) -> float:
        return self.ends[cut] * 1000.0 / self.target.clock_mhz


def timeline(program: Program, sim: SimResult, target: Target) -> Timeline:
    """Cut `sim` (the simulation of `program` on `target`) after each exit test."""
    tests = set(exit_tests(program))
    off = {m.name for m in target.memories if m.off_chip}
    ends, dynamic, dram = [], [], []
    energy: dict[str, float] = {}
    moved = 0.0
    for ins in program.instrs:
        for k, v in dynamic_energy(ins, target).items():
            energy[k] = energy.get(k, 0.0) + v
        moved += sum(rd + wr for lvl, rd, wr in ins.traffic if lvl in off)
        if ins.id in tests:
            ends.append(sim.finish[ins.id])
            dynamic.append(dict(energy))
            dram.append(moved)
    return Timeline(sim, target, ends + [sim.cycles], dynamic + [energy], dram + [moved])


def window(acc: Accesses, lo_ns: float, end_ns: float) -> Accesses:
    """The accesses that start in [lo_ns, end_ns), their times from `lo_ns`."""
    out = Accesses({})
    for lvl, rows in acc.levels.items():
        sel = rows[(rows[:, 2] >= lo_ns) & (rows[:, 2] < end_ns)].copy()
        sel[:, 2:4] -= lo_ns
        out.levels[lvl] = sel
    for lvl, moved in acc.moved.items():
        out.moved[lvl] = [(a - lo_ns, b - lo_ns, n) for a, b, n in moved if lo_ns <= a < end_ns]
    for lvl, events in acc.power.items():  # the power instructions in the window, each bank from its state at lo_ns
        state: dict[int, str] = {}
        kept = []
        for bank, at, s in sorted(events, key=lambda e: e[1]):
            if at < lo_ns:
                state[bank] = s
            elif at < end_ns:
                kept.append((bank, at - lo_ns, s))
        out.power[lvl] = [(bank, 0.0, "=" + s) for bank, s in sorted(state.items())] + kept
    return out


def subtract(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """a - b, key by key (the dynamic energy between two cuts)."""
    return {k: a.get(k, 0.0) - b.get(k, 0.0) for k in a}



class ExitCosts:
    """What one inference of each task costs up to each cut, at each operating point of the target.

    `results` are the backend's simulations at the top point (the target as given), `program(task)` a task's
    program (with its power instructions, for its own banks), `same_as` the task each one was lowered as.
    Timelines at other points simulate the same programs on `spec.at_point` targets; everything is computed
    when first asked for and kept.
    """

    def __init__(self, module, target: Target, results: dict[str, SimResult], program, same_as: dict[str, str],
                 image: list[Region] | None):
        from aalbert.targets.hardware.dvfs import OperatingPoint

        self.module, self.target, self.results, self.program, self.same_as, self.image = \
            module, target, results, program, same_as, image
        self.points = target.dvfs.points if target.dvfs is not None else (
            OperatingPoint(target.voltage_v or 0.0, target.clock_mhz),)
        self._targets: dict[tuple[int, str], Target] = {(0, ""): target}
        self._timelines: dict[tuple[str, int, str], Timeline] = {}
        self._acc: dict[tuple[str, int, str], Accesses] = {}
        self._static: dict[tuple, Static] = {}
        self._layers: dict[str, list[int]] = {}

    def layers(self, task: str) -> list[int]:
        """The layer each cut leaves after: every off-ramp's, then the end (the layer after the last off-ramp)."""
        if task not in self._layers:  # asked for every request of a stream
            ramps = [r.layer for r in off_ramps(self.module.graphs[task])]
            self._layers[task] = ramps + [ramps[-1] + 1 if ramps else 1]
        return self._layers[task]

    @property
    def mode(self) -> str:
        """The mode the early-exit policies run after the first off-ramp: "predicated" when the target names a
        predicated format, else "" (the products' own formats)."""
        return "predicated" if self.target.compute.predicated_format else ""

    def at(self, q: int, mode: str = "") -> Target:
        if (q, mode) not in self._targets:
            self._targets[(q, mode)] = predicated(self.at(q)) if mode else at_point(self.target, self.points[q])
        return self._targets[(q, mode)]

    def timeline(self, task: str, q: int, mode: str = "") -> Timeline:
        key = (task, q, mode)  # every task's own program: its power instructions are for its own banks
        if key not in self._timelines:
            from aalbert.targets.sim.timing import simulate
            program = self.program(task)
            sim = self.results[task] if q == 0 and not mode else simulate(program, self.at(q, mode), self.image)
            self._timelines[key] = timeline(program, sim, self.at(q, mode))
        return self._timelines[key]

    def accesses(self, task: str, q: int, mode: str = "") -> Accesses:
        key = (task, q, mode)
        if key not in self._acc:
            self._acc[key] = self.timeline(task, q, mode).sim.accesses
        return self._acc[key]

    def static(self, task: str, q: int, first: int, last: int, cold: bool, mode: str = "") -> Static:
        """Static energy between cut `first` (-1: the start) and cut `last`; `cold` as right after a power-up
        (which data volatile memory holds)."""
        key = (task, q, first, last, cold, mode)
        if key not in self._static:  # the accesses that start in the window (or later, for the last cut),
            tl = self.timeline(task, q, mode)  # charged as an inference of that span
            lo, hi = tl.ns(first) if first >= 0 else 0.0, tl.ns(last)
            end = math.inf if last == len(tl.ends) - 1 else hi
            self._static[key] = static_energy(window(self.accesses(task, q, mode), lo, end), self.image,
                                              self.at(q, mode), hi - lo, task, cold)
        return self._static[key]

    def upto(self, task: str, q: int, cut: int, cold: bool) -> tuple[float, dict[str, float], float]:
        """(seconds, energy by key, off-chip bytes) of an inference that leaves at `cut`, all of it at point `q`."""
        tl = self.timeline(task, q)
        if q == 0 and cut == len(tl.ends) - 1:  # the whole program, as the backend charged it
            r = self.results[task]
            static = r.cold if cold else r.warm
            return r.seconds, {**r.dynamic, **static.energy}, tl.dram[cut]
        st = self.static(task, q, -1, cut, cold)
        return tl.seconds(cut), {**tl.dynamic[cut], **st.energy}, tl.dram[cut]

    def between(self, task: str, q: int, first: int, last: int, cold: bool,
                mode: str = "") -> tuple[float, dict[str, float], float]:
        """(seconds, energy by key, off-chip bytes) from cut `first` to cut `last`, at point `q`, in `mode`."""
        tl = self.timeline(task, q, mode)
        st = self.static(task, q, first, last, cold, mode)
        return (tl.seconds(last) - tl.seconds(first), {**subtract(tl.dynamic[last], tl.dynamic[first]), **st.energy},
                tl.dram[last] - tl.dram[first])
