"""What each weight is, read from the graph's structure (not from names).

Names differ between frontends (an ONNX file may call a linear weight
`onnx::MatMul_123`), structure does not. On a canonical graph:

- `embedding`: the table of an `embedding`;
- `layernorm`: the scale and shift of a `layernorm`;
- `attention`: linears whose result reaches an activation x activation
  `matmul` through layout ops only (q, k, v), or whose input comes from
  one (the output projection);
- `ffn` / `adapter`: linears feeding or fed by an activation (gelu, relu,
  ...): an adapter narrows (its bottleneck is smaller than its input), an FFN
  widens;
- `head`: linears with no LayerNorm or softmax after them (pooler, classifier);
- `projection`: linears with no softmax before them (ALBERT's embedding
  projection);
- `other`: anything else.
"""

from __future__ import annotations

from aalbert.ir.graph import Graph, Node, Value
from aalbert.ir.module import Module
from aalbert.ir.registry import OpKind, Trait, get_op, op_has


def _moves_data(op: str) -> bool:
    """Whether a value keeps its kind through `op`: layout ops that read it through an index map, and those
    that cut it into pieces or join it with others (split, concat: a fused q, k, v projection is split);
    not an embedding, which reads a table's rows."""
    return op_has(op, Trait.INDEX_MAP) or (get_op(op).kind is OpKind.LAYOUT and not op_has(op, Trait.GATHERS_ROWS))


def _through_layout(v: Value, users: dict[Value, list[Node]]) -> list[Node]:
    """The non-layout readers of v, looking through layout ops."""
    found, stack = [], [v]
    while stack:
        for u in users.get(stack.pop(), []):
            if _moves_data(u.op):
                stack.extend(u.outputs)
            else:
                found.append(u)
    return found


def _source_through_layout(v: Value) -> Node | None:
    while v.producer is not None and _moves_data(v.producer.op):
        v = v.producer.inputs[0]
    return v.producer


def classify(graph: Graph) -> dict[str, str]:
    """Weight symbol -> kind, for the weights this graph reads."""
    if not any(n.op in ("embedding", "layernorm", "linear") for n in graph.nodes):
        return {}  # only these readers give a weight a kind
    users = graph.users()
    producers = {id(v): n for n in graph.nodes for v in n.outputs}
    # softmax somewhere before / LayerNorm or softmax somewhere after, for every value
    before: dict[int, bool] = {}
    for n in graph.nodes:
        flag = n.op == "softmax" or any(before.get(id(v), False) for v in n.inputs)
        for v in n.outputs:
            before[id(v)] = flag
    after: dict[int, bool] = {}
    for n in reversed(graph.nodes):
        for v in n.outputs:
            after[id(v)] = any(u.op in ("layernorm", "softmax") or any(after.get(id(o), False) for o in u.outputs)
                               for u in users.get(v, []))
    kinds: dict[str, str] = {}

    def mark(v: Value, kind: str) -> None:
        p = producers.get(id(v))
        if p is not None and p.op == "weight":
            kinds.setdefault(p.attrs["name"].name, kind)

    for n in graph.nodes:
        if n.op == "embedding":
            mark(n.inputs[0], "embedding")
        elif n.op == "layernorm":
            for v in n.inputs[1:]:
                mark(v, "layernorm")
        elif n.op == "linear":
            kind = _linear_kind(n, users, before, after)
            for v in n.inputs[1:]:
                mark(v, kind)
    return kinds


def _linear_kind(n: Node, users, before, after) -> str:
    x, w = n.inputs[0], n.inputs[1]
    y = n.output
    k_in, k_out = w.type.shape
    readers = _through_layout(y, users)
    src = _source_through_layout(x)
    if any(r.op == "matmul" for r in readers) or (src is not None and src.op == "matmul"):
        return "attention"
    if any(op_has(r.op, Trait.ACTIVATION) for r in readers):
        return "adapter" if k_out < k_in else "ffn"
    if src is not None and op_has(src.op, Trait.ACTIVATION):
        return "adapter" if k_in < k_out else "ffn"
    if not after.get(id(y), False):
        return "head"
    if not before.get(id(x), False):
        return "projection"
    return "other"


def weight_kinds(module: Module) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for graph in module.graphs.values():
        for name, kind in classify(graph).items():
            kinds.setdefault(name, kind)
    return kinds
