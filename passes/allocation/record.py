"""What the allocator decided and why: the `Allocation` record the report prints.

The pass manager keeps it as an analysis (`passes.base.Analyses`) next to
the placed module: the objective and its bound, the constraints that kept
weights from a cheaper place, and the DRAM traffic the placement implies per
inference, per task switch and per power-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aalbert.ir import phases
from aalbert.passes.allocation.problem import ProblemBuilder
from aalbert.passes.allocation.solvers import ArenaOption, Option, Problem, Solution, staging
from aalbert.targets.sim.workload import Workload


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
    rounds: int = 1                                   # price-solve rounds until the placement stood still
    mapping: str = "search"
    objective: str = "balanced"
    cycles_per_inference: float = 0.0                 # the model's, expected over the task mix
    traffic_per_inference: dict[str, float] = field(default_factory=dict)   # level -> bytes, expected
    staging: dict[str, int] = field(default_factory=dict)                   # level -> staging region bytes
    layers: dict = field(default_factory=dict)        # (task, node index) -> NodeCost of every product
    options: dict[str, tuple[Option, ...]] = field(default_factory=dict)  # weight -> every place priced for it
    excluded: tuple[str, ...] = ()                    # placements ruled out, each '@weight ...: why'
    cache_options: tuple[ArenaOption, ...] = ()       # every level priced for a decoder's KV cache


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


def allocation_report(b: ProblemBuilder, problem: Problem, solution: Solution, lp_bound: float, rounds: int = 1,
                      layers: dict | None = None) -> Allocation:
    """The record of the placement `solution` of `b`'s problem, after `rounds` price-solve rounds, with the
    mapping and costs of every product (`layers`)."""
    module, target, options = b.module, b.t, b.options
    binding = binding_constraints(problem, solution)
    if b.excluded:
        n = len(b.excluded)
        binding.append(f"{n} placement{'s' if n > 1 else ''} ruled out by write endurance or field-writability, "
                       f"e.g. {b.excluded[0]}")
    off_chip = {m.name for m in target.memories if m.off_chip}
    chosen = [solution.choice[i.name] for i in problem.items] + problem.regions(solution.arena, solution.cache)
    traffic: dict[str, float] = {}
    for o in chosen:
        for lvl, nbytes in o.traffic:
            traffic[lvl] = traffic.get(lvl, 0.0) + nbytes
    per_inference = sum(v for lvl, v in traffic.items() if lvl in off_chip)
    tasks = phases.tasks(module.graphs)
    per_switch = {t: sum(w.nbytes for w in module.weights.values()
                         if w.placement.residency == "staged" and t in w.role.tasks) for t in tasks}
    volatile = {m.name for m in target.on_chip if m.volatile}
    per_cold = {t: sum(w.nbytes for w in module.weights.values() if w.placement.level in volatile
                       and (w.role.shared or t in w.role.tasks)) for t in tasks}
    return Allocation(target.name, b.wl, solution, lp_bound, dict(problem.capacities), binding, b.notes,
                      per_inference, per_switch, per_cold, sum(w.nbytes for w in module.weights.values()),
                      b.arena_bytes, options.spill, solution.usage, rounds, options.mapping, options.objective,
                      sum(o.cycles for o in chosen), traffic,
                      staging(problem, solution.choice, solution.arena, solution.cache),
                      dict(layers or {}), {i.name: tuple(i.options) for i in problem.items}, tuple(b.excluded),
                      tuple(problem.state_options))
