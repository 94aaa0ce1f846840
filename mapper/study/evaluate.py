"""Evaluating one configuration end to end: model, compression, target, workload -> metrics.

Shared by `aalbert-study` and `aalbert-sweep`. A `ModelSpec` names a model
family built from the example zoo; `prepared` builds it once for its largest
task count, canonicalizes, shares and compresses it (cached per process),
and `subset` keeps the first N tasks with the roles found over all of them
(a task's adapters stay task-specific when it runs alone). `evaluate`
plans, allocates (spilling allowed, so DRAM traffic is measured rather
than refused), lowers, simulates every task and a request stream, and
returns flat, JSON-friendly metrics. Weights go off chip only when they do
not fit (as `--spill` after a refusal). `mapper.chips` sizes a chip to a
configuration. A model with off-ramps under a workload that says where
sentences leave is measured under every early-exit policy (`<policy>_*`
metrics), its main metrics being EdgeBERT's predict-then-scale.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from typing import cast

from aalbert.errors import OptionError
from aalbert.ir.encoding import Role
from aalbert.ir.formats import F32, parse_format
from aalbert.ir.module import Module
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.passes.allocation.record import Allocation
from aalbert.passes.base import PassManager
from aalbert.passes.compress import BUILTIN_POLICIES, Policy, Rule, load_policy
from aalbert.passes.pipelines import DEFAULT, Placement, compile_passes, compress
from aalbert.targets.hardware.spec import Target, target_dict, target_from_dict, target_text
from aalbert.targets.sim.workload import Workload, default_workload


@dataclass(frozen=True)
class ModelSpec:
    family: str = "adapter-albert"
    tasks: int = 8
    size: str = "base"
    bottleneck: int | None = None
    adapter_placement: str = "shared"
    policy: str = "edgebert"
    format: str | None = None          # replaces the number format of every rule of the policy
    seq_len: int = 128
    seed: int = 0
    off_ramps: str | None = None       # an exit classifier after every layer but the last (classifier | highway)


def policy_for(spec: ModelSpec) -> Policy:
    policy = load_policy(spec.policy) if spec.policy not in BUILTIN_POLICIES else BUILTIN_POLICIES[spec.policy]
    if spec.format is None:
        return policy
    fmt = parse_format(spec.format)
    fmt = None if fmt == F32 else fmt
    rules = tuple(dataclasses.replace(r, format=fmt) for r in policy.rules) or (Rule(format=fmt),)
    return Policy(f"{policy.name}/{spec.format}", rules)


FAMILIES_KEPT = 2  # prepared families a process keeps: the study's two at a time (base-size modules are large)


def prepared(spec: ModelSpec, all_tasks: int | None = None) -> Module:
    """The family with `all_tasks` tasks (default spec.tasks), canonical, shared and compressed."""
    n = max(spec.tasks, all_tasks or spec.tasks)
    return subset(_family(dataclasses.replace(spec, tasks=n)), spec.tasks)


@functools.lru_cache(maxsize=FAMILIES_KEPT)
def _family(spec: ModelSpec) -> Module:
    example = ExampleSpec(spec.family, spec.tasks, spec.size, spec.bottleneck, spec.adapter_placement, seed=spec.seed,
                          off_ramps=spec.off_ramps)
    module = load_example(example, DimSpec(1, spec.seq_len))
    return PassManager(compile_passes(module, DEFAULT, policy_for(spec))).run(module)


def subset(module: Module, n: int) -> Module:
    """The first n tasks; weights the others alone read are dropped; roles keep their kind."""
    keep = list(module.graphs)[:n]
    out = Module()
    used = {node.attrs["name"].name for t in keep for node in module.graphs[t].nodes if node.op == "weight"}
    for w in module.weights.values():
        if w.name not in used:
            continue
        role = w.role
        if role is not None and not role.shared:
            role = Role.of(False, tuple(t for t in role.tasks if t in keep), role.uses, role.kind)
        new = copy.copy(w)
        new.role, new.placement = role, None
        out.insert_weight(new)
    for t in keep:
        out.add_graph(module.graphs[t].copy())
    return out


def place(module: Module, target: Target, workload: Workload, spill: bool) -> tuple[Module, Allocation]:
    """A copy of `module` placed on `target` by the `place` pipeline, and the allocator's record."""
    manager = PassManager(Placement(target, workload, spill=spill).passes(), verify_each=False)
    placed = manager.run(module.copy())
    return placed, manager.analyses.get(Allocation)


def place_or_spill(module: Module, target: Target, workload: Workload) -> tuple[Module, Allocation, bool]:
    """`place`, with weights off chip only when they do not fit (as a user would ask with --spill after a
    refusal): the placed copy, the allocator's record, and whether it spilled."""
    try:
        placed, a = place(module, target, workload, spill=False)
        return placed, a, False
    except OptionError:
        placed, a = place(module, target, workload, spill=True)
        return placed, a, True


def decisions(backend) -> tuple[str, str]:
    """Digests of what the compiler decided for a backend's module and programs: (where every weight and
    activation arena lies and how every node is mapped, every task's power instructions). Two compiles that
    agree on both ran the same program."""
    module = backend.module
    weights = [(w.name, repr(w.placement)) for w in sorted(module.weights.values(), key=lambda w: w.name)]
    graphs = [(t, repr(g.arena), [repr(n.mapping) for n in g.nodes]) for t, g in module.graphs.items()]
    power = [(t, [(i.id, i.level, i.bank, i.state, i.deps) for i in backend.program(t).instrs if i.kind == "power"])
             for t in backend.results]
    return _digest((weights, graphs)), _digest(power)


def _digest(value) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def override_target(spec: str, overrides: dict[str, object], missing_ok: bool = False) -> Target:
    """A target with some numbers changed: keys like `compute.array`, `memory.sram.capacity_bytes`."""
    data, label = overridden_dict(spec, overrides, missing_ok)
    return target_from_dict(data, label)


def overridden_dict(spec: str, overrides: dict[str, object], missing_ok: bool = False) -> tuple[dict, str]:
    """The tables of target `spec` with `overrides` applied, and a label naming them; with `missing_ok`, a
    `memory.<level>.<key>` for a level the target lacks is skipped."""
    text, where = target_text(spec)
    data = target_dict(text, where)
    for key, value in overrides.items():
        parts = key.split(".")
        if parts == ["compute", "array"]:
            # a square array of value x value MACs; its area and leakage scale with the MAC count
            c, n = data["compute"], cast(int, value)  # an int, as sweeps check
            scale = n * n / (c["rows"] * c["cols"])
            c.update(rows=n, cols=n, macs_per_cycle=n * n,
                     area_mm2=c.get("area_mm2", 0.0) * scale, leakage_mw=c.get("leakage_mw", 0.0) * scale)
        elif parts[0] == "memory" and len(parts) == 3:
            level = next((m for m in data.get("memory", []) if m.get("name") == parts[1]), None)
            if level is None:
                if missing_ok:
                    continue
                raise OptionError(f"{where} has no memory level '{parts[1]}' (in '{key}')")
            level[parts[2]] = value
        elif len(parts) == 2 and isinstance(data.get(parts[0]), dict):
            data[parts[0]][parts[1]] = value
        else:
            raise OptionError(f"cannot set '{key}' in {where}")
    label = where + "".join(f", {k} = {v}" for k, v in sorted(overrides.items()))
    return data, label


def evaluate(module: Module, target: Target, workload: Workload | None = None, requests: int = 50,
             exit_sweep: tuple[float, ...] = (), counted: dict | None = None) -> dict:
    """Place, lower, simulate; metrics of one configuration (with `exit_sweep`, every early-exit policy again at
    each of those fractions of the workload's latency target: `target_<ms>ms_<policy>_*`; into `counted`, every
    task's counts and the target's prices: `targets.sim.counts`, for re-pricing)."""
    wl = workload or default_workload(module.graphs)
    module, a, spilled = place_or_spill(module, target, wl)
    backend = run_backend(module, target, wl, Stream(requests))
    if counted is not None:
        from aalbert.targets.sim.counts import backend_counts
        from aalbert.targets.sim.prices import prices_of

        counted.update(counts=backend_counts(backend), prices=prices_of(target), decisions=decisions(backend))
    tasks = list(module.graphs)
    on_chip = {m.name for m in target.on_chip}
    used = sum(b for lvl, b in a.usage.items() if lvl in on_chip)
    policies = backend.policies or {}
    stream = policies["predict-scale"].stream if policies else backend.stream
    single = [r.seconds * 1e3 for r in backend.results.values()]
    metrics = {
        "tasks": len(tasks),
        "clock_mhz": target.clock_mhz,
        "memory_models": target.memory_models,
        "weight_bytes": sum(w.nbytes for w in module.weights.values()),
        "shared_bytes": sum(w.nbytes for w in module.weights.values() if w.role.shared),
        "on_chip_used_bytes": used,
        "on_chip_capacity_bytes": sum(m.capacity_bytes for m in target.on_chip),
        "area_mm2": target.area_mm2,
        "leakage_mw": target.leakage_mw,
        "dram_bytes_per_inference": a.dram_bytes_per_inference,
        "dram_bytes_per_switch": sum(wl.mix[t] * b for t, b in a.dram_bytes_per_switch.items()),
        "dram_bytes_per_power_up": sum(wl.mix[t] * b for t, b in a.dram_bytes_per_cold_start.items()),
        "latency_ms": sum(single) / len(single),
        "stream_latency_mean_ms": float(stream.latencies.mean() * 1e3),
        "stream_latency_p99_ms": stream.percentile(99) * 1e3,
        "energy_mj": stream.energy_per_inference_pj / 1e9,
        "power_mw": stream.power_mw,
        "allocation_gap": a.solution.gap,
        "allocation_mj": a.solution.objective / 1e9,
        "spilled": spilled,
        "fits_on_chip": a.dram_bytes_per_inference == 0 and all(b == 0 for b in a.dram_bytes_per_switch.values()),
    }
    for name, pj in sorted(stream.by_component.items()):
        metrics[f"energy_{name}_mj"] = pj / stream.requests / 1e9
    if backend.exits is not None:
        metrics["layers"] = backend.exits.layers(tasks[0])[-1]
        metrics["latency_target_ms"] = wl.latency_target_ms
    first = backend.results[tasks[0]]
    metrics["banks_accessed"] = sum(c.get("accessed", 0) for c in first.static.banks.values())
    if "predict-scale" in policies:
        p = policies["predict-scale"]
        metrics.update({"exit_requests": len(backend.requests), "exit_predictions": p.predicted,
                        "exit_predicted_early": p.under, "exit_predicted_late": p.over})
    for name, p in policies.items():
        key = name.replace("-", "_")
        s = p.stream
        metrics.update({f"{key}_energy_mj": s.energy_per_inference_pj / 1e9,
                        f"{key}_latency_mean_ms": float(s.latencies.mean() * 1e3),
                        f"{key}_latency_p99_ms": s.percentile(99) * 1e3, f"{key}_deadline_misses": p.misses,
                        f"{key}_layers": p.mean_layers, f"{key}_forced_exits": p.forced, f"{key}_run_ons": p.run_on,
                        f"{key}_points": "; ".join(f"{k}: {v}" for k, v in sorted(p.points.items(), reverse=True))})
    if policies and exit_sweep and wl.latency_target_ms is not None:
        metrics.update(target_sweep(backend, wl, exit_sweep))
    return metrics


def target_sweep(backend, wl: Workload, fractions: tuple[float, ...]) -> dict:
    """Every early-exit policy's energy, deadline misses, forced exits and run-ons at each fraction of the
    workload's latency target (the same requests and sentences: only the target and so the points differ)."""
    from aalbert.targets.runtime.exit_policies import PREDICTING, run_policies

    out: dict[str, object] = {"exit_sweep_ms": ";".join(f"{wl.latency_target_ms * f:g}" for f in fractions)}
    for f in fractions:
        ms = wl.latency_target_ms * f
        # the policies that do not predict run every sentence the same way whatever the target
        fixed = {n: dataclasses.replace(p, target_s=ms / 1e3) for n, p in backend.policies.items()
                 if n not in PREDICTING}
        swept = run_policies(backend.requests, backend.exits, backend.sentences, wl.inferences_per_wakeup, ms,
                             PREDICTING)
        for name, p in {**fixed, **swept}.items():
            key = f"target_{ms:g}ms_{name.replace('-', '_')}"
            out.update({f"{key}_energy_mj": p.stream.energy_per_inference_pj / 1e9,
                        f"{key}_latency_p99_ms": p.stream.percentile(99) * 1e3,
                        f"{key}_deadline_misses": p.misses, f"{key}_forced_exits": p.forced,
                        f"{key}_run_ons": p.run_on})
    return out


def mib(n: float) -> float:
    return n / 2 ** 20


def parameter_settings(bottlenecks=(16, 32, 64, 128, 256)) -> list[tuple]:
    """The (family, bottleneck, adapter placement, task-specific groups) that `parameter_table` compares."""
    settings = [("adapter-albert", b, "shared", ("adapters", "layernorm", "head")) for b in bottlenecks]
    return settings + [("adapter-albert", 64, "per_layer", ("adapters", "layernorm", "head")),
                       ("adapter-albert", 64, "shared", ("adapters", "head")),
                       ("adapter-albert", 64, "shared", ("adapters", "layernorm", "head", "pooler")),
                       ("albert", None, "shared", ())]


def parameter_table(size: str = "base", bottlenecks=(16, 32, 64, 128, 256), progress=None, workers=None) -> list[dict]:
    """Model-side accounting: per-task parameters and bytes (edgebert) as the adapter choices vary (each setting
    a job of `workers`, a `mapper.study.workers.Workers`; default: here, one after another)."""
    settings = [(size, setting) for setting in parameter_settings(bottlenecks)]
    if workers is None:
        rows = []
        for s in settings:
            rows.append(parameter_row(s))
            if progress is not None:
                progress.update(1)
        return rows
    return workers.map(parameter_row, settings, progress)


def parameter_row(job: tuple) -> dict:
    """One row of `parameter_table`: (size, (family, bottleneck, adapter placement, task-specific groups))."""
    size, (family, b, placement, groups) = job
    example = ExampleSpec(family, 2, size, b, placement, groups)
    module = load_example(example, DimSpec(1, 8))
    module = PassManager(compile_passes(module)).run(module)
    task = next(iter(module.graphs))
    own = [w for w in module.weights.values() if not w.role.shared and task in w.role.tasks]
    shared = [w for w in module.weights.values() if w.role.shared]
    params = sum(w.numel for w in own)
    module = PassManager(compress(BUILTIN_POLICIES["edgebert"])).run(module)
    own_bytes = sum(module.weights[w.name].nbytes for w in own)
    return {"family": family, "bottleneck": b or "-", "adapters": placement if family != "albert" else "-",
            "task-specific": "+".join(groups) if groups else "everything",
            "shared_params": sum(w.numel for w in shared), "task_params": params,
            "task_bytes_edgebert": own_bytes}
