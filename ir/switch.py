"""Weights rewritten at a task switch: a projection that LoRA merges into one active copy when the task changes.

A LoRA pair adds `B(A x)` to a base projection `W x`, i.e. `x W + x A B`
with weights laid out [in, out]. Merged on a switch, every task's graphs read
one weight per adapted projection, the *active* copy, which holds `W + A B`
for the task that runs: a switch to task t rewrites it from W, t's A and t's
B. Such a weight's role lists where it comes from (`Role.merges`: the base's
symbol, then one A and one B per task, each owned by its task, any scale
already folded into A). The base and the pairs stay in the module although
no graph reads them: a switch does. In a module of one task every weight is
shared, its pair too: that pair is the task's, merged at its first request
and never switched away from.

`active_data` is what the interpreter binds for a weight when a task runs;
`switch_costs` what a switch to each task costs (the products of B A, the
bytes of W, A and B read and the active copies written); `check` is the
verifier's part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aalbert.ir.module import Module, Weight
from aalbert.ir.phases import task_of
from aalbert.ir.phases import tasks as task_names


@dataclass(frozen=True)
class Merged:
    """One active copy: its base and, per task, that task's A and B."""

    active: Weight
    base: Weight
    pairs: dict[str, tuple[Weight, Weight]]


@dataclass(frozen=True)
class SwitchCost:
    """What a switch to one task costs: its pairs multiplied out, the weights read and the copies written."""

    copies: int = 0         # active copies rewritten
    macs: int = 0           # the products B A
    bytes_read: int = 0     # W, A and B as stored
    bytes_written: int = 0  # the active copies as stored

    def __add__(self, other: SwitchCost) -> SwitchCost:
        return SwitchCost(self.copies + other.copies, self.macs + other.macs, self.bytes_read + other.bytes_read,
                          self.bytes_written + other.bytes_written)


def owner(module: Module, a: Weight, b: Weight) -> str | None:
    """The one task whose pair `a`, `b` is: the task both are owned by, or the module's only task when it has one
    (its weights are all shared); None when the pair is not one task's."""
    owners = {x.role.tasks for x in (a, b) if x.role is not None}
    if len(owners) != 1:
        return None
    (tasks,) = owners
    if not tasks:
        everyone = task_names(module.graphs)
        return everyone[0] if len(everyone) == 1 else None
    return tasks[0] if len(tasks) == 1 else None


def merged(module: Module, w: Weight) -> Merged | None:
    """`w`'s base and pairs when it is an active copy, else None."""
    if w.role is None or not w.role.merges:
        return None
    names = w.role.merges
    pairs = {}
    for a, b in zip(names[1::2], names[2::2]):
        pair = module.weights[a], module.weights[b]
        pairs[owner(module, *pair) or a] = pair
    return Merged(w, module.weights[names[0]], pairs)


def merged_values(base: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W + A B, in W's element type."""
    return (base.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)).astype(base.dtype)


def active_data(module: Module, graph: str, w: Weight, data: Callable[[Weight], np.ndarray]) -> np.ndarray:
    """The values `w` holds while graph `graph` runs: an active copy is its base plus the running task's pair
    (each read through `data`); any other weight is `data(w)`."""
    m = merged(module, w)
    if m is None:
        return data(w)
    pair = m.pairs.get(task_of(graph))
    if pair is None:
        return data(m.base)
    return merged_values(data(m.base), data(pair[0]), data(pair[1]))


def actives(module: Module) -> list[Merged]:
    """The module's active copies, in pool order."""
    return [m for w in module.weights.values() if (m := merged(module, w)) is not None]


def switch_costs(module: Module) -> dict[str, SwitchCost]:
    """Per task, what a switch to it costs (tasks without a pair in any active copy cost nothing)."""
    costs = {t: SwitchCost() for t in task_names(module.graphs)}
    for m in actives(module):
        for task, (a, b) in m.pairs.items():
            rows, rank = a.type.shape
            costs[task] += SwitchCost(1, rows * rank * b.type.shape[1], m.base.nbytes + a.nbytes + b.nbytes,
                                      m.active.nbytes)
    return costs


def check(module: Module, w: Weight) -> str | None:
    """What is wrong with `w`'s merge sources, if anything: a missing weight, a pair whose task is not one task,
    a task with two pairs, or shapes that do not make W + A B."""
    if w.role is None or not w.role.merges:
        return None
    missing = [s for s in w.role.merges if s not in module.weights]
    if missing:
        return f"merges unknown weight @{missing[0]}"
    base = module.weights[w.role.merges[0]]
    if base.type != w.type or w.type.rank != 2:
        return f"merges @{base.name} of type {base.type} into a copy of type {w.type}"
    seen: set[str] = set()
    for a_name, b_name in zip(w.role.merges[1::2], w.role.merges[2::2]):
        a, b = module.weights[a_name], module.weights[b_name]
        task = owner(module, a, b)
        if task is None:
            return f"merges @{a_name} and @{b_name}, which are not one task's own"
        if task in seen:
            return f"merges two pairs of task {task!r}"
        seen.add(task)
        if a.type.rank != 2 or b.type.rank != 2 or a.type.shape[0] != w.type.shape[0] or \
                b.type.shape[1] != w.type.shape[1] or a.type.shape[1] != b.type.shape[0]:
            return f"merges @{a_name} ({a.type}) and @{b_name} ({b.type}), which do not make {w.type}"
    return None
