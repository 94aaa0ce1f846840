"""The graph's use lists: kept up to date by every change of the node list and of a node's operands."""

from __future__ import annotations

import pytest

from aalbert.errors import IRVerifyError
from aalbert.ir.graph import Graph
from aalbert.ir.module import Module
from aalbert.ir.types import DType, TensorType
from aalbert.ir.verifier import verify

T = TensorType((2, 3), DType.F32)


def _chain() -> tuple[Graph, list]:
    """x -> a = neg(x) -> b = add(a, a) -> c = mul(b, x); output c."""
    g = Graph("t")
    x = g.add_input("x", T)
    a = g.append(g.create_node("neg", [x], {}, [T]))
    b = g.append(g.create_node("add", [a.output, a.output], {}, [T]))
    c = g.append(g.create_node("mul", [b.output, x], {}, [T]))
    g.set_outputs([("y", c.output)])
    return g, [x, a, b, c]


def _check(g: Graph) -> None:
    module = Module()
    module.add_graph(g)
    verify(module)


def test_readers_follow_appends_operand_changes_and_replacements():
    g, (x, a, b, c) = _chain()
    assert g.readers(x) == [a, c] and g.readers(a.output) == [b, b] and g.readers(c.output) == []
    g.set_inputs(c, [b.output, a.output])  # an operand changed: x loses a reader, a gains one
    assert g.readers(x) == [a] and g.readers(a.output) == [b, b, c]
    d = g.create_node("neg", [x], {}, [T])
    g.replace_node(a, d)  # readers of a's result read d's
    assert g.readers(d.output) == [b, b, c] and g.readers(a.output) == [] and a.graph is None
    assert g.readers(x) == [d]
    _check(g)


def test_insert_reorder_and_dead_code_keep_the_use_lists():
    g, (x, a, b, c) = _chain()
    e = g.insert(1, g.create_node("neg", [x], {}, [T]))  # read by nothing: dead
    assert g.readers(x) == [a, c, e]
    g.reorder([e, a, b, c])
    assert g.readers(x) == [e, a, c]  # program order again
    assert g.remove_dead() == 1 and g.readers(x) == [a, c] and e.graph is None
    g.replace_uses(b.output, a.output)
    assert g.readers(a.output) == [b, b, c] and g.readers(b.output) == []
    _check(g)


def test_the_verifier_finds_a_node_list_changed_behind_the_graphs_back():
    g, (x, a, b, c) = _chain()
    g.nodes.insert(1, g.create_node("neg", [x], {}, [T]))  # not through insert: the uses are not recorded
    with pytest.raises(IRVerifyError, match="node is in the node list but not in the graph"):
        _check(g)
    g, (x, a, b, c) = _chain()
    g._uses[x].remove(c)  # a read the use lists lost
    with pytest.raises(IRVerifyError, match="use list of %x does not match"):
        _check(g)


def test_a_copy_has_its_own_use_lists():
    g, (x, a, b, c) = _chain()
    h = g.copy()
    hx = h.inputs[0]
    assert [n.op for n in h.readers(hx)] == ["neg", "mul"] and all(n.graph is h for n in h.nodes)
    h.remove_dead()
    assert g.readers(x) == [a, c]
