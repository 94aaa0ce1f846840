"""Reports of early exit and DVFS: what an inference costs leaving at each off-ramp and operating point, where
the stream's sentences left, and every policy's latency, deadline misses and energy (text and JSON)."""

from __future__ import annotations

from aalbert.mapper.backend import Backend
from aalbert.mapper.reports.summary import count, table
from aalbert.targets.runtime.exit_policies import POLICIES


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def _mj(pj: float) -> str:
    return f"{pj / 1e9:.3f} mJ"


def _after(layer: int, last: bool) -> str:
    return f"end (layer {layer})" if last else f"layer {layer}"


def exit_points(backend: Backend, task: str, cold: bool) -> list[dict]:
    """For each exit point of `task`: the layer, and cycles, seconds and energy of an inference leaving there at
    each operating point."""
    costs = backend.exits
    layers = costs.layers(task)
    rows = []
    for cut, layer in enumerate(layers):
        points = []
        for q, p in enumerate(costs.points):
            seconds, energy, dram = costs.upto(task, q, cut, cold)
            points.append({"voltage_v": p.voltage_v, "frequency_mhz": p.frequency_mhz,
                           "cycles": costs.timeline(task, q).ends[cut], "seconds": seconds,
                           "energy_pj": sum(energy.values()), "dram_bytes": dram})
        rows.append({"after_layer": layer, "end": cut == len(layers) - 1, "points": points})
    return rows


def exit_lines(backend: Backend, task: str, cold: bool) -> list[str]:
    costs = backend.exits
    rows = exit_points(backend, task, cold)
    ramps = len(rows) - 1
    lines = [f"early exit: {count(ramps, 'off-ramp')} (exit tests after layers "
             f"{rows[0]['after_layer']}-{rows[-2]['after_layer']}); one '{task}' inference leaving at each, "
             f"{'after a power-up' if cold else 'on a powered chip'}, at each operating point "
             f"({costs.target.dvfs.frequency_source if costs.target.dvfs else 'the target lists no [dvfs] points'})"]
    header = ["exit after", "cycles"] + [p.label() for p in costs.points]
    body = []
    for r in rows:
        body.append([_after(r["after_layer"], r["end"]), f"{r['points'][0]['cycles'] / 1e6:.2f} M"]
                    + [f"{_ms(p['seconds'])}, {_mj(p['energy_pj'])}" for p in r["points"]])
    return lines + table(header, body, "lr" + "r" * len(costs.points))


def policy_lines(backend: Backend, target_ms: float | None) -> list[str]:
    policies = backend.policies
    n = len(backend.requests)
    lines = ["where the stream's sentences leave:"]
    groups: dict[tuple, list[str]] = {}
    for task, s in backend.exit_sources.items():
        groups.setdefault((s.shares, s.how, s.threshold, s.source), []).append(task)
    for (shares, how, threshold, source), tasks in groups.items():
        layers = backend.exits.layers(tasks[0])
        mean = sum(sh * layer for sh, layer in zip(shares, layers))
        shown = ", ".join(f"{layer}: {100 * sh:.1f} %" for sh, layer in zip(shares, layers))
        lines.append(f"  {', '.join(tasks) if len(tasks) < len(backend.exit_sources) else 'every task'}: {how}"
                     f"{f', threshold {threshold:g} nats' if threshold is not None else ''}; mean exit layer "
                     f"{mean:.2f} of {layers[-1]} (share leaving after each layer: {shown})"
                     + (f"; {source}" if source else ""))
    lines.append("")
    target = f"latency target {target_ms:g} ms" if target_ms is not None else \
        "no latency target (give latency_target_ms in the workload): predict, then scale runs at the top point"
    lines.append(f"early exit and DVFS over the stream's {count(n, 'request')}, {target}")
    rows = []
    for name, p in policies.items():
        s = p.stream
        misses = "-" if p.misses is None else f"{p.misses} of {n}"
        used = ", ".join(f"{label.split(',')[0]}: {k}" for label, k in sorted(p.points.items(), reverse=True))
        rows.append([POLICIES[name], _ms(float(s.latencies.mean())), _ms(s.percentile(99)), misses,
                     _mj(s.energy_per_inference_pj), f"{p.mean_layers:.2f}", str(p.forced), str(p.run_on), used])
    lines += table(["policy", "mean latency", "p99 latency", "deadline misses", "energy per inference", "layers run",
                    "forced exits", "run-ons", "operating points (sentences)"], rows, "lrrrrrrrl")
    p = policies.get("predict-scale")
    if p is not None and p.predicted:
        lines.append(f"exits predicted for {count(p.predicted, 'sentence')} (those not leaving at the first off-ramp): "
                     f"{p.exact} exactly, {p.under} too early (forced exits, or run-ons), {p.over} too late")
    return lines


def exit_json(backend: Backend, task: str, cold: bool, target_ms: float | None) -> dict[str, object]:
    """The same figures for the report JSON."""
    costs = backend.exits
    dvfs = costs.target.dvfs
    data: dict[str, object] = {
        "task": task, "after_power_up": cold, "exit_points": exit_points(backend, task, cold),
        "operating_points": [{"voltage_v": p.voltage_v, "frequency_mhz": p.frequency_mhz} for p in costs.points]}
    if dvfs is not None:
        data["dvfs"] = {"rail": list(dvfs.rail), "regulator": dvfs.regulator, "leakage_per_volt": dvfs.leakage_per_volt,
                        "transition_ns": dvfs.transition_ns, "transition_pj": dvfs.transition_pj,
                        "frequencies": dvfs.frequency_source}
    if backend.policies is not None:
        data["latency_target_s"] = None if target_ms is None else target_ms / 1e3
        data["sentences"] = {t: {"how": s.how, "threshold": s.threshold, "shares": list(s.shares),
                                 "source": s.source} for t, s in backend.exit_sources.items()}
        policies: dict[str, object] = {}
        data["policies"] = policies
        for name, p in backend.policies.items():
            s = p.stream
            policies[name] = {
                "label": POLICIES[name], "requests": s.requests,
                "latency_s": {"mean": float(s.latencies.mean()), "p50": s.percentile(50), "p95": s.percentile(95),
                              "p99": s.percentile(99), "max": float(s.latencies.max())},
                "deadline_misses": p.misses, "energy_per_inference_pj": s.energy_per_inference_pj,
                "power_mw": s.power_mw, "mean_layers": p.mean_layers, "forced_exits": p.forced,
                "run_ons": p.run_on, "predictions": {"sentences": p.predicted, "exact": p.exact, "early": p.under,
                                                     "late": p.over},
                "operating_points": dict(sorted(p.points.items())), "energy_by_component_pj": s.by_component}
    return data
