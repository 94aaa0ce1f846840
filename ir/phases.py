"""Phases: how a task's graphs are keyed when its model runs in more than one phase.

An encoder task is one graph, keyed by the task's name. A decoder task is
two graphs of one module: `<task>/prefill` (the prompt: P tokens, filling
the cache) and `<task>/decode` (one token attending to the cache), which
read the same weights and carry the same state (`ir/state.py`). Everything
that counts tasks (the `share` pass's roles, reports, request streams) asks
this module which task a graph belongs to; a graph key with any other
suffix after a slash is a task name like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.errors import AalbertError
from aalbert.ir.graph import Graph

PREFILL = "prefill"
DECODE = "decode"
PHASES = (PREFILL, DECODE)


class PhaseError(AalbertError):
    """A task whose graphs do not follow the phase convention."""


@dataclass(frozen=True)
class GraphKey:
    """A graph's task and phase (None for a single-phase task)."""

    task: str
    phase: str | None = None

    def __str__(self) -> str:
        return self.task if self.phase is None else f"{self.task}/{self.phase}"


def parse_key(name: str) -> GraphKey:
    task, slash, phase = name.rpartition("/")
    if slash and task and phase in PHASES:
        return GraphKey(task, phase)
    return GraphKey(name)


def task_of(name: str) -> str:
    """The task a graph key belongs to."""
    return parse_key(name).task


def tasks(graphs: dict[str, Graph]) -> list[str]:
    """The distinct tasks of a module's graphs, in graph order."""
    return list(dict.fromkeys(task_of(name) for name in graphs))


def phases_of(graphs: dict[str, Graph], task: str) -> dict[str | None, Graph]:
    """A task's graphs by phase (None: the task's only graph)."""
    return {key.phase: graphs[name] for name in graphs if (key := parse_key(name)).task == task}


def check_phases(graphs: dict[str, Graph]) -> None:
    """Each task is one graph without a phase, or graphs with phases (each once). One `PhaseError` otherwise."""
    seen: dict[str, set[str | None]] = {}
    for name in graphs:
        key = parse_key(name)
        mine = seen.setdefault(key.task, set())
        if mine and (key.phase is None or None in mine):
            raise PhaseError(f"task {key.task!r} has a graph without a phase beside graphs with one "
                             f"({', '.join(PHASES)})")
        mine.add(key.phase)
