"""A networkx view of a graph, for analyses (order, reachability, liveness).

The IR stores graphs as ordered node lists; `to_digraph` builds a
`networkx.DiGraph` whose nodes are positions in `graph.nodes` and whose edges
carry the value that flows along them.
"""

from __future__ import annotations

import networkx as nx

from .graph import Graph, Value


def to_digraph(graph: Graph) -> nx.DiGraph:
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
    g = to_digraph(graph)
    return nx.dag_longest_path_length(g) + 1 if len(g) else 0
