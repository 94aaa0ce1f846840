"""Multi-task workloads: a stream of requests over tasks, simulated end to end.

A request names a task and arrives at a time. Before running it the chip
may have to bring weights on chip: after a power-up (every
`inferences_per_wakeup` requests) every weight the task reads from volatile
on-chip memory is refilled from off-chip storage (RRAM keeps the backbone);
at a task switch, the task's staged weights are copied into the swap region.
Then the task's program runs (its cycles and energy from `targets.sim`, the
static part as right after a power-up or on a powered chip). Between
requests a powered chip leaks with its banks in their idle states, a
power-gated one not at all; the DRAM, while it holds what the chip needs,
stays in self-refresh (or power-down for short gaps). Requests queue when the
chip is busy; the stream repeats (the first request follows the idle gap the
last one leaves until one mean period after it), so that every request pays
one gap. Reported: latency (mean, p50, p95, p99), energy per inference,
average power, switches, power-ups and DRAM bytes.

`run_stream` can also take how each request is served (`serve`: its
inference's time, energy and off-chip bytes, given what it waited), which is
how early exit and DVFS policies (`targets.policies`) run a stream.

Streams follow the workload's switch rate: `round-robin` moves to the next
task at evenly spread requests, that share of them (every time at rate 1),
and needs a uniform mix; `random` is a Markov chain whose requests follow the mix and
switch task at that rate (a rate the mix cannot give is an error);
`bursts` runs `burst` requests of one task, a switch rate of 1 / burst; or a
trace file with one request per line: `task [arrival_seconds]` (without a
time, one period of the workload's rate after the previous request).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.fileio import read_regular
from aalbert.ir.module import Module
from aalbert.ir.switch import actives
from aalbert.limits import check_bytes
from aalbert.outputs import note_read
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.power import dram_between
from aalbert.targets.sim.timing import SimResult

PATTERNS = ("round-robin", "random", "bursts")
REQUEST_BYTES = 200  # what one simulated request holds in memory, about


@dataclass(frozen=True)
class Request:
    task: str
    arrival: float   # seconds


@dataclass(frozen=True)
class Pattern:
    """How requests follow one another: `name` (round-robin, random or bursts), the tasks' shares (`mix`; None:
    uniform), the share of requests that switch task, requests per burst, and the random stream's seed."""

    name: str
    mix: dict[str, float] | None = None
    switch_rate: float = 1.0
    burst: int = 8
    seed: int = 0


def make_stream(pattern: Pattern, tasks: list[str], count: int, rate_hz: float) -> list[Request]:
    """`count` requests over `tasks` arriving at `rate_hz`, in `pattern`."""
    if pattern.name not in PATTERNS:
        raise AalbertError(f"unknown request pattern {pattern.name!r} (round-robin, random, bursts, or a trace file)")
    check_bytes(count * REQUEST_BYTES, f"a stream of {count:,} requests")
    rng = random.Random(pattern.seed)
    switch_rate, burst = pattern.switch_rate, pattern.burst
    share = {t: (pattern.mix or {}).get(t, 1.0) for t in tasks}
    total = sum(share.values())
    pi = {t: v / total for t, v in share.items() if v > 0}
    if pattern.name == "round-robin":
        if len(set(round(v, 12) for v in pi.values())) > 1 or len(pi) < len(tasks):
            raise AalbertError("round-robin serves the tasks in turn, and the workload's mix is not uniform: "
                               "use --pattern random to follow the mix")
        names = _round_robin(tasks, count, switch_rate)
    elif pattern.name == "random":
        names = _markov(pi, count, switch_rate, rng)
    else:
        if len(tasks) > 1 and abs(switch_rate - 1.0 / burst) > 1e-9:
            raise AalbertError(f"bursts of {burst} requests switch task at rate {1 / burst:g}, and the workload's "
                               f"switch rate is {switch_rate:g}: give --switch-rate {1 / burst:g}, or a burst length "
                               "matching the rate")
        names = []
        i = 0
        while len(names) < count:
            names += [tasks[i % len(tasks)]] * min(burst, count - len(names))  # a burst longer than the stream ends
            i += 1
    return [Request(t, i / rate_hz) for i, t in enumerate(names)]


def _round_robin(tasks: list[str], count: int, switch_rate: float) -> list[str]:
    """The tasks in turn, moving to the next one at evenly spread requests: request n switches when
    floor(n x rate) grows, so n requests hold floor((n - 1) x rate) switches."""
    names, i = [], 0
    for n in range(count):
        if n and len(tasks) > 1 and int(n * switch_rate) > int((n - 1) * switch_rate):
            i += 1
        names.append(tasks[i % len(tasks)])
    return names


def _markov(pi: dict[str, float], count: int, switch_rate: float, rng: random.Random) -> list[str]:
    """Requests whose tasks follow the shares `pi` and switch at `switch_rate`: from task i, switch with
    probability k (1 - pi_i) to a task j != i drawn by its share, which keeps `pi` stationary and switches at
    rate k (1 - sum pi^2); the rate is reachable while k (1 - min pi) <= 1."""
    tasks = list(pi)
    spread = 1.0 - sum(p * p for p in pi.values())
    most = spread / (1.0 - min(pi.values())) if len(pi) > 1 else 0.0
    if switch_rate > most + 1e-9:
        raise AalbertError(f"a switch rate of {switch_rate:g} conflicts with the workload's mix: with these shares "
                           f"at most {most:.3g} of the requests can switch task")
    k = switch_rate / spread if spread > 0 else 0.0
    current = rng.choices(tasks, weights=[pi[t] for t in tasks])[0]
    names = [current]
    for _ in range(count - 1):
        if rng.random() < k * (1.0 - pi[current]):
            others = [t for t in tasks if t != current]
            current = rng.choices(others, weights=[pi[t] for t in others])[0]
        names.append(current)
    return names


def read_trace(path: str, tasks: list[str], rate_hz: float) -> list[Request]:
    p = Path(path)
    if not p.exists():
        raise AalbertError(f"{path}: no such request trace")
    if not p.is_file():
        raise AalbertError(f"{path}: is not a file (a request trace has one 'task [arrival seconds]' per line)")
    note_read(p)
    # at least 4 bytes a request
    text = read_regular(p, "a request trace", REQUEST_BYTES / 4, "as requests").decode("utf-8", errors="replace")
    requests: list[Request] = []
    for n, line in enumerate(text.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        if not parts:
            raise AalbertError(f"{path}:{n}: expected 'task [arrival seconds]', got only separators")
        if parts[0] not in tasks:
            raise AalbertError(f"{path}:{n}: task '{parts[0]}' is not compiled (tasks: {', '.join(tasks)})")
        try:
            default = requests[-1].arrival + 1.0 / rate_hz if requests else 0.0
            arrival = float(parts[1]) if len(parts) > 1 else default
            if not math.isfinite(arrival):
                raise ValueError
        except ValueError:
            raise AalbertError(f"{path}:{n}: arrival time '{parts[1]}' is not a finite number") from None
        if len(parts) > 2 or arrival < 0 or (requests and arrival < requests[-1].arrival):
            raise AalbertError(f"{path}:{n}: expected 'task [arrival seconds]' with arrivals in order")
        requests.append(Request(parts[0], arrival))
    if not requests:
        raise AalbertError(f"{path}: no requests")
    return requests


@dataclass(frozen=True)
class Served:
    """One request's inference as a policy ran it: its time, energy by `SimResult.energy` key, off-chip bytes."""

    seconds: float
    energy: dict[str, float]
    dram_bytes: float


# serve(request index, request, after a power-up?, seconds it already spent waiting and loading) -> Served
Serve = Callable[[int, "Request", bool, float], Served]


@dataclass
class StreamResult:
    requests: int
    latencies: np.ndarray         # seconds
    energy_pj: float
    span_s: float
    switches: int
    power_ups: int
    dram_bytes: float
    by_component: dict[str, float]  # pJ: pe, sfu, each memory (dynamic), leakage (on chip), dram_background
    queued: np.ndarray = field(default_factory=lambda: np.zeros(0))  # seconds each request waited for the chip

    @property
    def energy_per_inference_pj(self) -> float:
        return self.energy_pj / self.requests

    @property
    def power_mw(self) -> float:
        return self.energy_pj * 1e-12 / self.span_s * 1e3 if self.span_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))


class _Charges:
    """What a stream has cost so far: energy by part (`_part`) and off-chip bytes; and what bringing a task's
    weights on chip takes."""

    def __init__(self, module: Module, target: Target):
        self.module, self.t = module, target
        self.cycle_s = 1.0 / (target.clock_mhz * 1e6)
        self.store = min((m for m in target.memories if m.off_chip), key=lambda m: m.read_pj_per_byte, default=None)
        self.volatile = {m.name for m in target.on_chip if m.volatile}
        self.parts: dict[str, float] = {}
        self.dram = 0.0
        self.actives = actives(module)
        # a stream asks the same few questions thousands of times: their answers, computed once (the charges
        # are still added one by one, in the same order, so the sums are the same to the last bit)
        self._names: dict[str, str] = {}
        self._needed: dict[tuple[str, bool, bool], dict[str, int]] = {}
        self._inferences: dict[tuple[int, bool], tuple[SimResult, list[tuple[str, float]], float]] = {}

    def needed(self, task: str, cold: bool, switch: bool) -> dict[str, int]:
        """Bytes to copy into each on-chip level: the task's staged weights at a switch (and after a power-up
        that erased their swap region), everything resident in volatile memory after a power-up."""
        key = (task, cold, switch)
        if key not in self._needed:
            self._needed[key] = self._bytes_needed(task, cold, switch)
        return dict(self._needed[key])

    def _bytes_needed(self, task: str, cold: bool, switch: bool) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.module.weights.values():
            p = w.placement
            if p is None or not (w.role.shared or task in w.role.tasks):
                continue
            erased = cold and p.level in self.volatile
            if (p.residency == "staged" and (switch or erased)) or (p.residency == "resident" and erased):
                out[p.level] = out.get(p.level, 0) + w.nbytes
        return out

    def merge_counts(self, task: str, cold: bool, switch: bool) -> tuple[list[tuple[str, str, int]], float]:
        """What rewriting the active copies LoRA merges on a task switch (`ir/switch.py`) for `task` does: at a
        switch, and after a power-up erased a copy in volatile memory. The actions in the order they are charged,
        each as (part, price name as `targets.sim.prices` names it, count): the products B A on the PE array, the
        base and pair read where they live and the copy written where it lives; and the cycles they take."""
        actions: list[tuple[str, str, int]] = []
        cycles = 0.0
        c = self.t.compute
        for m in self.actives:
            p = m.active.placement
            if p is None or not (switch or (cold and p.level in self.volatile)):
                continue
            pair = m.pairs.get(task, ())
            if pair:
                a, b = pair
                macs = a.type.shape[0] * a.type.shape[1] * b.type.shape[1]
                actions.append(("pe", f"mac:{c.matmul_format}", macs))
                cycles += macs / c.macs_per_cycle
            for w in (m.base, *pair):
                if w.placement is not None:
                    src = self.t.level(w.placement.level)
                    actions.append((src.name, f"read:{src.name}", w.nbytes))
                    cycles += w.nbytes / src.read_bytes_per_cycle
            dst = self.t.level(p.level)
            actions.append((dst.name, f"write:{dst.name}", m.active.nbytes))
            cycles += m.active.nbytes / dst.write_bytes_per_cycle
        return actions, cycles

    def merge(self, task: str, cold: bool, switch: bool) -> float:
        """Cycles to rewrite the active copies for `task` (`merge_counts`), their energy charged."""
        actions, cycles = self.merge_counts(task, cold, switch)
        for part, price, n in actions:
            kind, _, name = price.partition(":")
            if kind == "mac":
                self.add(part, n * self.t.compute.mac_energy(name))
            elif kind == "read":
                src = self.t.level(name)
                self.add(part, n * src.read_pj_per_byte)
                self.dram += n if src.off_chip else 0
            else:
                self.add(part, n * self.t.level(name).write_pj_per_byte)
        return cycles

    def load(self, into: dict[str, int]) -> float:
        """Cycles to copy `into`'s bytes from the off-chip store, one level after another."""
        store, target = self.store, self.t
        if store is None:
            return 0.0
        return sum(n / min(store.read_bytes_per_cycle, target.level(lvl).write_bytes_per_cycle,
                           target.dma_bytes_per_cycle) for lvl, n in into.items())

    def add(self, key: str, pj: float) -> None:
        if pj:
            name = self._name(key)
            self.parts[name] = self.parts.get(name, 0.0) + pj

    def _name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = _part(key)
        return name

    def idle(self, gap_ns: float, sim: SimResult, cold: bool) -> None:
        """A gap between requests: a power-gated chip (`cold` next) only keeps its DRAM; a powered one idles."""
        static = sim.cold if cold else sim.warm
        for k, v in dram_between(static.dram_idle, gap_ns, asleep=cold).items():
            self.add(k, v)
        if not cold:
            self.add("leakage:idle", sim.warm.idle_mw * gap_ns)

    def bring(self, copies: dict[str, int], cycles: float, sim: SimResult, cold: bool) -> None:
        """Copying `copies` on chip in `cycles`, after a power-up when `cold`."""
        static = sim.cold if cold else sim.warm
        load_ns = cycles * self.cycle_s * 1e9
        self.add("leakage:load", static.idle_mw * load_ns)  # the chip is on while weights arrive
        for name, p in static.dram_idle.items():
            self.add(f"background:{name}:active", p.active_mw * load_ns)
            self.add(f"background:{name}:refresh", p.refresh_mw * load_ns)
        if cold:
            self.add("wakeup:power_up", static.power_up_pj)
        nbytes = sum(copies.values())
        if nbytes and self.store is not None:
            self.add(self.store.name, nbytes * self.store.read_pj_per_byte)
            for lvl, n in copies.items():
                self.add(lvl, n * self.t.level(lvl).write_pj_per_byte)

    def infer(self, sim: SimResult, cold: bool, served: Served | None, nbytes: int) -> None:
        """The inference itself, as simulated or as a policy `served` it, after `nbytes` were copied on chip."""
        if served is None:
            _, charges, off_chip = self._inference(sim, cold)
            parts = self.parts
            for name, pj in charges:  # `add`, inlined: an inference charges dozens of parts, a stream thousands
                parts[name] = parts.get(name, 0.0) + pj
            self.dram += nbytes + off_chip
        else:
            for k, v in served.energy.items():
                self.add(k, v)
            self.dram += nbytes + served.dram_bytes

    def _inference(self, sim: SimResult, cold: bool) -> tuple[SimResult, list[tuple[str, float]], float]:
        """What one inference of `sim` charges, in order, each under its part's name and none of them zero (its
        dynamic energy, then its static energy as after a power-up or on a powered chip), and the bytes it moves
        off chip; the result holds `sim`, whose id keys it."""
        key = (id(sim), cold)
        if key not in self._inferences:
            target = self.t
            static = sim.cold if cold else sim.warm
            charges = [(self._name(k), v) for k, v in (*sim.dynamic.items(), *static.energy.items()) if v]
            off_chip = sum(rw[0] + rw[1] for lvl, rw in sim.traffic.items()
                           if lvl in target.memory_names and target.level(lvl).off_chip)
            self._inferences[key] = (sim, charges, off_chip)
        return self._inferences[key]


def run_stream(requests: list[Request], module: Module, target: Target, results: dict[str, SimResult],
               inferences_per_wakeup: float, serve: Serve | None = None) -> StreamResult:
    charges = _Charges(module, target)
    cycle_s = charges.cycle_s
    latencies, queued = [], []
    current, free_at, switches, ups = None, 0.0, 0, 0
    per_wake = max(1, int(round(inferences_per_wakeup)))
    for i, r in enumerate(requests):
        cold = i % per_wake == 0
        switch = r.task != current
        ups += cold
        switches += switch and current is not None
        copies = charges.needed(r.task, cold, switch) if (cold or switch) else {}
        cycles = charges.load(copies) + (charges.merge(r.task, cold, switch) if (cold or switch) else 0.0)
        sim = results[r.task]
        start = max(r.arrival, free_at)
        queued.append(start - r.arrival)
        if i:  # since the last request: a power-gated chip only keeps its DRAM; a powered one idles
            charges.idle((start - free_at) * 1e9, sim, cold)
        served = None
        if serve is None:
            service = (cycles + sim.cycles) * cycle_s
        else:
            served = serve(i, r, cold, start - r.arrival + cycles * cycle_s)
            service = cycles * cycle_s + served.seconds
        free_at = start + service
        latencies.append(free_at - r.arrival)
        charges.bring(copies, cycles, sim, cold)
        charges.infer(sim, cold, served, sum(copies.values()))
        current = r.task
    if len(requests) > 1:  # the stream repeats: the first request follows an idle gap as every other one does
        period = (requests[-1].arrival - requests[0].arrival) / (len(requests) - 1)
        first = results[requests[0].task]
        charges.idle(max(0.0, requests[-1].arrival + period - free_at) * 1e9, first, True)
    span = free_at - requests[0].arrival
    parts = charges.parts
    return StreamResult(len(requests), np.array(latencies), sum(parts.values()), span, switches, ups, charges.dram,
                        parts, np.array(queued))


def _part(key: str) -> str:
    """The stream breakdown's parts: dynamic energy per component, the chip's leakage (wake-ups included), and
    each DRAM's background."""
    if key.startswith("background:"):
        return "dram_background"
    if key.startswith(("leakage:", "wakeup:")):
        return "leakage"
    return key
