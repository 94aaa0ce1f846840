"""`dce`: remove nodes nothing reads and weights no graph uses."""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir.module import Module
from aalbert.passes.base import Analyses, Pass, register_pass


@register_pass
@dataclass(frozen=True)
class DeadCode(Pass):
    name = "dce"
    summary = "remove nodes nothing reads and weights no graph uses"

    def run(self, module: Module, analyses: Analyses) -> Module:
        for graph in module.graphs.values():
            graph.remove_dead()
        module.remove_unused_weights()
        return module
