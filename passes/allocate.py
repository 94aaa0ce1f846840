"""`allocate`: place every weight, the activation arena and a decoder's KV cache in the target's memories.

The objective is the expected energy of one inference under a workload (a
task mix and a task-switch rate): every node's energy and the chip's leakage
over its cycles, with every product mapped onto the PE array by the search
(`targets.mapping`; `mapping=fixed` keeps the fixed chunking), and the
copies of weights at power-ups and task switches (`allocation_problem` builds
it from `allocation_costs`, `allocation_model` states and solves it).

Placement and mapping decide each other: where a weight lives changes the
best mapping of its layers (a weight streamed from DRAM wants the blocks that
read it once), and the mappings change what each place costs (and how much
free memory staging tiles take). `allocate` prices every option around the
current placement, solves, and repeats around the solution until the
placement stops changing (at most `MAX_ROUNDS` times); the report says how
many rounds it took. Every product node then carries its mapping
(`Node.mapping`), which the lowering follows.

Static energy follows the simulator's power states (`targets.power`): the
prices charge the leakage that runs all along and, while a node runs, the
banks it wakes (`allocation_costs.Rates`); the banks that hold data and the
empty ones are charged over the runtime at the current placement, which the
rounds bring to the solution's.

Exact: an integer program (scipy's milp / HiGHS); a greedy fallback for
huge instances. The report's bound is the best known (branch and bound's,
or the LP relaxation's if higher) and its gap is computed from that bound
and the objective.

Addresses (`allocation.layout`): the solution says which level each weight
and the arena live in; the layout places them in it so that an inference
wakes as few banks as it must and every task the same number whatever the
task count: the arena from a bank boundary, the weights every task reads
after it, each task's own weights as one group from a bank boundary on,
touching the fewest banks it fits in. (The static terms above already count
a level's held banks as the bytes present need; the layout is what makes
the simulator's banks agree.) Results: each
weight's `placement`, each graph's arena level and offset, and an
`Allocation` (`allocation_report`: objective, gap, binding constraints,
traffic) kept by the pass manager for the report.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass

from aalbert.errors import OptionError
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module
from aalbert.ir.placement import Placement
from aalbert.passes.allocation.feasibility import check_placeable, does_not_fit
from aalbert.passes.allocation.layout import lay_out
from aalbert.passes.allocation.prices import State
from aalbert.passes.allocation.problem import AllocatorOptions, ProblemBuilder, bytes_held
from aalbert.passes.allocation.record import Allocation, allocation_report
from aalbert.passes.allocation.solvers import (
    NODE_LIMIT,
    TIME_LIMIT,
    TIME_STOP,
    Solution,
    solve_greedy,
    solve_milp,
    staging,
    variable_count,
)
from aalbert.passes.allocation.state import place_of, record_state, state_bytes, state_levels
from aalbert.passes.allocation.verify import verify_placement
from aalbert.passes.base import Analyses, Pass, register_pass
from aalbert.passes.plan_activations import plan_graph
from aalbert.targets.hardware.spec import Target, load_target
from aalbert.targets.mapping.search import OBJECTIVES
from aalbert.targets.sim.generation import is_decoder, lengths
from aalbert.targets.sim.nodecost import POLICIES, NodeCoster
from aalbert.targets.sim.workload import Workload, default_workload, load_workload

MAX_ILP_VARIABLES = 50_000
MAX_ROUNDS = 4


def allocate(module: Module, target: Target, workload: Workload,
             options: AllocatorOptions = AllocatorOptions()) -> Allocation:
    """Place every weight and arena and map every product; graphs whose activations are not planned are
    planned for `target`."""
    _check_arenas(module, target)
    state = _first_state(module, target, options)
    coster = NodeCoster(module, target, options.mapping, options.objective)
    check_placeable(ProblemBuilder(module, target, workload, options, coster, state))
    solver = options.solver
    rounds, reserve, held = 0, True, bytes_held(module, target, state)
    stops: list[str] = []  # the limit each solve stopped at before proving optimality
    while True:
        rounds += 1
        coster.set_free(_free_bytes(target, held, reserve))
        b = ProblemBuilder(module, target, workload, options, coster, state)
        problem = b.problem()
        use_ilp = solver == "ilp" or (solver == "auto" and variable_count(problem) <= MAX_ILP_VARIABLES)
        solution = solve_milp(problem) if use_ilp else solve_greedy(problem)
        if solution is None and reserve:  # the reserved staging room does not fit: map into what is free
            reserve = False
            continue
        if solution is None:
            raise does_not_fit(module, target, problem, b)
        stops += [solution.limit] if solution.limit else []
        new = State({name: o.level for name, o in solution.choice.items()}, solution.arena.level,
                    solution.cache.level if solution.cache is not None else None)
        stage = staging(problem, solution.choice, solution.arena, solution.cache)
        held = {lvl: used - stage.get(lvl, 0) for lvl, used in solution.usage.items()}
        if new == state or rounds >= MAX_ROUNDS:
            state = new
            break
        state = new
    lp = solve_milp(problem, relax=True)
    stops += [lp.limit] if lp is not None and lp.limit else []
    lp_bound = lp.objective if lp is not None and not lp.limit else solution.bound
    # the report's bound is the best lower bound known, and its gap is computed from it and the objective
    dual = solution.bound if solution.method == "ilp" else -math.inf
    solution.bound = min(max(dual, lp_bound), solution.objective)
    solution.bound_kind = "branch and bound" if dual >= lp_bound else "LP relaxation"
    # the state region (the KV cache, at the top of its level) is kept apart like the staging region: the
    # layout's slack excludes both
    kept = staging(problem, solution.choice, solution.arena, solution.cache)
    cache = None if solution.cache is None else place_of(solution.cache.level, solution.cache.size, target)
    if cache is not None:
        kept[cache.level] = kept.get(cache.level, 0) + cache.size
    _write_placements(module, target, solution, b.arena_bytes, kept)
    record_state(module, cache)
    if stops:
        b.notes.append(_stopped_note(stops, rounds + 1))
    if TIME_STOP in stops:  # the one outcome that depends on the machine's load: never silent
        print(f"aalbert: warning: the allocator's integer program for {target.name} stopped at its "
              f"{TIME_LIMIT:g} s time limit before its node limit; the placement may depend on machine load",
              file=sys.stderr)
    costs = b.pricer.mappings(state)
    for (task, i), cost in costs.items():
        module.graphs[task].nodes[i].mapping = cost.mapping
    return allocation_report(b, problem, solution, lp_bound, rounds, costs)


def _stopped_note(stops: list[str], solves: int) -> str:
    """The report's note on solves that stopped at a limit (`solves`: the rounds' and the LP relaxation's)."""
    limits = sorted(set(stops))
    said = " and ".join(f"its {lim}" + (f" ({NODE_LIMIT:,} nodes)" if lim != TIME_STOP else f" ({TIME_LIMIT:g} s)")
                        for lim in limits)
    return (f"{len(stops)} of {solves} solves of the integer program stopped at {said} before proving "
            f"optimality; the bound and gap are what was proven"
            + ("; a stop at the time limit depends on the machine's load" if TIME_STOP in limits else ""))


def _first_state(module: Module, target: Target, options: AllocatorOptions) -> State:
    """Where prices start: the arena in the first level that holds activations and has room for it (on chip
    first), each weight in the first level that may hold weights, a KV cache in the nearest level it may live in
    that has room for it beside the arena."""
    arena = max(g.arena.size for g in module.graphs.values())
    acts = [m for m in target.memories if "activations" in m.holds or (m.off_chip and options.spill)]
    fits = [m for m in acts if m.capacity_bytes >= arena]
    level = (sorted(fits, key=lambda m: m.off_chip) or acts or list(target.memories))[0].name
    holders = [m.name for m in target.memories if "weights" in m.holds] or [target.memories[0].name]
    cache = None
    if state_bytes(module, target):
        homes = state_levels(module, target, options.cache)
        size = state_bytes(module, target) + align_up(arena, target.alignment_bytes)
        cache = next((m for m in homes if m.name != level or size <= m.capacity_bytes), homes[0]).name
    return State({w.name: holders[0] for w in module.weights.values()}, level, cache)


FREE_STEPS = 64  # free bytes are counted in steps of a 64th of the level (a power of two, at least the alignment)
STAGING_SHARE = 8  # a staging region may take an eighth of a level whatever the placement (weights make room)


def _free_bytes(target: Target, used: dict[str, int], reserve: bool = True) -> dict[str, int]:
    """Bytes of each level left for staging tiles next to `used` (weights, swap region, arena; with `reserve`,
    at least an eighth of the level), in whole steps of about a 64th of the level, so that placements that
    differ by little map alike."""
    free = {}
    for m in target.on_chip:
        step = max(target.alignment_bytes, 1 << max(0, (m.capacity_bytes // FREE_STEPS).bit_length() - 1))
        # a full level still offers an eighth of itself: the integer program counts the staging region in the
        # level's capacity, so a mapping that needs it pushes weights out, where mappings priced for no room at
        # all would read a streamed weight a few bytes at a time
        room = max(m.capacity_bytes - used.get(m.name, 0), m.capacity_bytes // STAGING_SHARE if reserve else 0)
        free[m.name] = max(0, room) // step * step
    return free


def _check_arenas(module: Module, target: Target) -> None:
    bits, align = target.compute.activation_bits, target.alignment_bytes
    for graph in module.graphs.values():
        a = graph.arena
        if a is None:
            plan_graph(graph, bits, align)
        elif a.activation_bits != bits or a.align % align:
            raise OptionError(f"allocate: the activations of task {graph.name!r} were planned for "
                              f"{a.activation_bits}-bit activations aligned to {a.align} bytes, and {target.name} "
                              f"has {bits}-bit activations aligned to {align}: run plan-activations{{target=...}} "
                              "with this target")


def _write_placements(module: Module, target: Target, solution: Solution, arena: int, stage: dict[str, int]) -> None:
    """Offsets, bank by bank (`allocation.layout`): per level, the arena, the weights every task reads, each task's
    own weights, the swap region (tasks overlap)."""
    offsets, base = lay_out(module, target, solution.choice, solution.arena.level, arena, stage)
    for w in module.weights.values():
        o = solution.choice[w.name]
        at, home = offsets[w.name]
        if o.kind == "staged":
            w.placement = Placement(o.level, "staged", at, o.home, home)
        else:
            w.placement = Placement(o.level, o.kind, at)
    for graph in module.graphs.values():
        graph.arena = dataclasses.replace(graph.arena, level=solution.arena.level, offset=base)


@register_pass
@dataclass(frozen=True)
class Allocate(Pass):
    name = "allocate"
    summary = "place weights and activations in the target's memories and map every product (integer program)"
    target: str | Target = "edge_accel"
    workload: str | Workload = ""
    switch_rate: float | None = None            # overrides the workload's
    inferences_per_wakeup: float | None = None  # overrides the workload's
    spill: bool = False
    solver: str = "auto"
    mapping: str = "search"             # search | fixed
    objective: str = "balanced"         # balanced | energy | latency | edp
    prompt: int | None = None           # decoders: prompt tokens per request (default: the prefill graph's)
    generate: int | None = None         # decoders: tokens generated per request
    cache: str = ""                     # decoders: the one level the KV cache may take ("": the allocator chooses)

    def __post_init__(self) -> None:
        if self.solver not in ("auto", "ilp", "greedy"):
            raise ValueError(f"solver must be auto, ilp or greedy, got {self.solver!r}")
        if self.mapping not in POLICIES:
            raise ValueError(f"mapping must be one of {', '.join(POLICIES)}, got {self.mapping!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.switch_rate is not None and not 0.0 <= self.switch_rate <= 1.0:
            raise ValueError(f"switch_rate must be in [0, 1], got {self.switch_rate}")
        if self.inferences_per_wakeup is not None and not 1 <= self.inferences_per_wakeup < math.inf:
            raise ValueError(f"inferences_per_wakeup must be a number >= 1, got {self.inferences_per_wakeup}")
        load_target(self.target)

    def run(self, module: Module, analyses: Analyses) -> Module:
        target = load_target(self.target)
        if isinstance(self.workload, Workload):
            wl = self.workload
        else:
            wl = load_workload(self.workload, module.graphs) if self.workload else default_workload(module.graphs)
        if self.switch_rate is not None:
            wl = dataclasses.replace(wl, switch_rate=self.switch_rate)
        if self.inferences_per_wakeup is not None:
            wl = dataclasses.replace(wl, inferences_per_wakeup=self.inferences_per_wakeup)
        if is_decoder(module):
            n = lengths(module, self.prompt, self.generate)
            wl = dataclasses.replace(wl, prompt=n.prompt, generate=n.generate)
        elif self.prompt is not None or self.generate is not None:
            raise OptionError("--prompt and --generate are for decoders (graphs <task>/prefill and <task>/decode)")
        if self.cache and not is_decoder(module):
            raise OptionError("the KV cache's level is for decoders (graphs <task>/prefill and <task>/decode)")
        options = AllocatorOptions(self.spill, self.solver, self.mapping, self.objective, self.cache or None)
        analyses.put(allocate(module, target, wl, options))
        verify_placement(module, target)
        return module
