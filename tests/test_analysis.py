"""The networkx view of a graph and the analyses built on it."""

from aalbert.ir.analysis import depth, live_ranges, to_digraph
from aalbert.ir.parser import parse_module

TEXT = """module {
  graph @t(%x: tensor<2xf32>) -> ("y": tensor<2xf32>, "z": tensor<2xf32>) {
    %0 = tanh(%x) : tensor<2xf32>
    %1 = exp(%x) : tensor<2xf32>
    %2 = add(%0, %1) : tensor<2xf32>
    %3 = neg(%2) : tensor<2xf32>
    return %3, %0
  }
}
"""


def test_digraph_edges_carry_values():
    graph = parse_module(TEXT).graphs["t"]
    g = to_digraph(graph)
    assert sorted(g.edges(data="value")) == [(0, 2, "0"), (1, 2, "1"), (2, 3, "2")]
    assert g.nodes[2]["op"] == "add"


def test_live_ranges_and_depth():
    graph = parse_module(TEXT).graphs["t"]
    ranges = {v.name: r for v, r in live_ranges(graph).items()}
    # %0 is a graph output, so it lives to the end; %1 dies at the add
    assert ranges == {"0": (0, 4), "1": (1, 2), "2": (2, 3), "3": (3, 4)}
    assert depth(graph) == 3
