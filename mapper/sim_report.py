"""Reports of the simulated programs: per task, by op kind, by memory level, and the request stream."""

from __future__ import annotations

import json

from ir.module import Module
from ir.registry import get_op
from targets.requests import StreamResult
from targets.sim import SimResult
from targets.spec import Target

from .summary import table


def _mj(pj: float) -> str:
    return f"{pj / 1e9:.3f} mJ"


def task_lines(results: dict[str, SimResult], target: Target) -> list[str]:
    rows = []
    for task, r in results.items():
        pe = r.busy.get("pe", 0.0) / r.cycles if r.cycles else 0.0
        dram = sum(rw[0] + rw[1] for lvl, rw in r.traffic.items() if target.level(lvl).off_chip)
        rows.append([task, f"{r.cycles / 1e6:.2f} M", f"{r.seconds * 1e3:.2f} ms", _mj(r.total_pj),
                     f"{r.power_mw:.1f} mW", f"{100 * pe:.0f} %", f"{dram:,.0f}"])
    lines = [f"simulation on {target.name} at {target.clock_mhz:g} MHz (one inference per task)"]
    lines += table(["task", "cycles", "latency", "energy", "power", "PE busy", "DRAM bytes"], rows, "lrrrrrr")
    return lines


def breakdown_lines(module: Module, r: SimResult) -> list[str]:
    """Energy of one task's inference by op kind, and by component (dynamic and leakage)."""
    kinds: dict[str, float] = {}
    for op, pj in r.by_op.items():
        kind = get_op(op).kind
        kinds[kind] = kinds.get(kind, 0.0) + pj
    total = r.total_pj
    lines = [f"energy of one '{r.task}' inference: {_mj(total)}"]
    rows = [[k, _mj(v), f"{100 * v / total:.1f} %"] for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]
    leak = sum(v for k, v in r.energy.items() if k.startswith("leakage:"))
    rows.append(["leakage (all components)", _mj(leak), f"{100 * leak / total:.1f} %"])
    lines += table(["by op kind", "energy", "share"], rows, "lrr")
    lines.append("")
    rows = []
    for name in sorted({k.split(":", 1)[-1] for k in r.energy}):
        dyn = r.energy.get(name, 0.0)
        lk = r.energy.get(f"leakage:{name}", 0.0)
        rd, wr = r.traffic.get(name, [0.0, 0.0])
        rows.append([name, _mj(dyn), _mj(lk), f"{rd:,.0f}", f"{wr:,.0f}"])
    lines += table(["by component", "dynamic", "leakage", "bytes read", "bytes written"], rows, "lrrrr")
    return lines


def stream_lines(s: StreamResult, pattern: str, rate: float, wakeup: float) -> list[str]:
    return [f"request stream: {s.requests} {pattern} requests at {rate:g}/s, {wakeup:g} per power-up: "
            f"{s.switches} task switches, {s.power_ups} power-ups",
            f"latency mean {s.latencies.mean() * 1e3:.2f} ms, p50 {s.percentile(50) * 1e3:.2f}, "
            f"p95 {s.percentile(95) * 1e3:.2f}, p99 {s.percentile(99) * 1e3:.2f} ms; "
            f"energy per inference {_mj(s.energy_per_inference_pj)}; average power {s.power_mw:.1f} mW; "
            f"DRAM {s.dram_bytes / s.requests:,.0f} bytes per inference"]


def sim_json(results: dict[str, SimResult], stream: StreamResult | None) -> str:
    data = {"tasks": {t: {"cycles": r.cycles, "seconds": r.seconds, "energy_pj": r.energy, "macs": r.macs,
                          "busy_cycles": r.busy, "traffic_bytes": r.traffic, "by_op_pj": r.by_op,
                          "by_layer_pj": r.by_layer}
                      for t, r in results.items()}}
    if stream is not None:
        data["stream"] = {"requests": stream.requests, "latency_s": {
            "mean": float(stream.latencies.mean()), "p50": stream.percentile(50), "p95": stream.percentile(95),
            "p99": stream.percentile(99)}, "energy_per_inference_pj": stream.energy_per_inference_pj,
            "power_mw": stream.power_mw, "switches": stream.switches, "power_ups": stream.power_ups,
            "dram_bytes": stream.dram_bytes}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
