"""`verify`: check the IR invariants between passes (`ir.verifier`); changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir.module import Module
from aalbert.ir.verifier import verify
from aalbert.passes.base import Analyses, Pass, register_pass


@register_pass
@dataclass(frozen=True)
class Verify(Pass):
    name = "verify"
    summary = "check the IR invariants (SSA, types, weights); changes nothing"
    changes_nothing = True

    def run(self, module: Module, analyses: Analyses) -> Module:
        verify(module)
        return module
