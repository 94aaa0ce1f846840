"""`early-exit`: give every off-ramp the entropy test the program runs after its layer.

For each graph output `exit_logits_<k>` (an off-ramp after layer k; the
convention is `ir.exits`), add an `entropy` node over its class axis and the
output `exit_entropy_<k>`; then order the outputs by layer, each off-ramp's
logits and entropy before the next, the graph's other outputs last, and
schedule the nodes depth first from them. So everything a sentence computes
up to off-ramp k comes before anything of layer k + 1 in program order, which
is what lets the program stop there (`targets.exits`). Graphs without
off-ramps are left as they are; running the pass twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.ir.module import Module
from aalbert.ir.offramps import ENTROPY, LOGITS, off_ramps
from aalbert.ir.registry import get_op, infer_types
from aalbert.passes.base import Analyses, Pass, register_pass
from aalbert.passes.canonicalize import schedule


@register_pass
@dataclass(frozen=True)
class EarlyExit(Pass):
    name = "early-exit"
    summary = "add the entropy of every off-ramp (outputs exit_logits_<k>) and order the graph by layer"

    def run(self, module: Module, analyses: Analyses) -> Module:
        for graph in module.graphs.values():
            ramps = off_ramps(graph)
            if not ramps:
                continue
            ordered = []
            for ramp in ramps:
                entropy = ramp.entropy
                if entropy is None:
                    attrs = {"axis": ramp.logits.type.rank - 1}
                    types = infer_types(get_op("entropy"), [ramp.logits.type], attrs, None)
                    entropy = graph.append(graph.create_node("entropy", [ramp.logits], attrs, types)).output
                ordered += [(f"{LOGITS}{ramp.layer}", ramp.logits), (f"{ENTROPY}{ramp.layer}", entropy)]
            if all(r.entropy is not None for r in ramps) and [(n, id(v)) for n, v in graph.outputs[:len(ordered)]] \
                    == [(n, id(v)) for n, v in ordered]:
                continue  # already tested and ordered: nothing to do (and a planned arena stays valid)
            names = {name for name, _ in ordered}
            graph.set_outputs(ordered + [(n, v) for n, v in graph.outputs if n not in names])
            schedule(graph)
            graph.renumber()
        return module
