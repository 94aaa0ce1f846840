"""`fold-transposes`, canonical weight layout: a weight only ever read transposed is stored transposed.

Exporters disagree on how linear weights are stored (torch keeps [out, in],
ONNX MatMul wants [in, out], Gemm may say transB). Folding the transposes
into the data gives every weight one layout, and so one content hash,
whichever frontend produced it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.ir.graph import Graph, Sym
from aalbert.ir.module import Module
from aalbert.passes.base import Analyses, Pass, register_pass


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


def fold_weight_transposes(module: Module, graph: Graph) -> int:
    """Fold `transpose(weight)` into the weight; returns how many were folded."""
    weights = [node for node in graph.nodes if node.op == "weight"]
    if not weights:
        return 0
    users = graph.users()
    outputs = {id(v) for _, v in graph.outputs}
    symbols = {node.attrs["name"].name for node in weights}
    tagged = {w.name for w in module.weights.values() if w.role is not None}
    folded = 0
    for node in weights:
        value = node.output
        readers = users.get(value, [])
        if (not readers or id(value) in outputs or any(r.op != "transpose" for r in readers)
                or len({r.attrs["perm"] for r in readers}) != 1):
            continue
        old = module.weights[node.attrs["name"].name]
        if old.data is None:
            continue
        perm = readers[0].attrs["perm"]
        data = np.ascontiguousarray(old.data.transpose(perm))
        if _references(module, graph, old.name) == 1:
            module.remove_weight(old.name)  # frees the name for the folded weight
        # the graph's other weights stay apart, and so do weights `share` has tagged already
        new = module.add_weight(data, old.name, scope=graph.name, taken=(symbols - {old.name}) | tagged)
        symbols.add(new.name)
        node.attrs = {"name": Sym(new.name)}
        value.type = new.type
        for r in readers:
            graph.replace_uses(r.output, value)
        folded += 1
    if folded:
        graph.remove_dead()
    return folded


def _references(module: Module, graph: Graph, name: str) -> int:
    """How many weight nodes name this weight, in the module and in `graph`."""
    graphs = [g for g in module.graphs.values() if g is not graph] + [graph]
    return sum(1 for g in graphs for n in g.nodes
               if n.op == "weight" and n.attrs["name"].name == name)
