"""Multi-task workloads: a stream of requests over tasks, simulated end to end.

A request names a task and arrives at a time. Before running it the chip
may have to bring weights on chip: after a power-up (every
`inferences_per_wakeup` requests) every weight the task reads from volatile
on-chip memory is refilled from off-chip storage (RRAM keeps the backbone);
at a task switch, the task's staged weights are copied into the swap region.
Then the task's program runs (its cycles and energy from `targets.sim`).
Requests queue when the chip is busy. Reported: latency (mean, p50, p95,
p99), energy per inference, average power, switches, power-ups and DRAM bytes.

Streams: `round-robin` over the tasks, `random` with the workload's mix
(seeded), `bursts` (runs of `burst` requests of one task), or a trace file
with one request per line: `task [arrival_seconds]` (without a time, one
period of the workload's rate after the previous request).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aalbert.ir.errors import AalbertError
from aalbert.ir.limits import check_bytes
from aalbert.ir.outputs import note_read
from aalbert.ir.module import Module

from .sim import SimResult
from .spec import Target

PATTERNS = ("round-robin", "random", "bursts")
REQUEST_BYTES = 200  # what one simulated request holds in memory, about


@dataclass(frozen=True)
class Request:
    task: str
    arrival: float   # seconds


def make_stream(pattern: str, tasks: list[str], count: int, rate_hz: float, mix: dict[str, float] | None = None,
                burst: int = 8, seed: int = 0) -> list[Request]:
    if pattern not in PATTERNS:
        raise AalbertError(f"unknown request pattern {pattern!r} (round-robin, random, bursts, or a trace file)")
    check_bytes(count * REQUEST_BYTES, f"a stream of {count:,} requests")
    rng = random.Random(seed)
    names: list[str] = []
    if pattern == "round-robin":
        names = [tasks[i % len(tasks)] for i in range(count)]
    elif pattern == "random":
        weights = [(mix or {}).get(t, 1.0) for t in tasks]
        names = rng.choices(tasks, weights=weights, k=count)
    else:
        i = 0
        while len(names) < count:
            names += [tasks[i % len(tasks)]] * burst
            i += 1
        names = names[:count]
    return [Request(t, i / rate_hz) for i, t in enumerate(names)]


def read_trace(path: str, tasks: list[str], rate_hz: float) -> list[Request]:
    p = Path(path)
    if not p.exists():
        raise AalbertError(f"{path}: no such request trace")
    if not p.is_file():
        raise AalbertError(f"{path}: is not a file (a request trace has one 'task [arrival seconds]' per line)")
    note_read(p)
    check_bytes(p.stat().st_size * REQUEST_BYTES / 4, f"{path}'s requests")  # at least 4 bytes a request
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise AalbertError(f"{path}: cannot read ({e.strerror})") from None
    requests = []
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


@dataclass
class StreamResult:
    requests: int
    latencies: np.ndarray         # seconds
    energy_pj: float
    span_s: float
    switches: int
    power_ups: int
    dram_bytes: float
    by_component: dict[str, float]  # pJ: pe, sfu, each memory (dynamic), leakage (all components)

    @property
    def energy_per_inference_pj(self) -> float:
        return self.energy_pj / self.requests

    @property
    def power_mw(self) -> float:
        return self.energy_pj * 1e-12 / self.span_s * 1e3 if self.span_s else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q))


def run_stream(requests: list[Request], module: Module, target: Target, results: dict[str, SimResult],
               inferences_per_wakeup: float) -> StreamResult:
    cycle_s = 1.0 / (target.clock_mhz * 1e6)
    store = min((m for m in target.memories if m.off_chip), key=lambda m: m.read_pj_per_byte, default=None)
    volatile = {m.name for m in target.on_chip if m.volatile}
    leak_mw = target.leakage_mw

    def needed(task: str, cold: bool) -> int:
        total = 0
        for w in module.weights.values():
            p = w.placement
            if p is None or not (w.role.shared or task in w.role.tasks):
                continue
            if p.residency == "staged" or (cold and p.level in volatile and p.residency == "resident"):
                total += w.nbytes
        return total

    def load(nbytes: int, into: str) -> tuple[float, float]:
        if nbytes == 0 or store is None:
            return 0.0, 0.0
        dst = target.level(into)
        bw = min(store.read_bytes_per_cycle, dst.write_bytes_per_cycle, target.dma_bytes_per_cycle)
        return nbytes / bw, nbytes * (store.read_pj_per_byte + dst.write_pj_per_byte)

    onchip = next((m.name for m in target.on_chip if m.volatile), target.memories[0].name)
    latencies, energy, dram = [], 0.0, 0.0
    parts: dict[str, float] = {}

    def add(name: str, pj: float) -> None:
        parts[name] = parts.get(name, 0.0) + pj
    current, free_at, switches, ups = None, 0.0, 0, 0
    per_wake = max(1, int(round(inferences_per_wakeup)))
    for i, r in enumerate(requests):
        cold = i % per_wake == 0
        switch = r.task != current
        ups += cold
        switches += switch and current is not None
        nbytes = needed(r.task, cold) if (cold or switch) else 0
        cycles, pj = load(nbytes, onchip)
        sim = results[r.task]
        start = max(r.arrival, free_at)
        if not cold and i:  # powered on since the last request: it leaked while idle
            idle = leak_mw * (start - free_at) * 1e9
            energy += idle
            add("leakage", idle)
        service = (cycles + sim.cycles) * cycle_s
        free_at = start + service
        latencies.append(free_at - r.arrival)
        load_leak = leak_mw * cycles * cycle_s * 1e9  # mW x ns = pJ
        energy += pj + sim.total_pj + load_leak
        add("leakage", load_leak)
        if pj and store is not None:
            dst = target.level(onchip)
            add(store.name, nbytes * store.read_pj_per_byte)
            add(onchip, nbytes * dst.write_pj_per_byte)
        for k, v in sim.energy.items():
            add("leakage" if k.startswith("leakage:") else k, v)
        dram += nbytes + sum(rw[0] + rw[1] for lvl, rw in sim.traffic.items()
                             if lvl in target.memory_names and target.level(lvl).off_chip)
        current = r.task
    span = free_at - requests[0].arrival
    return StreamResult(len(requests), np.array(latencies), energy, span, switches, ups, dram, parts)
