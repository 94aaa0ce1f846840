"""What the allocator decided and why: the `Allocation` record the report prints.

The pass manager keeps it as an analysis (`passes.base.Analyses`) next to
the placed module: the objective and its bound, the constraints that kept
weights from a cheaper place, and the DRAM traffic the placement implies per
inference, per task switch and per power-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aalbert.targets.workload import Workload

from .allocation_model import Problem, Solution
from .allocation_problem import ProblemBuilder, activation_traffic, bytes_read


@dataclass
class Allocation:
    """What the allocator decided and why, for the report."""

    target: str
    workload: Workload
    solution: Solution
    lp_bound: float
    capacities: dict[str, int]
    binding: list[str]
    notes: list[str]
    dram_bytes_per_inference: float
    dram_bytes_per_switch: dict[str, int]
    dram_bytes_per_cold_start: dict[str, int]
    weight_bytes: int
    arena_bytes: int
    spill: bool
    usage: dict[str, int] = field(default_factory=dict)


def binding_constraints(problem: Problem, solution: Solution) -> list[str]:
    """Constraints that kept weights from a cheaper option: levels without room for it."""
    blocked: dict[str, int] = {}
    used = solution.usage
    for item in problem.items:
        chosen = solution.choice[item.name]
        for o in sorted(item.options, key=lambda o: o.cost):
            if o.cost >= chosen.cost:
                break
            for lvl, b in o.resident + o.swap:
                if used.get(lvl, 0) + b > problem.capacities[lvl]:
                    blocked[lvl] = blocked.get(lvl, 0) + 1
                    break
    return [f"capacity of {lvl}: {used.get(lvl, 0):,} of {problem.capacities[lvl]:,} bytes used; "
            f"{n} weight{'s' if n > 1 else ''} would be cheaper there" for lvl, n in sorted(blocked.items())]


def allocation_report(module, target, workload, problem, solution, lp_bound, b: ProblemBuilder, spill) -> Allocation:
    binding = binding_constraints(problem, solution)
    if b.excluded:
        n = len(b.excluded)
        binding.append(f"{n} placement{'s' if n > 1 else ''} ruled out by write endurance or field-writability, "
                       f"e.g. {b.excluded[0]}")
    off_chip = {m.name for m in target.memories if m.off_chip}
    reads = bytes_read(module)
    per_inference = 0.0
    for w in module.weights.values():
        if w.placement.level in off_chip:
            owners = module.graphs if w.role.shared else w.role.tasks
            per_inference += sum(workload.mix[t] * reads.get(w.name, {}).get(t, 0.0) for t in owners)
    per_switch = {t: sum(w.nbytes for w in module.weights.values()
                         if w.placement.residency == "staged" and t in w.role.tasks) for t in module.graphs}
    volatile = {m.name for m in target.on_chip if m.volatile}
    per_cold = {t: sum(w.nbytes for w in module.weights.values() if w.placement.level in volatile
                       and (w.role.shared or t in w.role.tasks)) for t in module.graphs}
    if solution.arena.level in off_chip:
        traffic = activation_traffic(module, target.compute.activation_bits)
        per_inference += sum(workload.mix[t] * sum(traffic[t]) for t in module.graphs)
    return Allocation(target.name, workload, solution, lp_bound, dict(problem.capacities), binding, b.notes,
                      per_inference, per_switch, per_cold, sum(w.nbytes for w in module.weights.values()),
                      b.arena_bytes, spill, solution.usage)
