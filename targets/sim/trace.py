"""A Chrome/Perfetto trace of a simulated program: one track per unit.

Open the file in ui.perfetto.dev (or chrome://tracing). Every instruction is
a complete event ("ph": "X") on its unit's track, with its start and
duration in microseconds at the target's clock. Several programs (every
task's) go in one trace as one process each, each from time 0.
"""

from __future__ import annotations

import json

from aalbert.targets.codegen.program import Program
from aalbert.targets.sim.timing import SimResult


def chrome_trace(program: Program, sim: SimResult, pid: int = 1) -> dict:
    us_per_cycle = 1.0 / sim.clock_mhz
    units = sorted({i.unit for i in program.instrs}, key=lambda u: (u != "pe", u != "sfu", u))
    tid = {u: n for n, u in enumerate(units, start=1)}
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
               "args": {"name": f"{program.task} on {program.target}"}}]
    events += [{"name": "thread_name", "ph": "M", "pid": pid, "tid": tid[u], "args": {"name": u}} for u in units]
    for ins in program.instrs:
        start, finish = sim.start[ins.id], sim.finish[ins.id]
        events.append({"name": f"{ins.kind} {ins.layer}", "cat": ins.kind, "ph": "X", "pid": pid, "tid": tid[ins.unit],
                       "ts": round(start * us_per_cycle, 6), "dur": round((finish - start) * us_per_cycle, 6),
                       "args": {"id": ins.id, "op": ins.op, "cycles": round(finish - start, 3)}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}


def trace_json(program: Program, sim: SimResult) -> str:
    return json.dumps(chrome_trace(program, sim), sort_keys=True) + "\n"


def traces_json(runs: list[tuple[Program, SimResult]]) -> str:
    """One trace of several programs (a process each, pid 1, 2, ... in order)."""
    events = [e for pid, (program, sim) in enumerate(runs, start=1)
              for e in chrome_trace(program, sim, pid)["traceEvents"]]
    return json.dumps({"traceEvents": events, "displayTimeUnit": "ns"}, sort_keys=True) + "\n"
