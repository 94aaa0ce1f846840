"""Where in each level the chosen placements sit: offsets that wake as few memory banks as an inference must.

The integer program decides which level every weight and the activation arena
live in; this module decides their addresses. A banked level
(`MemoryLevel.banks`) is charged bank by bank (`targets.sim.power`): a bank
that an inference touches is woken, one it does not touch stays off (or in
its holding state), so the objective here is, for every task, the number of
banks its inference touches in each level, and no task's count may grow when
another task is added. Per level, in this order:

1. the activation arena, from byte 0 (a bank boundary): every inference
   reads and writes it all along, so it takes the fewest banks it can;
2. the weights every task reads (shared ones, then task weights staged for
   several tasks), packed right after it, into the arena's last bank first;
3. from the next bank boundary, each task's own weights (then weights of a
   few tasks) as one contiguous group, in task order: a group starts where
   the previous one ends, or at the next bank boundary when that makes it
   touch fewer banks (read together, a task's weights share banks, and
   another task's group never straddles into them). No group takes the free
   end of the last bank the arena and the shared weights wake: it would ride
   free for the first tasks that fit there and not for the others, and
   energy per inference would then climb with the task count;
4. the swap region of staged task weights (the tasks overlap there), placed
   the same way.

Moving a group to a bank boundary costs the bytes skipped; it is done only
while the level's free bytes (its capacity less everything placed and the
staging region the mappings need, which lowering puts after the last byte
placed) cover them. So every task touches the banks of the arena and the
shared weights plus the fewest its own weights fit in, whatever the number
of tasks; a task added later is placed after the others and changes no
earlier task's banks (as long as the arena, the largest of the tasks', and
the shared weights stay the same, and the level has the free bytes). Levels with a
single bank (off-chip memory) are packed as before: resident weights in
order, then the swap region.
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir import phases
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module, Weight
from aalbert.targets.hardware.spec import MemoryLevel, Target


@dataclass
class Cursor:
    """Packing one level: the next free byte, the banks every inference touches, and the bytes left for
    alignment."""

    level: MemoryLevel
    at: int = 0
    slack: int = 0
    common: frozenset[int] = frozenset()

    def banks(self, lo: int, size: int) -> set[int]:
        b = self.level.bank_bytes
        return set(range(lo // b, (lo + max(size, 1) - 1) // b + 1)) if size else set()

    def skip_to_boundary(self) -> None:
        """Move to the next bank boundary, if the slack allows."""
        lo = align_up(self.at, self.level.bank_bytes)
        if lo - self.at <= self.slack:
            self.slack -= lo - self.at
            self.at = lo

    def place(self, size: int) -> int:
        """Where a group of `size` bytes goes: at the cursor, or at a later bank boundary where it touches fewer
        banks outside the common ones (while the slack lasts); the cursor moves past it."""
        best, cost = self.at, len(self.banks(self.at, size) - self.common)
        if self.level.banks > 1 and size:
            # the common banks come first, so a later boundary touches no fewer new banks than the next one
            lo = align_up(self.at, self.level.bank_bytes)
            if lo - self.at <= self.slack and lo + size <= self.level.capacity_bytes \
                    and len(self.banks(lo, size) - self.common) < cost:
                best = lo
        self.slack -= best - self.at
        self.at = best + size
        return best


def _sized(ws: list[Weight], align: int) -> int:
    return sum(align_up(w.nbytes, align) for w in ws)


def lay_out(module: Module, target: Target, choice: dict, arena_level: str, arena_bytes: int,
            stage: dict[str, int]) -> tuple[dict[str, tuple[int, int | None]], int]:
    """Offsets of every weight (resident: (offset, None); staged: (swap slot, home offset)) and of the arena
    (`arena_bytes` in `arena_level`), for the levels and kinds in `choice` (weight name -> `Option`); `stage`:
    the staging region the mappings need per level."""
    align = target.alignment_bytes
    tasks = phases.tasks(module.graphs)
    rank = {t: i for i, t in enumerate(tasks)}
    order = sorted(module.weights.values(), key=lambda w: (not w.role.shared, list(module.weights).index(w.name)))

    def group_key(w: Weight) -> tuple:
        ts = w.role.tasks
        return (min(rank[t] for t in ts), len(ts), tuple(sorted(rank[t] for t in ts)))

    resident: dict[str, list[Weight]] = {m.name: [] for m in target.memories}     # weights every task reads
    own: dict[str, dict[tuple, list[Weight]]] = {m.name: {} for m in target.memories}
    multi: dict[str, list[Weight]] = {m.name: [] for m in target.memories}        # staged for several tasks
    swap: dict[str, dict[str, list[Weight]]] = {m.name: {} for m in target.memories}
    for w in order:
        o = choice[w.name]
        kept = o.home if o.kind == "staged" else o.level
        if w.role.shared:
            resident[kept].append(w)
        else:
            own[kept].setdefault(group_key(w), []).append(w)
        if o.kind == "staged":
            if len(w.role.tasks) > 1:
                multi[o.level].append(w)
            else:
                swap[o.level].setdefault(w.role.tasks[0], []).append(w)

    offsets: dict[str, int] = {}
    slots: dict[str, int] = {}
    arena_at = 0
    for m in target.memories:
        groups = [ws for _, ws in sorted(own[m.name].items())]
        swap_size = max((_sized(ws, align) for ws in swap[m.name].values()), default=0)
        packed = (_sized(resident[m.name], align) + sum(_sized(ws, align) for ws in groups)
                  + _sized(multi[m.name], align) + swap_size + (arena_bytes if m.name == arena_level else 0))
        cur = Cursor(m, 0, max(0, m.capacity_bytes - packed - stage.get(m.name, 0)))
        if m.name == arena_level:
            arena_at = cur.place(arena_bytes)
        for w in resident[m.name]:
            offsets[w.name] = cur.at
            cur.at += align_up(w.nbytes, align)
        for w in multi[m.name]:
            slots[w.name] = cur.at
            cur.at += align_up(w.nbytes, align)
        cur.common = frozenset(cur.banks(0, cur.at))
        if groups and m.banks > 1:
            cur.skip_to_boundary()
        for ws in groups:
            at = cur.place(_sized(ws, align))
            for w in ws:
                offsets[w.name] = at
                at += align_up(w.nbytes, align)
        if swap_size:
            base = cur.place(swap_size)
            for ws in swap[m.name].values():
                at = base
                for w in ws:
                    slots[w.name] = at
                    at += align_up(w.nbytes, align)
    out = {w.name: (slots[w.name], offsets[w.name]) if choice[w.name].kind == "staged" else (offsets[w.name], None)
           for w in module.weights.values()}
    return out, arena_at
