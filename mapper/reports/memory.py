"""The memory map: what sits in each memory level, and what the allocator decided and why.

`memory_map(module, target)` is computed from the placements alone (so it
works on IR read back from text); `allocation_lines` adds what only the
allocator knows (objective, bound, gap, binding constraints, traffic).
Output as text, JSON (`memory_json`) and a picture (`plot_memory_map`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aalbert.ir import phases
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module
from aalbert.mapper.reports.summary import count, table
from aalbert.passes.allocation.record import Allocation
from aalbert.targets.hardware.spec import Target


@dataclass
class LevelUse:
    name: str
    technology: str
    off_chip: bool
    capacity: int
    shared: int = 0                    # shared weights, resident
    task: dict[str, int] = field(default_factory=dict)   # task-specific weights, resident, per owner set
    swap: int = 0                      # the swap region (largest task's staged weights)
    homes: int = 0                     # staged weights' off-chip copies
    activations: int = 0
    state: int = 0                     # a decoder's KV cache (its graphs' state region)

    @property
    def used(self) -> int:
        return self.shared + sum(self.task.values()) + self.swap + self.homes + self.activations + self.state


def memory_map(module: Module, target: Target) -> list[LevelUse]:
    uses = {m.name: LevelUse(m.name, m.technology, m.off_chip, m.capacity_bytes) for m in target.memories}
    swap: dict[tuple[str, str], int] = {}
    for w in module.weights.values():
        p = w.placement
        if p is None:
            continue
        size = align_up(w.nbytes, target.alignment_bytes)
        if p.residency == "staged":
            uses[p.home].homes += size
            for t in w.role.tasks:
                swap[p.level, t] = swap.get((p.level, t), 0) + size
        elif w.role is not None and w.role.shared:
            uses[p.level].shared += size
        else:
            key = ",".join(w.role.tasks) if w.role is not None else "?"
            uses[p.level].task[key] = uses[p.level].task.get(key, 0) + size
    for (lvl, _), b in swap.items():
        uses[lvl].swap = max(uses[lvl].swap, b)
    arenas = {(g.arena.level, g.arena.offset): 0 for g in module.graphs.values()
              if g.arena is not None and g.arena.level is not None}
    for g in module.graphs.values():
        if g.arena is not None and g.arena.level is not None:
            at = (g.arena.level, g.arena.offset)
            arenas[at] = max(arenas[at], align_up(g.arena.size, target.alignment_bytes))
    for (lvl, _), size in arenas.items():
        uses[lvl].activations += size
    states = {(g.arena.state_level, g.arena.state_offset): align_up(g.arena.state, target.alignment_bytes)
              for g in module.graphs.values() if g.arena is not None and g.arena.state_level is not None}
    for (lvl, _), size in states.items():
        uses[lvl].state += size
    return list(uses.values())


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def memory_lines(module: Module, target: Target) -> list[str]:
    levels = memory_map(module, target)
    lines = [f"memory map on {target.name} ({target.description})"]
    rows = []
    cache = any(u.state for u in levels)  # a column of its own only for a decoder's KV cache
    for u in levels:
        pct = f" ({100 * u.used / u.capacity:.0f} %)" if u.capacity and not u.off_chip else ""
        rows.append([u.name + (" (off chip)" if u.off_chip else ""), u.technology, _mb(u.capacity),
                     _mb(u.used) + pct, _mb(u.shared), _mb(sum(u.task.values())), _mb(u.swap + u.homes),
                     _mb(u.activations)] + ([_mb(u.state)] if cache else []))
    lines += table(["level", "tech", "capacity", "used", "shared weights", "task weights", "staged/swap",
                    "activations"] + (["KV cache"] if cache else []), rows, "llrrrrrr" + ("r" if cache else ""))
    per_task = []
    for task in phases.tasks(module.graphs):
        on = sum(align_up(w.nbytes, target.alignment_bytes) for w in module.weights.values() if w.placement is not None
                 and not target.level(w.placement.level).off_chip and (w.role.shared or task in w.role.tasks))
        off = sum(align_up(w.nbytes, target.alignment_bytes) for w in module.weights.values() if w.placement is not None
                  and w.placement.residency == "streamed" and (w.role.shared or task in w.role.tasks))
        per_task.append([task, _mb(on), _mb(off)])
    lines.append("")
    lines += table(["task", "weights on chip", "weights read from off chip"], per_task, "lrr")
    return lines


def allocation_lines(a: Allocation | None) -> list[str]:
    if a is None:
        return []
    s = a.solution
    w = a.workload
    status = f"stopped at its {s.limit}" if s.limit else "optimal" if s.method == "ilp" and s.gap < 1e-6 else s.method
    lines = [f"allocation ({status}): {s.objective / 1e6:.1f} uJ per inference "
             f"expected (every layer mapped and costed, leakage by bank state, DRAM background, weight copies), "
             f"bound {s.bound / 1e6:.1f} uJ "
             f"({s.bound_kind}), gap {100 * s.gap:.3g} %",
             f"workload: {count(len(w.mix), 'task')}, switch rate {w.switch_rate:g}, {w.inferences_per_wakeup:g} "
             f"inference{'' if w.inferences_per_wakeup == 1 else 's'} per power-up, task weights "
             f"{'change' if w.task_weights_change else 'fixed'} in the field, "
             f"{w.inferences_per_second:g}/s over {w.lifetime_years:g} years",
             f"runtime estimate: {a.cycles_per_inference / 1e6:.2f} M cycles per inference (every layer's mapped "
             f"cycles, one layer after another); placement and mapping agreed after {count(a.rounds, 'round')}"]
    mean_switch = sum(w.mix[t] * b for t, b in a.dram_bytes_per_switch.items())
    mean_cold = sum(w.mix[t] * b for t, b in a.dram_bytes_per_cold_start.items())
    lines.append(f"DRAM traffic: {a.dram_bytes_per_inference:,.0f} bytes per inference in steady state, "
                 f"{mean_switch:,.0f} per task switch, {mean_cold:,.0f} to refill volatile memory after a power-up "
                 f"(means over the task mix)")
    if s.cache is not None:
        others = [f"{o.level} {o.cost / 1e6:.3f} uJ" for o in a.cache_options if o.level != s.cache.level]
        lines.append(f"KV cache: in {s.cache.level}, priced {s.cache.cost / 1e6:.3f} uJ per inference (the steps' "
                     "reads of its valid tokens and writes of new ones, leakage over their cycles); "
                     + (f"elsewhere {', '.join(others)}" if others else "no other level may hold it"))
    if a.binding:
        lines.append("binding: " + "; ".join(a.binding))
    for note in a.notes:
        lines.append(f"note: {note}")
    return lines


def memory_json(module: Module, target: Target, a: Allocation | None = None) -> str:
    levels = memory_map(module, target)
    data = {"target": target.name,
            "levels": [{"name": u.name, "technology": u.technology, "off_chip": u.off_chip, "capacity": u.capacity,
                        "used": u.used, "shared_weights": u.shared, "task_weights": dict(sorted(u.task.items())),
                        "swap_region": u.swap, "staged_homes": u.homes, "activations": u.activations}
                       for u in levels],
            "weights": {w.name: {"level": w.placement.level, "residency": w.placement.residency,
                                 "offset": w.placement.offset, "bytes": w.nbytes,
                                 "role": "shared" if w.role.shared else list(w.role.tasks), "kind": w.role.kind}
                        for w in module.weights.values() if w.placement is not None}}
    if a is not None:
        data["allocation"] = {
            "method": a.solution.method, "objective_pj": a.solution.objective, "bound_pj": a.solution.bound,
            "bound_kind": a.solution.bound_kind, "lp_relaxation_pj": a.lp_bound, "gap": a.solution.gap,
            "stopped_at": a.solution.limit or None,
            "cycles": a.cycles_per_inference, "binding": a.binding, "notes": a.notes,
            "rounds": a.rounds, "mapping": a.mapping, "objective": a.objective,
            "traffic_bytes_per_inference": a.traffic_per_inference, "staging_bytes": a.staging,
            "dram_bytes_per_inference": a.dram_bytes_per_inference,
            "dram_bytes_per_switch": a.dram_bytes_per_switch,
            "dram_bytes_per_cold_start": a.dram_bytes_per_cold_start,
            "workload": {"mix": a.workload.mix, "switch_rate": a.workload.switch_rate,
                         "inferences_per_wakeup": a.workload.inferences_per_wakeup,
                         "task_weights_change": a.workload.task_weights_change}}
        from aalbert.mapper.reports.mapping import mapping_json
        data["mapping"] = mapping_json(module, a, target)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def plot_memory_map(module: Module, target: Target, path, fmt: str = "png") -> None:
    """One horizontal bar per level, split by what it holds, as `fmt` (png or svg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "aalbert"  # reproducible SVG ids
    levels = memory_map(module, target)
    parts = [("shared weights", lambda u: u.shared, "#4477aa"),
             ("task weights", lambda u: sum(u.task.values()), "#ee6677"),
             ("staged / swap", lambda u: u.swap + u.homes, "#ccbb44"),
             ("activations", lambda u: u.activations, "#228833")]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.7 * len(levels)))
    for i, u in enumerate(levels):
        left = 0.0
        for label, get, color in parts:
            width = get(u) / 2 ** 20
            ax.barh(i, width, left=left, color=color, label=label if i == 0 else None)
            left += width
        if not u.off_chip:
            ax.plot([u.capacity / 2 ** 20] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.set_yticks(range(len(levels)), [u.name + (" (off chip)" if u.off_chip else "") for u in levels])
    ax.set_xlabel("MiB (black line: capacity)")
    ax.set_title(f"memory map on {target.name}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45 if len(levels) < 3 else -0.3), ncol=4, fontsize=8,
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
    plt.close(fig)
