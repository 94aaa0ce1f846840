"""The backend flow on an allocated module: lower every task, simulate it, run a request stream."""

from __future__ import annotations

from dataclasses import dataclass

from ir.module import Module
from targets.lower import lower
from targets.program import Program
from targets.requests import PATTERNS, StreamResult, make_stream, read_trace, run_stream
from targets.sim import SimResult, simulate
from targets.spec import Target


@dataclass
class Backend:
    programs: dict[str, Program]
    results: dict[str, SimResult]
    stream: StreamResult | None


def run_backend(module: Module, target: Target, requests: int = 100, pattern: str = "round-robin",
                burst: int = 8, seed: int = 0) -> Backend:
    programs = {t: lower(module, target, t) for t in module.graphs}
    results = {t: simulate(p, target) for t, p in programs.items()}
    stream = None
    if requests:
        wl = module.allocation.workload if module.allocation is not None else None
        rate = wl.inferences_per_second if wl else 10.0
        wakeup = wl.inferences_per_wakeup if wl else 1.0
        tasks = list(module.graphs)
        if pattern in PATTERNS:
            reqs = make_stream(pattern, tasks, requests, rate, wl.mix if wl else None, burst, seed)
        else:
            reqs = read_trace(pattern, tasks, rate)
        stream = run_stream(reqs, module, target, results, wakeup)
    return Backend(programs, results, stream)
