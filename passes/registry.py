"""The built-in passes (importing this module registers them)."""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir.module import Module
from aalbert.ir.verifier import verify

from .base import Pass, register_pass
from .layout import fold_weight_transposes


@register_pass
@dataclass(frozen=True)
class Verify(Pass):
    name = "verify"
    summary = "check the IR invariants (SSA, types, weights); changes nothing"

    def run(self, module: Module) -> Module:
        verify(module)
        return module


@register_pass
@dataclass(frozen=True)
class DeadCode(Pass):
    name = "dce"
    summary = "remove nodes nothing reads and weights no graph uses"

    def run(self, module: Module) -> Module:
        for graph in module.graphs.values():
            graph.remove_dead()
        module.remove_unused_weights()
        return module


@register_pass
@dataclass(frozen=True)
class FoldTransposes(Pass):
    name = "fold-transposes"
    summary = "store weights that are only read transposed in transposed layout"

    def run(self, module: Module) -> Module:
        if not module.has_data:
            return module  # without data there is nothing to transpose
        for graph in module.graphs.values():
            fold_weight_transposes(module, graph)
        module.remove_unused_weights()
        return module


# passes defined in their own modules register on import
from . import allocate, canonicalize, compress, plan, share  # noqa: E402,F401
