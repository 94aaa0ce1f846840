"""Where a decoder's state region (its KV cache, `ir.state`) lives, decided before weights are placed.

The cache is rewritten at every step, so it may live only in a level that
is written during operation (SRAM, DRAM; a non-volatile level only if the
target says it is field-writable, never write-once RRAM). Every decode step
reads all of its valid tokens, so it goes to the nearest such level that has
room: on chip first, cheapest read first, then off chip. Room on chip is the
level less the activation arena (if the arena starts there) and the
task-specific weights that have no other writable on-chip home; the weights
and the arena are then placed in what is left (the region is reserved from
the level's capacity), so a longer context (a larger cache) that no longer
fits moves the cache to a farther level. All graphs share one region (tasks
run one at a time) and it sits at the top of its level.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aalbert.errors import OptionError
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module
from aalbert.targets.hardware.spec import MemoryLevel, Target
from aalbert.targets.sim.workload import Workload


@dataclass(frozen=True)
class StatePlace:
    level: str
    offset: int
    size: int


def state_bytes(module: Module, target: Target) -> int:
    """Bytes of the largest graph's state region (0 without state)."""
    return align_up(max((g.arena.state for g in module.graphs.values() if g.arena is not None), default=0),
                    target.alignment_bytes)


def state_homes(target: Target) -> list[MemoryLevel]:
    """The levels a cache may live in, nearest first."""
    homes = [m for m in target.memories if m.field_writable and (m.off_chip or m.holds)]
    return sorted(homes, key=lambda m: (m.off_chip, m.read_pj_per_byte))


def place_state(module: Module, target: Target, workload: Workload, arena_level: str) -> StatePlace | None:
    """The level and offset of the state region, or None when no graph has state."""
    size = state_bytes(module, target)
    if not size:
        return None
    align = target.alignment_bytes
    arena = align_up(max(g.arena.size for g in module.graphs.values()), align)
    writable = [m for m in target.on_chip if m.field_writable and "weights" in m.holds]
    for m in state_homes(target):
        room = m.capacity_bytes - (arena if m.name == arena_level else 0)
        if not m.off_chip and workload.task_weights_change and writable == [m]:
            room -= sum(align_up(w.nbytes, align) for w in module.weights.values()
                        if w.role is not None and not w.role.shared)
        if size <= room:
            return StatePlace(m.name, (m.capacity_bytes - size) // align * align, size)
    raise OptionError(f"allocate: the KV cache ({size:,} bytes) fits no memory of {target.name} that is written "
                      "during operation; use a shorter context (cache capacity) or a target with more memory")


def reserved(place: StatePlace | None) -> tuple[tuple[str, int], ...]:
    return () if place is None else ((place.level, place.size),)


def record_state(module: Module, place: StatePlace | None) -> None:
    """Each graph's arena says where its state region is."""
    if place is None:
        return
    for graph in module.graphs.values():
        if graph.arena is not None and graph.arena.state:
            graph.arena = dataclasses.replace(graph.arena, state_level=place.level, state_offset=place.offset)
