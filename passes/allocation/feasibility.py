"""What no placement can satisfy, and why: refused before any mapping is searched, or explained after the solver.

`check_placeable` runs before `allocate` prices anything, from sizes and capacities alone, and raises the error
the solver's failure would end in:

- a weight that no level may hold (larger than every level that may hold it, or kept out by a rule);
- weights that together need more bytes than every level that may hold them has, beside the activations;
- a level the activation arena must live in, with no room beside it for the blocks in transit of a layer
  whose weight can only be read through that level.

Each is a necessary condition, so what passes may still not fit; the solver then finds that, and
`does_not_fit` says why from the priced problem. The blocks in transit are checked where the room left is
smaller than any block could be (two elements of every operand passing through, double-buffered); only then is
the least room any mapping needs computed (from what fits, not what costs: `nodecost.least_staged`).
"""

from __future__ import annotations

import math

from aalbert.errors import OptionError
from aalbert.ir import phases
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module
from aalbert.ir.placement import Residency
from aalbert.passes.allocation.problem import ProblemBuilder
from aalbert.passes.allocation.solvers import ArenaOption, Item, Option, Problem
from aalbert.targets.hardware.spec import Target
from aalbert.targets.mapping.cost import staging
from aalbert.targets.mapping.loops import STAGE_BYTES
from aalbert.targets.mapping.problem import Gemm, arch_of, gemm_of, weight_of
from aalbert.targets.mapping.space import smallest
from aalbert.targets.sim.nodecost import is_product, least_staged


def layer_of(module: Module, weight: str) -> str:
    """The first layer that reads `weight` (or any product of the activations, for ""), for messages."""
    for graph in module.graphs.values():
        for node in graph.nodes:
            if not is_product(node):
                continue
            names = {w.name for w in (weight_of(module, v) for v in node.inputs) if w is not None}
            if not weight or weight in names:
                return f"{node.op} %{node.outputs[0].name} of task {graph.name!r}" + (f" (reading @{weight})"
                                                                                      if weight else "")
    return f"the layers reading @{weight}"


def in_transit_error(module: Module, target: Target, problem: Problem, arena_bytes: int) -> OptionError | None:
    """A level with no room for the blocks in transit of a layer next to the activation arena, if any: every
    option of some weight needs more staging room in it than the arena leaves."""
    for m in target.on_chip:
        least = {item.name: min((dict(o.stage).get(m.name, 0) for o in item.options), default=0)
                 for item in problem.items}
        least[""] = min((dict(a.stage).get(m.name, 0) for a in problem.arena_options), default=0)
        worst = max(least, key=lambda k: least[k])
        need = least[worst]
        arena = arena_bytes if all(a.level == m.name for a in problem.arena_options) else 0
        if need and arena + need > m.capacity_bytes:
            return OptionError(
                f"allocate: {target.name} has no room in {m.name} for the blocks in transit of "
                f"{layer_of(module, worst)}: "
                f"the activation arena takes {arena:,} of its {m.capacity_bytes:,} bytes and the smallest mapping of "
                f"that layer needs {need:,} more for the blocks that pass through {m.name}; give {m.name} more "
                f"capacity_bytes (at least {arena + need:,}) or use a shorter --seq-len")
    return None


def weights_error(module: Module, target: Target, builder: ProblemBuilder, arena_bytes: int) -> OptionError:
    """The weights do not fit the memories that may hold them beside the arena."""
    weights = list(module.weights.values())
    on_chip = {m.name: m.capacity_bytes for m in target.on_chip
               if any(builder.can_hold(m, w, quiet=True) for w in weights)}
    need = sum(align_up(w.nbytes, target.alignment_bytes) for w in weights)
    cap = sum(on_chip.values()) - arena_bytes
    biggest = sorted(module.weights.values(), key=lambda w: -w.nbytes)[:3]
    names = ", ".join(f"@{w.name} ({w.nbytes / 1e6:.2f} MB)" for w in biggest)
    return OptionError(
        f"allocate: the weights do not fit {target.name}: they need {need:,} bytes, the on-chip memories that "
        f"may hold them ({', '.join(f'{k} {v:,}' for k, v in on_chip.items()) or 'none'}) leave {max(cap, 0):,} after "
        f"the {arena_bytes:,}-byte activation arena, so {need - max(cap, 0):,} bytes are over; the "
        f"largest weights: {names}; "
        + ("the off-chip memories cannot take the rest either" if builder.spill
           else "use --spill to keep weights off chip"))


def does_not_fit(module: Module, target: Target, problem: Problem, builder: ProblemBuilder) -> OptionError:
    """Why the solver found no placement: the layers' blocks in transit through a level, next to the arena, or
    else the weights' bytes."""
    return in_transit_error(module, target, problem, builder.arena_bytes) or \
        weights_error(module, target, builder, builder.arena_bytes)


def check_placeable(builder: ProblemBuilder) -> None:
    """Refuse what no placement can satisfy (the module docstring's three checks), before anything is priced."""
    module, t = builder.module, builder.t
    tasks = tuple(phases.tasks(module.graphs))
    arena = align_up(max(builder.arena_size(g) for g in module.graphs.values()), t.alignment_bytes)
    builder._arena_fits(arena)
    places: dict[str, list[tuple[str, str | None]]] = {}   # weight -> (level, home) of each option
    for w in module.weights.values():
        if w.role is None:
            raise OptionError("allocate needs weight roles: run 'share' first")
        size = align_up(w.nbytes, t.alignment_bytes)
        kept = [(m.name, None) for m in builder.kept_levels(w, size)]
        staged = []
        if not w.role.shared:
            p_use = sum(builder.wl.mix[task] for task in w.role.tasks)
            staged = [(on.name, home.name) for on, _, homes in builder.staged_levels(w, size, p_use) for home in homes]
        if not kept + staged:
            builder._no_place(w, size)
        places[w.name] = kept + staged
    levels = builder.arena_levels(tasks, arena)
    if not levels:
        builder._arena_fits(arena, quiet=False)
    holders = {home or level for options in places.values() for level, home in options}
    held = sum(align_up(w.nbytes, t.alignment_bytes) for w in module.weights.values())
    beside = arena if all(m.name in holders for m in levels) else 0
    if held + beside > sum(m.capacity_bytes for m in t.memories if m.name in holders):
        raise weights_error(module, t, builder, arena)
    if len(levels) == 1:
        error = in_transit_error(module, t, _transit_bounds(builder, places, levels[0].name, arena), arena)
        if error is not None:
            raise error


def _transit_bounds(builder: ProblemBuilder, places: dict, arena_level: str, arena: int) -> Problem:
    """The problem's options with no price and, where the room beside the arena is smaller than any block could
    be, the least staging room any mapping of their layers needs (a lower bound of what the priced options
    need)."""
    module, t = builder.module, builder.t
    room = {m.name: m.capacity_bytes - (arena if m.name == arena_level else 0) for m in t.on_chip}
    roomy = arch_of(t, {m.name: m.capacity_bytes for m in t.on_chip})
    products = {name: [(task, i) for task, i in nodes if is_product(module.graphs[task].nodes[i])]
                for name, nodes in builder.pricer.main.items()}
    state = builder.pricer.state.levels
    def short(name: str, level: str) -> list[Gemm]:
        """The products charged to weight `name` at `level` that no block fits beside the arena."""
        out = []
        for task, i in products.get(name, []):
            g = gemm_of(module, module.graphs[task].nodes[i], t, arena_level, dict(state, **{name: level}))
            via = roomy.via.get(level) or roomy.via.get(arena_level)
            if via is not None and room.get(via, 0) < _smallest_blocks(g, roomy, via):
                out.append(g)
        return out

    items = []
    for name, options in places.items():
        cramped = [short(name, level) for level, _ in options] if builder.pricer.coster.policy == "search" else []
        priced = []
        for (level, home), gemms in zip(options, cramped or [[] for _ in options]):
            stage: dict[str, int] = {}
            for g in gemms if all(cramped) else []:  # an option with room for its blocks: the weight needs none
                least = _least_room(g, roomy)
                if least is not None:
                    stage[least[0]] = max(stage.get(least[0], 0), int(math.ceil(least[1])))
            kind: Residency = "staged" if home else "resident"
            priced.append(Option(kind, level, home, 0.0, stage=tuple(sorted(stage.items()))))
        items.append(Item(name, (), priced))
    return Problem(items, {m.name: m.capacity_bytes for m in t.memories}, [ArenaOption(arena_level, arena, 0.0)], ())


def _smallest_blocks(g: Gemm, arch, level: str) -> float:
    """Bytes in `level` that any mapping of `g` needs at least: two elements of each operand passing through it
    (a block of one element, double-buffered; a staged tile is at least a block)."""
    homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
    return sum(2 * STAGE_BYTES[op](g) for op, home in homes.items() if arch.via.get(home) == level)


def _least_room(g: Gemm, arch) -> tuple[str, float] | None:
    """(level, bytes) the mapping of `g` needing the least room in the level its operands pass through needs
    there: the bound `_smallest_blocks` when a mapping of one-element blocks runs (none can need less), else
    the least of the space (`nodecost.least_staged`)."""
    feasible, staged, level = staging(g, arch, smallest(g, arch))
    if level is not None and feasible.any() and staged[feasible].min() <= _smallest_blocks(g, arch, level):
        return level, float(staged[feasible].min())
    return least_staged(g, arch)
