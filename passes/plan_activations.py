"""`plan-activations`: byte offsets for every activation, by liveness.

Each task graph gets one arena. Its buffers are the graph inputs and the
results of computing nodes (weights and constants live elsewhere); a
`reshape` is a view, so it shares its operand's buffer and extends its life.
A buffer lives from its definition to its last reader (graph outputs to the
end). Offsets come from greedy-by-size placement: the largest buffer first,
each at the lowest offset where it overlaps no buffer whose life overlaps
its own. The arena records the peak (its size) next to the sum of all
buffers, the memory a planner-less allocator would need. State (a decoder's
KV cache, `ir.state`) is not in the arena: it gets a region of its own
(`ir.analysis.state_layout`), whose size the arena records.

Sizes use the target's activation precision for floating-point tensors
(EdgeBERT keeps activations in 16-bit fixed point) and the element size for
integer ones, rounded up to the target's alignment; the arena records both.
Graphs with the same structure (the tasks of one family) share one plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.intervals import LiveIndex
from aalbert.ir.analysis import Buffer, activation_buffers, state_layout
from aalbert.ir.graph import Graph
from aalbert.ir.module import Module
from aalbert.ir.placement import Arena
from aalbert.passes.base import Analyses, Pass, register_pass
from aalbert.targets.hardware.spec import Target, load_target


def place(bufs: list[Buffer]) -> int:
    """Greedy by size; returns the peak. The buffers alive with each come from a `LiveIndex` (n log n)."""
    if not bufs:
        return 0
    placed: LiveIndex[Buffer] = LiveIndex(min(b.start for b in bufs), max(b.end for b in bufs))
    peak = 0
    for b in sorted(bufs, key=lambda b: (-b.size, b.start, b.end)):
        busy = sorted([(p.offset, p.offset + p.size) for p in placed.overlapping(b.start, b.end)])
        offset = 0
        for lo, hi in busy:
            if offset + b.size <= lo:
                break
            offset = max(offset, hi)
        b.offset = offset
        placed.add(b.start, b.end, b)
        peak = max(peak, offset + b.size)
    return peak


def _signature(graph: Graph) -> tuple:
    index = {id(v): i for i, v in enumerate(graph.inputs)}
    sig: list[tuple[object, ...]] = [tuple(v.type for v in graph.inputs)]
    for node in graph.nodes:
        sig.append((node.op, tuple(index.get(id(v), -1) for v in node.inputs),
                    tuple(v.type for v in node.outputs)))
        for v in node.outputs:
            index[id(v)] = len(index)
    sig.append(tuple(index.get(id(v), -1) for _, v in graph.outputs))
    return tuple(sig)


def plan_graph(graph: Graph, activation_bits: int, align: int, cache: dict | None = None) -> Arena:
    key = (_signature(graph), activation_bits, align) if cache is not None else None
    bufs, owner = activation_buffers(graph, activation_bits, align)
    if cache is not None and key in cache:
        offsets, peak = cache[key]
        for b, off in zip(bufs, offsets):
            b.offset = off
    else:
        peak = place(bufs)
        if cache is not None:
            cache[key] = ([b.offset for b in bufs], peak)
    state, state_size = state_layout(graph, activation_bits, align)
    for v in graph.values():
        v.offset = owner[v].offset if v in owner else state.get(v)
    graph.arena = Arena(size=peak, total=sum(b.size for b in bufs), activation_bits=activation_bits, align=align,
                        state=state_size)
    return graph.arena


def plan_module(module: Module, target: Target) -> Module:
    """Plan every task's activations for a target (its activation precision and alignment)."""
    cache: dict | None = {} if len(module.graphs) > 1 else None  # a plan is shared by graphs alike
    for graph in module.graphs.values():
        plan_graph(graph, target.compute.activation_bits, target.alignment_bytes, cache)
    return module


@register_pass
@dataclass(frozen=True)
class PlanActivations(Pass):
    name = "plan-activations"
    summary = "give every activation an offset in its task's arena, by liveness (greedy by size), for a target"
    target: str | Target = "edge_accel"

    def __post_init__(self) -> None:
        load_target(self.target)

    def run(self, module: Module, analyses: Analyses) -> Module:
        return plan_module(module, load_target(self.target))
