"""Power-state instructions: when each memory bank is woken and gated, written into the program.

For every level whose banks are gated while idle (`power_gating = "idle"`),
every bank the program touches gets `power` instructions
(`targets.sim.power.plan_bank` decides when, from a schedule of the program
without them):

- before its first access, nothing, if it holds data (it waits in its holding
  state: SRAM in retention, non-volatile memory off), or `off` at the start
  when it holds nothing yet (SRAM whose first access writes it);
- `on` before each run of accesses: the wake-up waits for an instruction that
  ends between one and two wake-up latencies before the run starts, so it is
  hidden, or else for what the run's first access waits for (its
  dependencies and the instruction before it on its unit), so that access
  stalls for the wake-up; every access of the run that could start before the
  wake-up ends waits for it;
- after each run, `retention` or `off` (its holding state), once the run's
  last accesses end, when the gap to the next run is longer than the wake-up
  latency plus the break-even time; after the last run, `off` when the bank
  holds no weights and its last access reads it (SRAM that holds nothing
  needed later), else its holding state.

Banks that hold data the program never touches stay in their holding state
and empty banks stay off, without instructions. Each bank's instructions run
on their own unit (`power.<level>.<bank>`), in program order, so they never
wait for another bank's. The simulator charges each bank's leakage by these
instructions (`targets.sim.power.static_energy`).
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass

from aalbert.targets.codegen.program import Instr, Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.power import Accesses, Region, bank_rows, holds_weights, plan_bank


def gated_levels(target: Target) -> list:
    return [m for m in target.on_chip if m.power is not None and m.power_gating == "idle"]


def with_power(program: Program, target: Target, image: list[Region] | None, acc: Accesses,
               finish_ns: list[float]) -> Program:
    """`program` (without power instructions) with its banks' power instructions, planned from `acc` (its accesses
    as scheduled) and `finish_ns` (each instruction's end, ns); `image`: the data placed in the memories."""
    levels = gated_levels(target)
    if not levels or any(i.kind == "power" for i in program.instrs):
        return program
    order = sorted(range(len(finish_ns)), key=lambda i: (finish_ns[i], i))
    ends = [finish_ns[i] for i in order]
    before: dict[int, list[_Power]] = {}  # old id -> power instructions issued just before it
    after: dict[int, list[_Power]] = {}   # ... just after it
    extra: dict[int, list[_Power]] = {}   # old id -> wake-ups it waits for
    front: list[_Power] = []
    instrs = program.instrs
    unit_before: dict[int, int] = {}      # id -> the instruction before it on its unit
    last_on: dict[str, int] = {}
    for ins in instrs:
        if ins.unit in last_on:
            unit_before[ins.id] = last_on[ins.unit]
        last_on[ins.unit] = ins.id

    def power(level: str, bank: int, state: str, deps: tuple[int, ...]) -> _Power:
        return _Power(level, bank, state, deps)

    for m in levels:
        here = [r for r in image if r.level == m.name] if image is not None else None
        for k in range(m.banks):
            rows = bank_rows(acc, m, k)
            if not len(rows):
                continue
            plan = plan_bank(m, k, rows, holds_weights(here, m, k))
            if plan.first != plan.hold:
                front.append(power(m.name, k, "off", ()))
            wake_ns = m.power.wakeup_ns
            last = len(plan.periods) - 1
            for n, ((on, _), wakers, gaters) in enumerate(zip(plan.periods, plan.wakers, plan.gaters)):
                first = min(wakers)
                start = on + wake_ns                       # when the run's first access starts
                deps = _hiding(order, ends, start - wake_ns, start - 2 * wake_ns, first)
                if deps is None:  # when the access could start: its dependencies done and its unit free
                    deps = tuple(sorted({*instrs[first].deps, *([unit_before[first]] if first in unit_before
                                                                 else [])}))
                wake = power(m.name, k, "on", deps)
                before.setdefault(first, []).append(wake)
                for i in wakers:
                    extra.setdefault(i, []).append(wake)
                state = plan.last if n == last else plan.hold
                after.setdefault(max(gaters), []).append(power(m.name, k, state, gaters))
    if not front and not before:
        return program
    return _renumbered(program, front, before, after, extra)


def _hiding(order: list[int], ends: list[float], latest: float, earliest: float, first: int) -> tuple[int, ...] | None:
    """An instruction issued before `first` that ends in [earliest, latest]: a wake-up waiting for it is hidden."""
    j = bisect.bisect_right(ends, latest) - 1
    while j >= 0 and ends[j] >= earliest:
        if order[j] < first:
            return (order[j],)
        j -= 1
    return None


@dataclass(eq=False, slots=True)
class _Power:
    """A power instruction before it has its place: level, bank, state, and the old ids it waits for."""

    level: str
    bank: int
    state: str
    deps: tuple[int, ...]


_FIELDS = tuple(f.name for f in dataclasses.fields(Instr))


def _moved(ins: Instr, new: int, deps: tuple[int, ...]) -> Instr:
    """`ins` with another id and dependencies (as `dataclasses.replace`, without its per-call overhead: a program
    has a thousand instructions and more)."""
    out = object.__new__(Instr)
    for f in _FIELDS:
        setattr(out, f, getattr(ins, f))
    out.id, out.deps = new, deps
    return out


def _renumbered(program: Program, front: list[_Power], before: dict[int, list[_Power]],
                after: dict[int, list[_Power]], extra: dict[int, list[_Power]]) -> Program:
    new_id: dict[int, int] = {}
    power_id: dict[int, int] = {}            # id() of a power instruction -> its new id
    sequence: list = list(front)
    for ins in program.instrs:
        sequence += before.get(ins.id, ())
        sequence.append(ins)
        sequence += after.get(ins.id, ())
    for n, x in enumerate(sequence):
        if isinstance(x, Instr):
            new_id[x.id] = n
        else:
            power_id[id(x)] = n
    out = []
    for n, x in enumerate(sequence):
        deps = tuple(new_id[d] for d in x.deps)
        if isinstance(x, _Power):  # implements no graph node (node -1)
            out.append(Instr(n, "power", f"power.{x.level}.{x.bank}", deps, -1, "power", f"{x.level} bank {x.bank}",
                             level=x.level, bank=x.bank, state=x.state))
            continue
        if x.id in extra:
            deps = tuple(sorted({*deps, *(power_id[id(p)] for p in extra[x.id])}))
        out.append(_moved(x, n, deps))
    return dataclasses.replace(program, instrs=out)
