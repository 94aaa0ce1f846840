"""`Builder`: appends typed nodes to a graph, folding constants as it goes.

Frontends and passes create nodes through a builder. Result types come from
the op registry; a node whose operands are all constants is evaluated at once
and becomes a `constant` (this is how shape arithmetic disappears once batch
and sequence length are fixed). Each weight and each distinct constant is
materialized once per graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aalbert.ir.graph import Attr, Graph, Node, Sym, Value, constant_array
from aalbert.ir.module import Module, Weight
from aalbert.ir.registry import REGISTRY, InferContext, OpKind, get_op, infer_types
from aalbert.ir.types import TensorType

# Results larger than this are folded only when all their elements are equal
# (they print as one splat value); otherwise the op stays in the graph.
FOLD_LIMIT = 1 << 16


class Builder:
    def __init__(self, module: Module, graph: Graph):
        self.module = module
        self.graph = graph
        self.ctx = InferContext(lambda sym: module.weights[sym].type)
        self._weights: dict[str, Value] = {}
        self._consts: dict[tuple, Value] = {}
        self._memo: dict[tuple, list[Value]] = {}
        self.fold = True
        self.cse = False  # reuse an identical earlier node instead of adding a new one

    # -- leaves ---------------------------------------------------------------
    def input(self, name: str, type: TensorType) -> Value:
        return self.graph.add_input(name, type)

    def weight(self, weight: Weight) -> Value:
        value = self._weights.get(weight.name)
        if value is None:
            node = self.graph.create_node("weight", [], {"name": Sym(weight.name)}, [weight.type])
            value = self.graph.append(node).output
            self._weights[weight.name] = value
        return value

    def constant(self, array: np.ndarray) -> Value:
        array = constant_array(np.asarray(array))
        key = (array.dtype.str, array.shape, array.tobytes())
        value = self._consts.get(key)
        if value is None:
            node = self.graph.create_node("constant", [], {"value": array}, [TensorType.of(array)])
            value = self.graph.append(node).output
            self._consts[key] = value
        return value

    # -- ops ------------------------------------------------------------------
    def infer(self, op: str, inputs: Sequence[Value], attrs: dict[str, Attr]) -> list[TensorType]:
        return infer_types(get_op(op), [v.type for v in inputs], attrs, self.ctx)

    def op(self, op: str, inputs: Sequence[Value], attrs: dict[str, Attr] | None = None) -> list[Value]:
        """Append `op`, or fold it when every operand is a constant."""
        attrs = attrs or {}
        types = self.infer(op, inputs, attrs)
        if self.fold and inputs and all(const_value(v) is not None for v in inputs):
            folded = self._try_fold(op, inputs, attrs, types)
            if folded is not None:
                return folded
        key = None
        if self.cse:
            key = (op, tuple(id(v) for v in inputs), attrs_key(attrs))
            if key in self._memo:
                return self._memo[key]
        node = self.graph.create_node(op, list(inputs), attrs, types)
        outs = self.graph.append(node).outputs
        if key is not None:
            self._memo[key] = outs
        return outs

    def adopt(self, node: Node, inputs: Sequence[Value]) -> list[Value]:
        """What `op(node.op, inputs, node.attrs)` gives, for a node of another graph (which is given up) and
        operands of this graph with its operands' types: the node itself moves here, reading `inputs`, its
        result types known, unless it folds or repeats an earlier one. It arrives as `op` would build it: no
        location, no mapping."""
        if self.fold and inputs and all(const_value(v) is not None for v in inputs):
            return self.op(node.op, inputs, node.attrs)
        key = None
        if self.cse:
            key = (node.op, tuple(id(v) for v in inputs), attrs_key(node.attrs))
            if key in self._memo:
                return self._memo[key]
        node.loc, node.mapping = None, None
        outs = self.graph.adopt(node, inputs).outputs
        if key is not None:
            self._memo[key] = outs
        return outs

    def op1(self, op: str, inputs: Sequence[Value], attrs: dict[str, Attr] | None = None) -> Value:
        (out,) = self.op(op, inputs, attrs)
        return out

    def _try_fold(self, op, inputs, attrs, types) -> list[Value] | None:
        if sum(t.numel for t in types) > FOLD_LIMIT and not all(
                _is_splat(v) for v in inputs):
            return None
        with np.errstate(all="ignore"):
            results = get_op(op).eval([const_value(v) for v in inputs], attrs)
        return [self.constant(np.asarray(r, dtype=t.dtype.np).reshape(t.shape))
                for r, t in zip(results, types)]


def attrs_key(attrs: dict) -> tuple:
    """A hashable form of an attribute dict (arrays by type and bytes)."""
    if not attrs:
        return ()

    def one(v):
        if isinstance(v, np.ndarray):
            return ("array", v.dtype.str, v.shape, v.tobytes())
        return (type(v).__name__, v)
    return tuple((k, one(attrs[k])) for k in sorted(attrs))


def node_kind(node: Node) -> tuple:
    """What a node's result types, work and cost depend on, as a key: its op, operand and result types,
    attributes, and which operands are data (weights and constants)."""
    types, data = [], []
    for v in node.inputs:  # one pass, `is_data` inlined: asked for every node by several passes
        types.append(v.type)
        p = v.producer
        data.append(p is not None and REGISTRY[p.op].kind is OpKind.SOURCE)
    return (node.op, tuple(types), tuple([v.type for v in node.outputs]),
            attrs_key(node.attrs) if node.attrs else (), tuple(data))


def attrs_from_key(key: tuple) -> dict:
    """The attribute dict `attrs_key` describes (arrays rebuilt, read-only)."""
    def one(v):
        if v[0] == "array":
            _, dtype, shape, data = v
            return constant_array(np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape))
        return v[1]
    return {k: one(v) for k, v in key}


def const_value(value: Value) -> np.ndarray | None:
    """The data of a value produced by a `constant` node, else None."""
    node = value.producer
    if node is not None and node.op == "constant":
        return node.attrs["value"]
    return None


def _is_splat(value: Value) -> bool:
    a = const_value(value)
    return a is not None and (a.size <= 1 or bool(np.all(a == a.flat[0])))
