"""Pattern fusions for canonical form: linear + bias, GELU, SiLU, LayerNorm.

Run on a graph after a canonicalizing sweep (constants and weights are then
second operands of commutative ops). Each fusion replaces the uses of the
pattern's result with one new node placed where the result was; the dead
remainder goes with dead-code elimination.

GELU is recognized by what it computes, not by how it is spelled: the
elementwise region between a tanh/erf and its single input x is evaluated on
probe values and compared with both GELU forms. That covers the Gelu op's
decompositions by every exporter (x*x*x or Pow(x, 3), 0.5*x*(...) or
x*0.5*(...), Div by sqrt(2) or Mul by its reciprocal). SiLU is x * sigmoid(x)
(in either order), as exporters and torch's decomposition write it.
"""

from __future__ import annotations

import functools

import numpy as np

from aalbert.ir.builder import attrs_from_key, attrs_key, const_value
from aalbert.ir.graph import Graph, Node, Value
from aalbert.ir.module import Module
from aalbert.ir.ops.elementwise import gelu
from aalbert.ir.registry import OpKind, get_op, is_data
from aalbert.ir.types import TensorType
from aalbert.limits import check_bytes

GELU_SEARCH_DEPTH = 8


def fuse(module: Module, graph: Graph) -> int:
    count = 0
    count += _fuse_linear_bias(graph)
    count += _fuse_gelu(graph)
    count += _fuse_silu(graph)
    count += _fuse_layernorm(graph)
    count += _round_eps(graph)
    return count


def _replace(graph: Graph, old: Node, op: str, inputs: list[Value], attrs: dict) -> None:
    """Put a new node where `old` is and make the readers of old's result read it."""
    t = get_op(op).infer([v.type for v in inputs], attrs, None)
    graph.replace_node(old, graph.create_node(op, inputs, attrs, t))


def _producer(v: Value, op: str) -> Node | None:
    return v.producer if v.producer is not None and v.producer.op == op else None


def _nodes_of(graph: Graph, op: str) -> list[Node]:
    """The graph's nodes of one op, listed first (a fusion replaces nodes as it goes)."""
    return [n for n in graph.nodes if n.op == op]


def _is_data(v: Value) -> bool:
    return is_data(v)


# -- linear + bias ------------------------------------------------------------------------------------
def _fuse_linear_bias(graph: Graph) -> int:
    adds = _nodes_of(graph, "add")
    if not adds:
        return 0
    users = graph.users()
    outputs = {id(v) for _, v in graph.outputs}
    n = 0
    for node in adds:
        a, b = node.inputs
        lin = _producer(a, "linear")
        if lin is None or len(lin.inputs) != 2 or not _is_data(b) or len(users[a]) != 1 or id(a) in outputs:
            continue
        width = lin.inputs[1].type.shape[1]
        if b.type.shape != (width,) or b.type.dtype != a.type.dtype:
            continue
        _replace(graph, node, "linear", [lin.inputs[0], lin.inputs[1], b], {})
        n += 1
    return n


# -- GELU -------------------------------------------------------------------------------------------------
def _region(y: Value, x: Value) -> list[Node] | None:
    """The elementwise nodes between x and y (constants included), if x is y's only other input."""
    nodes: dict[int, Node] = {}
    stack = [y]
    while stack:
        v = stack.pop()
        if v is x:
            continue
        p = v.producer
        if p is None:
            return None
        if id(p) in nodes:
            continue
        if p.op == "constant":
            nodes[id(p)] = p
            continue
        if get_op(p.op).kind is not OpKind.ELEMENTWISE or len(p.outputs) != 1:
            return None
        nodes[id(p)] = p
        stack.extend(p.inputs)
    return list(nodes.values())


def _single_input(node: Node) -> Value | None:
    """The one non-constant value feeding the elementwise region that ends at `node`."""
    sources: set[int] = set()
    found: list[Value] = []
    stack = list(node.inputs)
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        p = v.producer
        if p is not None and p.op == "constant":
            continue
        if p is not None and get_op(p.op).kind is OpKind.ELEMENTWISE and len(p.inputs) >= 1:
            stack.extend(p.inputs)
            continue
        if id(v) not in sources:
            sources.add(id(v))
            found.append(v)
    return found[0] if len(found) == 1 else None


def _probe(region: list[Node], graph_order: dict[int, int], x: Value, y: Value) -> str | None:
    ordered = sorted(region, key=lambda n: graph_order[id(n)])
    index = {id(x): 0}
    sig = []
    for i, n in enumerate(ordered, start=1):
        for v in n.outputs:
            index[id(v)] = i
        sig.append((n.op, attrs_key(n.attrs), tuple(index.get(id(v), -1) for v in n.inputs)))
    return _gelu_form(x.type, tuple(sig), index[id(y)])


def _probe_shape(shape: tuple[int, ...], constants: list[tuple[int, ...]]) -> tuple[int, ...]:
    """x's shape with 1 on every axis where no constant has a size other than 1 (aligned from the right, as
    numpy broadcasts)."""
    rank = len(shape)
    spanned = [any(len(c) >= rank - a and c[len(c) - (rank - a)] != 1 for c in constants) for a in range(rank)]
    return tuple(d if spanned[a] else 1 for a, d in enumerate(shape))


@functools.lru_cache(maxsize=4096)
def _gelu_form(x_type: TensorType, region: tuple, y_index: int) -> str | None:
    """The GELU form ('tanh' or 'none') the region computes from x (position 0), if any: evaluated on probe
    values. The region is (op, attributes key, operand positions) per node, which determines it fully."""
    dt = x_type.dtype.np
    # The region is elementwise: an axis of x that no constant spans is probed at size 1 (a batch of 10^9
    # made the probe, and every value of the region, that large).
    shape = _probe_shape(x_type.shape, [attrs_from_key(key)["value"].shape for op, key, _ in region
                                        if op == "constant"])
    numel = int(np.prod(shape, dtype=np.int64))
    # at least ~200 probe points: a leading axis broadcasts against every constant of the region
    reps = max(1, -(-200 // max(numel, 1)))
    check_bytes((len(region) + 2) * reps * numel * x_type.dtype.itemsize, f"probing {len(region)} nodes on "
                f"{x_type} for a GELU")
    values = np.concatenate([np.linspace(-6, 6, 193), [-20, -3.1, 0.0, 0.7, 2.5, 20]]).astype(dt)
    probe = np.resize(values, (reps,) + shape)
    env = {0: probe}
    with np.errstate(all="ignore"):
        for i, (op, key, operands) in enumerate(region, start=1):
            attrs = attrs_from_key(key)
            if op == "constant":
                env[i] = attrs["value"]
                continue
            (env[i],) = get_op(op).eval([env[j] for j in operands], attrs)
    got = env[y_index]
    for approx in ("tanh", "none"):
        want = gelu(probe, approx)
        if got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-5):
            return approx
    return None


def _fuse_gelu(graph: Graph) -> int:
    if not any(node.op in ("tanh", "erf") for node in graph.nodes):
        return 0
    users = graph.users()
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    n_fused = 0
    for node in list(graph.nodes):
        if node.op not in ("tanh", "erf") or id(node) not in order:
            continue
        x = _single_input(node)
        if x is None or not x.type.dtype.is_float:
            continue
        # candidate results: elementwise descendants of the tanh/erf, nearest first
        candidates, frontier = [], [node.output]
        for _ in range(GELU_SEARCH_DEPTH):
            nxt = []
            for v in frontier:
                for u in users.get(v, []):
                    if get_op(u.op).kind is OpKind.ELEMENTWISE and len(u.outputs) == 1:
                        candidates.append(u)
                        nxt.append(u.output)
            frontier = nxt
        for cand in sorted({id(c): c for c in candidates}.values(), key=lambda c: -order[id(c)]):
            y = cand.output
            if y.type != x.type:
                continue
            region = _region(y, x)
            if region is None:
                continue
            approx = _probe(region, order, x, y)
            if approx is not None:
                _replace(graph, cand, "gelu", [x], {"approximate": approx})
                n_fused += 1
                break
    return n_fused


def _fuse_silu(graph: Graph) -> int:
    n = 0
    for node in _nodes_of(graph, "mul"):
        a, b = node.inputs
        for x, gate in ((a, b), (b, a)):
            sig = _producer(gate, "sigmoid")
            if sig is not None and sig.inputs[0] is x and node.output.type == x.type:
                _replace(graph, node, "silu", [x], {})
                n += 1
                break
    return n


# -- LayerNorm ------------------------------------------------------------------------------------------
def _trailing(axes: tuple[int, ...], rank: int) -> bool:
    return len(axes) > 0 and axes == tuple(range(rank - len(axes), rank))


def _mean_of(v: Value, rank: int) -> tuple[Value, tuple[int, ...]] | None:
    p = _producer(v, "reduce_mean")
    if p is None or not p.attrs["keepdims"] or not _trailing(p.attrs["axes"], rank):
        return None
    return p.inputs[0], p.attrs["axes"]


def _fuse_layernorm(graph: Graph) -> int:
    divs = _nodes_of(graph, "div")
    if not divs:
        return 0
    users = graph.users()
    n = 0
    for node in divs:
        centered, denom = node.inputs
        sub = _producer(centered, "sub")
        sqrt = _producer(denom, "sqrt")
        if sub is None or sqrt is None:
            continue
        x, mean = sub.inputs
        rank = x.type.rank
        m = _mean_of(mean, rank)
        if m is None or m[0] is not x:
            continue
        axes = m[1]
        add = _producer(sqrt.inputs[0], "add")
        if add is None or _splat_value(add.inputs[1]) is None:
            continue
        eps = float(_splat_value(add.inputs[1]))
        v = _mean_of(add.inputs[0], rank)
        if v is None or v[1] != axes or not _is_square_of(v[0], centered):
            continue
        axis = rank - len(axes)
        norm_shape = x.type.shape[axis:]
        result, last = node.output, node
        scale = bias = None
        (u,) = users[result] if len(users[result]) == 1 else (None,)
        if u is not None and u.op == "mul" and u.inputs[0] is result and _fits(u.inputs[1], norm_shape):
            scale, result, last = u.inputs[1], u.output, u
            (u,) = users[result] if len(users[result]) == 1 else (None,)
            if u is not None and u.op == "add" and u.inputs[0] is result and _fits(u.inputs[1], norm_shape):
                bias, result, last = u.inputs[1], u.output, u
        if scale is None:
            ones = graph.create_node("constant", [], {"value": np.ones(norm_shape, dtype=x.type.dtype.np)},
                                     [x.type.with_shape(norm_shape)])
            graph.insert(graph.nodes.index(node), ones)
            scale = ones.output
        args = [x, scale] + ([bias] if bias is not None else [])
        _replace(graph, last, "layernorm", args, {"axis": axis, "eps": eps})
        n += 1
    return n


def _splat_value(v: Value):
    c = const_value(v)
    if c is None or c.size == 0 or not np.all(c == c.reshape(-1)[0]):
        return None
    return c.reshape(-1)[0]


def _is_square_of(v: Value, d: Value) -> bool:
    p = v.producer
    if p is None:
        return False
    if p.op == "pow":
        return p.inputs[0] is d and _splat_value(p.inputs[1]) == 2
    return p.op == "mul" and p.inputs[0] is d and p.inputs[1] is d


def _fits(v: Value, norm_shape: tuple[int, ...]) -> bool:
    if not _is_data(v) or v.type.rank > len(norm_shape):
        return False
    try:
        return tuple(np.broadcast_shapes(v.type.shape, norm_shape)) == tuple(norm_shape)
    except ValueError:
        return False


def _round_eps(graph: Graph) -> int:
    """LayerNorm eps in the precision it is used at (ONNX stores it as float32)."""
    n = 0
    for node in graph.nodes:
        if node.op == "layernorm" and node.inputs[0].type.dtype.np == np.float32:
            eps = float(np.float32(node.attrs["eps"]))
            if eps != node.attrs["eps"]:
                node.attrs = {**node.attrs, "eps": eps}
                n += 1
    return n
