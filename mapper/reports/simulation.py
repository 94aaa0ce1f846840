"""Reports of the simulated programs: per task, by op kind, by memory level, the roofline, the request stream."""

from __future__ import annotations

import json

from aalbert.ir.module import Module
from aalbert.ir.registry import get_op
from aalbert.mapper.reports.summary import table
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.requests import StreamResult
from aalbert.targets.sim.roofline import LayerBound
from aalbert.targets.sim.timing import SimResult, component


def _mj(pj: float) -> str:
    return f"{pj / 1e9:.3f} mJ"


def _energy(pj: float) -> str:
    """An energy in the unit that shows it: mJ, uJ or nJ."""
    if abs(pj) >= 1e8 or pj == 0:
        return _mj(pj)
    return f"{pj / 1e6:.3f} uJ" if abs(pj) >= 1e5 else f"{pj / 1e3:.3f} nJ"


def task_lines(results: dict[str, SimResult], target: Target) -> list[str]:
    rows = []
    for task, r in results.items():
        pe = r.busy.get("pe", 0.0) / r.cycles if r.cycles else 0.0
        dram = sum(rw[0] + rw[1] for lvl, rw in r.traffic.items()
                   if lvl in target.memory_names and target.level(lvl).off_chip)
        rows.append([task, f"{r.cycles / 1e6:.2f} M", f"{r.seconds * 1e3:.2f} ms", _mj(r.total_pj),
                     f"{r.power_mw:.1f} mW", f"{100 * pe:.0f} %", f"{dram:,.0f}"])
    lines = [f"simulation on {target.name} at {target.clock_mhz:g} MHz (one inference per task)"]
    lines += table(["task", "cycles", "latency", "energy", "power", "PE busy", "DRAM bytes"], rows, "lrrrrrr")
    return lines


def _share(part: float, total: float) -> str:
    return f"{100 * part / total:.1f} %" if total else "-"


def breakdown_lines(module: Module, r: SimResult, target: Target) -> list[str]:
    """Energy of one task's inference by op kind, by component (dynamic and static), the static energy by
    memory level and power state, and each DRAM's background."""
    kinds: dict[str, float] = {}
    for op, pj in r.by_op.items():
        kind = get_op(op).kind.value
        kinds[kind] = kinds.get(kind, 0.0) + pj
    total = r.total_pj
    lines = [f"energy of one '{r.task}' inference: {_mj(total)} (memories: {target.memory_models or 'as given'})"]
    rows = [[k, _mj(v), _share(v, total)] for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]
    static = sum(v for k, v in r.energy.items() if ":" in k)
    rows.append(["static (leakage, wake-ups, DRAM background)", _mj(static), _share(static, total)])
    lines += table(["by op kind", "energy", "share"], rows, "lrr")
    lines.append("")
    rows = []
    names = ["pe", "sfu"] + [m.name for m in target.memories]
    for name in names:
        dyn = r.energy.get(name, 0.0)
        st = sum(v for k, v in r.energy.items() if ":" in k and component(k) == name)
        rd, wr = r.traffic.get(name, [0.0, 0.0])
        rows.append([name, _mj(dyn), _mj(st), f"{rd:,.0f}", f"{wr:,.0f}"])
    lines += table(["by component", "dynamic", "static", "bytes read", "bytes written"], rows, "lrrrr")
    return lines + [""] + state_lines(r, target)


STATES = ("on", "retention", "off")


def state_lines(r: SimResult, target: Target) -> list[str]:
    """Static energy per memory level and power state: bank-time share and energy, banks by what they hold."""
    static = r.static
    span = r.cycles * 1000.0 / target.clock_mhz
    rows = []
    for m in target.on_chip:
        cls = static.banks.get(m.name, {})
        held = f"{m.banks}: {cls.get('accessed', 0)} accessed, {cls.get('held', 0)} holding data, " \
               f"{cls.get('empty', 0)} empty"
        for state in STATES:
            t = static.bank_time.get((m.name, state), 0.0)
            if not t:
                continue
            frac = 1.0 if state == "on" else (m.power.retention if state == "retention" else m.power.off)
            rows.append([m.name, held, state, _share(t, span * m.banks), f"{100 * frac:.3g} %",
                         _energy(r.energy.get(f"leakage:{m.name}:{state}", 0.0))])
            held = ""
        wake = r.energy.get(f"wakeup:{m.name}", 0.0)
        if wake:
            rows.append([m.name, "", "wake-ups", "", "", _energy(wake)])
    lines = [f"static energy by memory level and power state (gating: "
             f"{', '.join(f'{m.name} {m.power_gating}' for m in target.on_chip)}; "
             f"{'after a power-up' if r.after_power_up else 'on a powered chip'})"]
    lines += table(["level", "banks", "state", "bank-time", "leakage kept", "energy"], rows, "llrrrr")
    for m in target.memories:
        if m.dram is None:
            continue
        parts = {k.rsplit(":", 1)[1]: v for k, v in r.energy.items() if k.startswith(f"background:{m.name}:")}
        if m.name not in static.dram_idle:
            lines.append(f"DRAM background of {m.name}: none (it holds nothing this chip needs, so it is off)")
            continue
        detail = ", ".join(f"{k.replace('_', ' ')} {_energy(v)}" for k, v in parts.items()) or "no background power"
        lines.append(f"DRAM background of {m.name}: {_energy(sum(parts.values()))} ({detail}); {m.dram.label}")
    return lines


def stream_lines(s: StreamResult, pattern: str, rate: float, wakeup: float) -> list[str]:
    return [f"request stream: {s.requests} {pattern} requests at {rate:g}/s, {wakeup:g} per power-up: "
            f"{s.switches} task switches, {s.power_ups} power-ups",
            f"latency mean {s.latencies.mean() * 1e3:.2f} ms, p50 {s.percentile(50) * 1e3:.2f}, "
            f"p95 {s.percentile(95) * 1e3:.2f}, p99 {s.percentile(99) * 1e3:.2f} ms; "
            f"energy per inference {_mj(s.energy_per_inference_pj)}; average power {s.power_mw:.1f} mW; "
            f"DRAM {s.dram_bytes / s.requests:,.0f} bytes per inference"]


def sim_json(results: dict[str, SimResult], stream: StreamResult | None) -> str:
    data: dict[str, object] = {"tasks": {
        t: {"cycles": r.cycles, "seconds": r.seconds, "energy_pj": r.energy, "macs": r.macs, "busy_cycles": r.busy,
            "traffic_bytes": r.traffic, "by_op_pj": r.by_op, "by_layer_pj": r.by_layer}
        for t, r in results.items()}}
    if stream is not None:
        data["stream"] = {"requests": stream.requests, "latency_s": {
            "mean": float(stream.latencies.mean()), "p50": stream.percentile(50), "p95": stream.percentile(95),
            "p99": stream.percentile(99)}, "energy_per_inference_pj": stream.energy_per_inference_pj,
            "power_mw": stream.power_mw, "switches": stream.switches, "power_ups": stream.power_ups,
            "dram_bytes": stream.dram_bytes}
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def roofline_lines(bounds: list[LayerBound], task: str, top: int = 10) -> list[str]:
    """The report: totals, then the layers that take longest; repeats of one layer (ALBERT applies its
    layer twelve times) are one row, with their mean achieved cycles."""
    achieved = sum(b.achieved for b in bounds)
    lines = [f"roofline of one '{task}' inference, per layer (cycles; layers run one after another, so they add up "
             f"to the inference): achieved {achieved:,.0f}, compute-bound {sum(b.compute for b in bounds):,.0f}, "
             f"memory-bound {sum(b.memory for b in bounds):,.0f}"]
    groups: dict[tuple, list[LayerBound]] = {}
    for b in bounds:
        groups.setdefault((b.op, b.unit, b.shape, b.ops, b.compute, b.memory, b.level), []).append(b)
    ranked = sorted(groups.values(), key=lambda g: (-sum(b.achieved for b in g), g[0].layer))[:top]
    rows = []
    for g in ranked:
        b = g[0]
        mean = sum(x.achieved for x in g) / len(g)
        at_roof = max(b.compute, b.memory) / mean if mean else 1.0
        rows.append([f"{b.op} {b.shape}", str(len(g)), b.unit, f"{mean:,.0f}", f"{b.compute:,.0f}",
                     f"{b.memory:,.0f}", b.bound, f"{100 * at_roof:.0f} %"])
    lines += table(["layer", "times", "unit", "achieved", "compute-bound", "memory-bound", "bound", "at roof"],
                   rows, "lrlrrrlr")
    return lines


def roofline_figure(bounds: list[LayerBound], target: Target, path, title: str, fmt: str = "png") -> None:
    """Achieved ops per cycle against operational intensity (ops per byte of the binding level), log-log,
    under the compute roofs of the PE array and the SFU and one bandwidth roof per memory level."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "aalbert"
    pts = [b for b in bounds if b.ops > 0 and b.level_bytes > 0 and b.achieved > 0]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    xs = [b.ops / b.level_bytes for b in pts] or [1.0]
    lo, hi = min(xs) / 4, max(xs) * 4
    peaks = {"pe": target.compute.macs_per_cycle, "sfu": target.sfu.elements_per_cycle}
    for name, peak in peaks.items():
        ax.plot([lo, hi], [peak, peak], color="black", linestyle="-" if name == "pe" else ":", linewidth=1)
        ax.annotate(f"{name} peak {peak:g}/cycle", (hi, peak), ha="right", va="bottom", fontsize=8)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(target.memories):
        bw = m.read_bytes_per_cycle
        ax.plot([lo, hi], [lo * bw, hi * bw], color=colors[i % len(colors)], linestyle="--", linewidth=1,
                label=f"{m.name} bandwidth {bw:g} B/cycle")
    for unit, marker, color in (("pe", "o", "black"), ("sfu", "s", "#888888")):
        sel = [b for b in pts if b.unit == unit]
        if sel:
            ax.scatter([b.ops / b.level_bytes for b in sel], [b.ops / b.achieved for b in sel], marker=marker,
                       s=18, alpha=0.7, color=color, label=f"{unit} layers", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    top = max(peaks.values()) * 4
    bottom = min([b.ops / b.achieved for b in pts] + [1.0]) / 4
    ax.set_ylim(bottom, top)
    ax.set_xlabel("operational intensity (MACs or SFU element-scans per byte of the binding memory level)")
    ax.set_ylabel("achieved MACs or element-scans per cycle")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
    plt.close(fig)
