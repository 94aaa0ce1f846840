"""The placement verifier: checks what `allocate` and `plan-activations` wrote against a target.

- every weight is placed, exactly once: a known level, a known residency,
  its whole byte range inside the level;
- nothing sits in a memory that may not hold it (weights in a level that
  holds weights, or off chip: spilled, which `spill=False` refuses);
- no two weights overlap in a level, except staged weights of disjoint
  task sets, which share the swap region (one task runs at a time);
- every arena lies inside its level, clear of every weight;
- inside an arena, two activations that are alive at the same time do not
  overlap, and every activation fits in the arena.
"""

from __future__ import annotations

from aalbert.errors import IRVerifyError
from aalbert.intervals import first_overlap
from aalbert.ir.analysis import activation_buffers, align_up
from aalbert.ir.module import Module
from aalbert.ir.placement import RESIDENCIES
from aalbert.targets.hardware.spec import Target


def _fail(message: str) -> IRVerifyError:
    return IRVerifyError(f"placement: {message}")


Region = tuple[int, int, str, "frozenset | None"]  # bytes [lo, hi), what, the tasks of a staged weight


def verify_placement(module: Module, target: Target, spill: bool | None = None) -> None:
    """Raise `IRVerifyError` at the first placement `target` cannot hold; with `spill=False`, a weight or arena
    off chip too (placements read from a file are checked so before they are used)."""
    levels = {m.name: m for m in target.memories}
    regions: dict[str, list[Region]] = {n: [] for n in levels}
    for w in module.weights.values():
        _check_weight(w, target, spill, regions)
    arenas: dict[tuple[str, int], int] = {}
    for graph in module.graphs.values():
        a = _checked_arena(graph, target, spill)
        arenas[a.level, a.offset] = max(arenas.get((a.level, a.offset), 0), a.size)
        _check_activations(graph, target.compute.activation_bits, target.alignment_bytes)
    states: dict[tuple[str, int], int] = {}
    for graph in module.graphs.values():
        a = graph.arena
        if a.state:
            if a.state_level not in levels or a.state_offset is None:
                raise _fail(f"graph @{graph.name} has a state region (KV cache) that is not placed")
            if not levels[a.state_level].field_writable:
                raise _fail(f"graph @{graph.name}: the state region is in {a.state_level}, which is written only "
                            "once")
            states[a.state_level, a.state_offset] = max(states.get((a.state_level, a.state_offset), 0), a.state)
    for (lvl, off), size in arenas.items():
        regions[lvl].append((off, off + size, "the activation arena", None))
    for (lvl, off), size in states.items():
        regions[lvl].append((off, off + size, "the state region", None))
    for name, items in regions.items():
        _check_regions(name, levels[name].capacity_bytes, items)


def _check_weight(w, target: Target, spill: bool | None, regions: dict[str, list[Region]]) -> None:
    """`w`'s placement is one `target` can hold; its byte ranges go into `regions`."""
    levels = {m.name: m for m in target.memories}
    p = w.placement
    if p is None:
        raise _fail(f"weight @{w.name} is not placed")
    if p.residency not in RESIDENCIES:
        raise _fail(f"weight @{w.name}: unknown residency {p.residency!r}")
    if p.level not in levels:
        raise _fail(f"weight @{w.name} is in '{p.level}', which {target.name} does not have")
    level = levels[p.level]
    if "weights" not in level.holds and not level.off_chip:
        raise _fail(f"weight @{w.name} is in {p.level}, which may not hold weights")
    if "weights" not in level.holds and spill is False:
        raise _fail(f"weight @{w.name} is in {p.level}, off chip, where {target.name} keeps weights only when "
                    "spilling (--spill)")
    size = align_up(w.nbytes, target.alignment_bytes)
    tasks = frozenset(w.role.tasks) if (p.residency == "staged" and w.role is not None) else None
    regions[p.level].append((p.offset, p.offset + size, f"@{w.name}", tasks))
    if p.residency == "staged":
        if p.home not in levels or p.home_offset is None:
            raise _fail(f"weight @{w.name} is staged but has no home in {target.name}")
        if "weights" not in levels[p.home].holds and spill is False:
            raise _fail(f"weight @{w.name} is kept in {p.home}, where {target.name} keeps weights only when "
                        "spilling (--spill)")
        regions[p.home].append((p.home_offset, p.home_offset + size, f"@{w.name} (home)", None))
    elif p.home is not None:
        raise _fail(f"weight @{w.name} is {p.residency} but names a home")


def _checked_arena(graph, target: Target, spill: bool | None):
    """The graph's activation arena, placed where `target` can hold it."""
    levels = {m.name: m for m in target.memories}
    a = graph.arena
    if a is None or a.level is None or a.offset is None:
        raise _fail(f"graph @{graph.name} has no placed activation arena")
    if a.level not in levels:
        raise _fail(f"graph @{graph.name}: arena in '{a.level}', which {target.name} does not have")
    if "activations" not in levels[a.level].holds and not levels[a.level].off_chip:
        raise _fail(f"graph @{graph.name}: arena in {a.level}, which may not hold activations")
    if "activations" not in levels[a.level].holds and spill is False:
        raise _fail(f"graph @{graph.name}: arena in {a.level}, off chip, where {target.name} keeps activations "
                    "only when spilling (--spill)")
    return a


def _check_regions(name: str, cap: int, items: list[Region]) -> None:
    """The byte ranges in level `name` lie inside its `cap` bytes and do not overlap (staged weights of different
    tasks share the swap region, arenas of several graphs one range)."""
    items.sort()
    for lo, hi, what, _ in items:
        if lo < 0 or hi > cap:
            raise _fail(f"{what} occupies bytes [{lo}, {hi}) of {name}, which has {cap:,}")
    for i, (lo, hi, what, tasks) in enumerate(items):
        for lo2, hi2, what2, tasks2 in items[i + 1:]:
            if lo2 >= hi:
                break
            if tasks is not None and tasks2 is not None and not (tasks & tasks2):
                continue  # staged weights of different tasks share the swap region
            if what2 == what == "the activation arena":
                continue
            raise _fail(f"{what} [{lo}, {hi}) and {what2} [{lo2}, {hi2}) overlap in {name}")


def _check_activations(graph, activation_bits: int, align: int) -> None:
    bufs, owner = activation_buffers(graph, activation_bits, align)
    for v in graph.values():
        if v in owner and v.offset is None:
            raise _fail(f"graph @{graph.name}: activation %{v.name} has no offset")
    for b in bufs:
        if b.root.offset + b.size > graph.arena.size:
            raise _fail(f"graph @{graph.name}: %{b.root.name} [{b.root.offset}, {b.root.offset + b.size}) "
                        f"lies outside the {graph.arena.size}-byte arena")
    clash = first_overlap([(b.root.offset, b.size, b.start, b.end) for b in bufs])
    if clash is not None:
        a, b = bufs[clash[0]], bufs[clash[1]]
        raise _fail(f"graph @{graph.name}: %{a.root.name} and %{b.root.name} are alive together "
                    f"and overlap in the arena")
