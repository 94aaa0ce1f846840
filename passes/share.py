"""`share`: tag every weight with its role, from use alone.

For each weight: the tasks whose graphs read it (`shared` when every task
does), how many nodes read it in one inference (ALBERT's layer weights: 12),
and its kind (`passes.kinds`). Works across separately imported files,
because identical weights were stored once when they were imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir.encoding import Role
from aalbert.ir.module import Module

from .base import Analyses, Pass, register_pass
from .kinds import weight_kinds


@register_pass
@dataclass(frozen=True)
class Share(Pass):
    name = "share"
    summary = "tag weights shared (read by every task) or task-specific, with reads per inference and kind"

    def run(self, module: Module, analyses: Analyses) -> Module:
        order = list(module.graphs)
        readers: dict[str, set[str]] = {}
        reads: dict[str, int] = {}
        for task, graph in module.graphs.items():
            readers_of: dict[int, int] = {}   # a weight node's result -> the nodes that read it
            for node in graph.nodes:
                for v in node.inputs:
                    p = v.producer
                    if p is not None and p.op == "weight":
                        readers_of[id(v)] = readers_of.get(id(v), 0) + 1
            for node in graph.nodes:
                if node.op == "weight":
                    name = node.attrs["name"].name
                    readers.setdefault(name, set()).add(task)
                    reads[name] = max(reads.get(name, 0), readers_of.get(id(node.output), 0))
        kinds = weight_kinds(module)
        for w in module.weights.values():
            tasks = tuple(t for t in order if t in readers.get(w.name, ()))
            shared = len(tasks) == len(order)
            w.role = Role.of(shared, tasks, reads.get(w.name, 0), kinds.get(w.name, "other"))
        return module
