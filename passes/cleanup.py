"""Passes that tidy or check a module: `verify`, `dce`, `fold-transposes`."""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir.module import Module
from aalbert.ir.verifier import verify

from .base import Analyses, Pass, register_pass
from .layout import fold_weight_transposes


@register_pass
@dataclass(frozen=True)
class Verify(Pass):
    name = "verify"
    summary = "check the IR invariants (SSA, types, weights); changes nothing"
    changes_nothing = True

    def run(self, module: Module, analyses: Analyses) -> Module:
        verify(module)
        return module


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


@register_pass
@dataclass(frozen=True)
class FoldTransposes(Pass):
    name = "fold-transposes"
    summary = "store weights that are only read transposed in transposed layout"
    needs_data = True

    def run(self, module: Module, analyses: Analyses) -> Module:
        for graph in module.graphs.values():
            fold_weight_transposes(module, graph)
        module.remove_unused_weights()
        return module

