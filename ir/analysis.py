"""A networkx view of a graph, and analyses: order, reachability, liveness.

The IR stores graphs as ordered node lists; `to_digraph` builds a
`networkx.DiGraph` whose nodes are positions in `graph.nodes` and whose edges
carry the value that flows along them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aalbert.ir.graph import Graph, Value
from aalbert.ir.registry import OpKind, Trait, get_op, op_has
from aalbert.ir.state import state_pairs
from aalbert.ir.types import TensorType

if TYPE_CHECKING:
    import networkx as nx


def to_digraph(graph: Graph) -> nx.DiGraph:
    import networkx as nx  # imported when used: a compile that asks for no graph analysis never loads it

    g = nx.DiGraph()
    producer: dict[Value, int] = {}
    for i, node in enumerate(graph.nodes):
        g.add_node(i, op=node.op)
        for v in node.outputs:
            producer[v] = i
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v in producer:
                g.add_edge(producer[v], i, value=v.name)
    return g


def live_ranges(graph: Graph) -> dict[Value, tuple[int, int]]:
    """For every node result, (defining position, last reading position).

    Graph outputs live to the end of the graph.
    """
    ranges: dict[Value, tuple[int, int]] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            ranges[v] = (i, i)
        for v in node.inputs:
            if v in ranges:
                ranges[v] = (ranges[v][0], i)
    end = len(graph.nodes)
    for _, v in graph.outputs:
        if v in ranges:
            ranges[v] = (ranges[v][0], end)
    return ranges


def depth(graph: Graph) -> int:
    """Length of the longest dependence chain (in nodes)."""
    import networkx as nx

    g = to_digraph(graph)
    return nx.dag_longest_path_length(g) + 1 if len(g) else 0


@dataclass(slots=True)
class Buffer:
    root: Value
    size: int
    start: int
    end: int
    offset: int = -1


def buffer_bytes(v: Value, activation_bits: int) -> int:
    per = activation_bits / 8 if v.type.dtype.is_float else v.type.dtype.itemsize
    return max(1, math.ceil(v.type.numel * per))


def align_up(n: int, align: int) -> int:
    """`n` rounded up to a multiple of `align` (a target's alignment: buffers start on its boundaries)."""
    return -(-n // align) * align


def state_layout(graph: Graph, activation_bits: int, align: int) -> tuple[dict[Value, int], int]:
    """The graph's state region (`ir.state`: a decoder's KV cache), kept apart from the activation arena:
    the offset in it of every value that is state (each state input, in input order, aligned; an
    `index_copy` into one, which updates it in place; a view of one) and the region's size."""
    offsets: dict[Value, int] = {}
    size = 0
    for pair in state_pairs(graph):
        offsets[pair.input] = size
        size += align_up(buffer_bytes(pair.input, activation_bits), align)
    if not offsets:
        return offsets, 0
    for node in graph.nodes:
        if node.inputs and node.inputs[0] in offsets and (node.op == "index_copy" or op_has(node.op, Trait.VIEW)):
            offsets[node.output] = offsets[node.inputs[0]]
    return offsets, size


def activation_buffers(graph: Graph, activation_bits: int, align: int) -> tuple[list[Buffer], dict[Value, Buffer]]:
    """The graph's activation buffers, sizes rounded up to `align`, with their live ranges (views alias
    their operand). State values (`state_layout`) live in the state region, not here."""
    state, _ = state_layout(graph, activation_bits, align)
    owner: dict[Value, Buffer] = {}
    result: list[Buffer] = []
    sizes: dict[TensorType, int] = {}  # by type: the values of like nodes share one size

    def size(v: Value) -> int:
        n = sizes.get(v.type)
        if n is None:
            n = sizes[v.type] = align_up(buffer_bytes(v, activation_bits), align)
        return n

    for v in graph.inputs:
        if v in state:
            continue
        b = Buffer(v, size(v), -1, -1)
        owner[v] = b
        result.append(b)
    for i, node in enumerate(graph.nodes):
        op = get_op(node.op)
        if op.kind is OpKind.SOURCE or (state and any(v in state for v in node.outputs)):
            continue
        for v in node.inputs:
            b = owner.get(v)
            if b is not None and b.end < i:
                b.end = i
        if op.has(Trait.VIEW) and node.inputs[0] in owner:
            owner[node.output] = owner[node.inputs[0]]
            continue
        for v in node.outputs:
            b = Buffer(v, size(v), i, i)
            owner[v] = b
            result.append(b)
    end = len(graph.nodes)
    for _, v in graph.outputs:
        if v in owner:
            owner[v].end = end
    return result, owner
