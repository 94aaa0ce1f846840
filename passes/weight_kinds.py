"""What each weight is, read from the graph's structure (not from names).

Names differ between frontends (an ONNX file may call a linear weight
`onnx::MatMul_123`), structure does not. On a canonical graph:

- `embedding`: the table of an `embedding`;
- `layernorm`: the scale and shift of a `layernorm`;
- `lora`: the two matrices of a low-rank update, `linear(linear(x, A), B)`
  with a rank below both sizes, possibly scaled, added to a linear of the
  same x (LoRA, as PEFT and AdapterHub write it). It is a task's own;
- `attention`: linears whose result reaches an activation x activation
  `matmul` through nodes that only move, scale or low-rank-update it
  (q, k, v), or whose input comes from one (the output projection).
  Attention is written in many ways: the query scaled before the product
  (DistilBERT, torch's SDPA kernel, which scales query and key each by the
  root of the scale), reshaped and transposed into heads, q, k and v fused
  in one linear and split; all of them reach the product through such nodes;
- `ffn` / `adapter`: linears feeding or fed by an activation (gelu, relu,
  ...): an adapter narrows (its bottleneck is smaller than its input), an FFN
  widens;
- `head`: linears with no LayerNorm or softmax after them (pooler, classifier);
- `projection`: linears with no softmax before them (ALBERT's embedding
  projection);
- `other`: anything else.

Whether a node scales or adds is found by evaluating it on probe values, as
`fusion` recognizes GELU, not from its name. The answer depends only on the
node's op, attributes, operand types and small constant operands, so it is
kept by those: the layers of a graph and the graphs of a module (a
decoder's tasks and phases) ask the same questions, over activations that
may be megabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aalbert.ir.builder import attrs_key, const_value
from aalbert.ir.encoding import Kind
from aalbert.ir.graph import Graph, Node, Value
from aalbert.ir.registry import OpKind, Trait, get_op, op_has

TASK_KINDS = frozenset({"adapter", "lora"})  # kinds of weights that are a task's own whatever their bytes

_PROBE_SEED = 20240601
_KEY_ELEMENTS = 64           # constant operands up to this size are part of a remembered answer's key
_ANSWERS: dict[tuple, bool] = {}
_MAX_ANSWERS = 1 << 14


def _moves_data(op: str) -> bool:
    """Whether a value keeps its kind through `op`: layout ops that read it through an index map, and those
    that cut it into pieces or join it with others (split, concat: a fused q, k, v projection is split);
    not an embedding, which reads a table's rows."""
    return op_has(op, Trait.INDEX_MAP) or (get_op(op).kind is OpKind.LAYOUT and not op_has(op, Trait.GATHERS_ROWS))


@lru_cache(maxsize=8)
def _probe(shape: tuple[int, ...], dtype, salt: int = 0) -> np.ndarray:
    x = np.random.default_rng(_PROBE_SEED + salt).standard_normal(shape).astype(dtype)
    x.flags.writeable = False
    return x


def _answer(key: tuple | None, compute: Callable[[], bool]) -> bool:
    """`compute()`, remembered under `key` (None: not remembered)."""
    if key is None:
        return compute()
    found = _ANSWERS.get(key)
    if found is None:
        if len(_ANSWERS) >= _MAX_ANSWERS:
            _ANSWERS.clear()
        found = _ANSWERS[key] = compute()
    return found


def _operand_key(u: Value, v: Value) -> tuple | None:
    """What of operand `u` an answer about `v` depends on; None for a constant too big to key by."""
    if u is v:
        return ("probe",)
    c = const_value(u)
    if c is None:
        return ("number", u.type)
    if c.size > _KEY_ELEMENTS:
        return None
    return ("constant", c.dtype.str, c.shape, c.tobytes())


def _float_elementwise(node: Node) -> bool:
    return (get_op(node.op).kind is OpKind.ELEMENTWISE and not op_has(node.op, Trait.ACTIVATION)
            and node.output.type.dtype.is_float)


def _scales(node: Node, v: Value) -> bool:
    """Whether `node` is `v` times a factor: an elementwise op, not an activation, whose other operands are
    constants or one-element values, and which is odd and homogeneous in `v` (f(-2x) = -2 f(x)): a mul or
    div by a scale, a cast between float types."""
    if not _float_elementwise(node) or not v.type.dtype.is_float:
        return False
    if sum(1 for u in node.inputs if u is v) != 1 or node.output.type.shape != v.type.shape:
        return False
    if any(u is not v and u.type.numel != 1 and const_value(u) is None for u in node.inputs):
        return False
    operands = tuple(_operand_key(u, v) for u in node.inputs)
    key = None if None in operands else ("scales", node.op, attrs_key(node.attrs), v.type, operands)
    return _answer(key, lambda: _scales_probed(node, v))


def _scales_probed(node: Node, v: Value) -> bool:
    others = {}
    for u in node.inputs:
        if u is not v:
            c = const_value(u)
            others[id(u)] = c if c is not None else np.full(u.type.shape, 0.75, u.type.dtype.np)
    x = _probe(v.type.shape, v.type.dtype.np)

    def at(probe: np.ndarray) -> np.ndarray:
        args = [probe if u is v else others[id(u)] for u in node.inputs]
        with np.errstate(all="ignore"):
            return np.asarray(get_op(node.op).eval(args, node.attrs)[0], dtype=np.float64)
    y = at(x)
    return bool(np.isfinite(y).all() and np.any(y != 0) and np.allclose(at(-2 * x), -2 * y, rtol=1e-6, atol=0))


def _adds(node: Node) -> bool:
    """Whether `node` is the sum of its two operands (of one shape)."""
    if not _float_elementwise(node) or len(node.inputs) != 2:
        return False
    a, b = node.inputs
    if not (a.type == b.type == node.output.type):
        return False
    return _answer(("adds", node.op, attrs_key(node.attrs), a.type), lambda: _adds_probed(node))


def _adds_probed(node: Node) -> bool:
    a = node.inputs[0]
    p, q = _probe(a.type.shape, a.type.dtype.np), _probe(a.type.shape, a.type.dtype.np, 1)
    with np.errstate(all="ignore"):
        y = np.asarray(get_op(node.op).eval([p, q], node.attrs)[0], dtype=np.float64)
    return bool(np.allclose(y, p.astype(np.float64) + q, rtol=1e-6, atol=1e-6))


def _data_operand(node: Node) -> Value | None:
    """The one operand of `node` that is neither a constant nor a single number, if there is exactly one."""
    data = [u for u in node.inputs if const_value(u) is None and u.type.numel != 1]
    return data[0] if len(data) == 1 else None


def _weight_operand(v: Value) -> bool:
    return v.producer is not None and v.producer.op == "weight"


@dataclass(frozen=True)
class LowRank:
    """One low-rank update found in a graph: `add` sums `base`'s result (`kept`, possibly scaled) and
    `update`, which is `linear(linear(x, A), B)` (`down`, `up`) possibly scaled, x being `base`'s input."""

    add: Node
    base: Node
    down: Node
    up: Node
    kept: Value
    update: Value


class _Structure:
    """The graph's users, and its low-rank updates: which linears are LoRA's, and which adds apply them."""

    def __init__(self, graph: Graph):
        self.users = graph.users()
        self.lora: set[int] = set()          # ids of the linears of low-rank updates
        self.updates: dict[int, int] = {}    # id(add) -> id of the operand that is the updated linear's result
        self.pairs: list[LowRank] = []       # every low-rank update, in graph order of its B linear
        self._scaled: dict[tuple[int, int], bool] = {}
        for nb in graph.nodes:
            if nb.op == "linear" and len(nb.inputs) >= 2 and _weight_operand(nb.inputs[1]):
                self._low_rank(nb)

    def scales(self, node: Node, v: Value) -> bool:
        """`_scales`, evaluated once per node and operand."""
        key = (id(node), id(v))
        found = self._scaled.get(key)
        if found is None:
            found = self._scaled[key] = _scales(node, v)
        return found

    def _back_through_scales(self, v: Value) -> Value:
        while v.producer is not None:
            d = _data_operand(v.producer)
            if d is None or not self.scales(v.producer, d):
                break
            v = d
        return v

    def _forward_scales(self, v: Value) -> list[tuple[Node, Value]]:
        """(reader, operand) of v's readers past nodes that scale it."""
        found, stack = [], [v]
        while stack:
            w = stack.pop()
            for u in self.users.get(w, []):
                if self.scales(u, w):
                    stack.append(u.output)
                else:
                    found.append((u, w))
        return found

    def _low_rank(self, nb: Node) -> None:
        na = self._back_through_scales(nb.inputs[0]).producer
        if na is None or na.op != "linear" or len(na.inputs) < 2 or not _weight_operand(na.inputs[1]):
            return
        a, b = na.inputs[1].type.shape, nb.inputs[1].type.shape
        if len(a) != 2 or len(b) != 2 or a[1] != b[0] or not (a[1] < a[0] and b[0] < b[1]):
            return
        x = na.inputs[0]
        for add, update in self._forward_scales(nb.output):
            if not _adds(add):
                continue
            other = add.inputs[1] if add.inputs[0] is update else add.inputs[0]
            base = self._back_through_scales(other).producer
            if (base is not None and base.op == "linear" and base is not na and base.inputs[0] is x
                    and len(base.inputs) >= 2 and base.inputs[1].type.shape == (a[0], b[1])):
                self.lora.update((id(na), id(nb)))
                self.updates[id(add)] = id(other)
                self.pairs.append(LowRank(add, base, na, nb, other, update))

    def passes_on(self, node: Node, v: Value) -> bool:
        """Whether `node`'s result is still `v` as far as kinds go: `v` moved, cut, joined, scaled, or given
        its low-rank update."""
        return _moves_data(node.op) or self.scales(node, v) or self.updates.get(id(node)) == id(v)

    def readers(self, v: Value) -> list[Node]:
        """The readers of v that do more than pass it on, looking through those that do."""
        found, stack, done = [], [v], set()
        while stack:
            w = stack.pop()
            for u in self.users.get(w, []):
                if (id(u), id(w)) in done:
                    continue
                done.add((id(u), id(w)))
                if self.passes_on(u, w):
                    stack.extend(u.outputs)
                else:
                    found.append(u)
        return found

    def source(self, v: Value) -> Node | None:
        """The producer of v's data, looking back through nodes that move, scale or update it."""
        while v.producer is not None:
            p = v.producer
            if _moves_data(p.op) and p.inputs:
                v = p.inputs[0]
                continue
            if id(p) in self.updates:
                v = next(u for u in p.inputs if id(u) == self.updates[id(p)])
                continue
            d = _data_operand(p)
            if d is not None and self.scales(p, d):
                v = d
                continue
            break
        return v.producer


def low_rank_updates(graph: Graph) -> list[LowRank]:
    """The graph's low-rank updates (LoRA pairs), found by structure as `lora` weights are."""
    return _Structure(graph).pairs


def use_kinds(graph: Graph) -> dict[tuple[int, int], Kind]:
    """(id of a node, operand index) -> kind, for every weight a node of the graph reads."""
    if not any(n.op in ("embedding", "layernorm", "linear") for n in graph.nodes):
        return {}  # only these readers give a weight a kind
    s = _Structure(graph)
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
                               for u in s.users.get(v, []))
    kinds: dict[tuple[int, int], Kind] = {}

    def mark(n: Node, i: int, kind: Kind) -> None:
        if _weight_operand(n.inputs[i]):
            kinds[id(n), i] = kind

    for n in graph.nodes:
        if n.op == "embedding":
            mark(n, 0, "embedding")
        elif n.op == "layernorm":
            for i in range(1, len(n.inputs)):
                mark(n, i, "layernorm")
        elif n.op == "linear":
            kind: Kind = "lora" if id(n) in s.lora else _linear_kind(n, s, before, after)
            for i in range(1, len(n.inputs)):
                mark(n, i, kind)
    return kinds


def classify(graph: Graph) -> dict[str, Kind]:
    """Weight symbol -> kind, for the weights this graph reads (a weight read in several ways: its first)."""
    kinds = use_kinds(graph)
    found: dict[str, Kind] = {}
    for n in graph.nodes:
        for i, v in enumerate(n.inputs):
            kind = kinds.get((id(n), i))
            if kind is not None:
                found.setdefault(v.producer.attrs["name"].name, kind)
    return found


def _linear_kind(n: Node, s: _Structure, before, after) -> Kind:
    x, w = n.inputs[0], n.inputs[1]
    y = n.output
    k_in, k_out = w.type.shape
    readers = s.readers(y)
    src = s.source(x)
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

