"""`canonicalize`: one frontend-independent form of an encoder.

The same model imported from the TorchScript exporter, the dynamo exporter
and torch.fx canonicalizes to the same graph: same ops, same order, same
weights. The pass rebuilds each graph node by node through a folding,
deduplicating `Builder` and applies local rules as it goes:

- constant folding, common-subexpression elimination, dead-code elimination;
- identities: x+0, x*1, x/1, x and true, x or false, where(const, a, b);
- `gather(weight, ids, axis 0)` is an `embedding`; `matmul(x, weight)` a
  `linear` (constant ids are flattened, the result reshaped);
- layout chains (reshape, transpose, broadcast, tile, slice, gathers with
  constant indices) are re-spelled canonically from their index maps
  (`passes.views`); elementwise ops move before layout chains that do not
  shrink the data (cast(reshape(x)) becomes reshape(cast(x))), and explicit
  broadcasts that numpy broadcasting does anyway are dropped;
- commutative ops take constants and weights as their second operand;
- a one-element weight that scales (an operand of mul or div) is a
  constant: it is the attention scale, which the dynamo exporter stores as
  an initializer and the other frontends as a number;
- `cast(cumsum(cast(x)))` from and back to the same integer type is a
  cumsum of x in that type (two's complement sums wrap alike: torch sums
  int32 in int64, the TorchScript exporter in int32).

Then `passes.fusion` recognizes linear + bias, GELU (the Gelu op, the erf
form, the tanh/Pow form) and the decomposed LayerNorm. Rounds repeat until
nothing changes; the nodes are finally put in a canonical order (operands
before users, depth first from the outputs) and renumbered. Last, tensors
that are copies of one parameter (equal bytes, read alike next to the same
weights: the dynamo exporter writes ALBERT's shared FFN matrices once per
layer) become one weight (`passes.positions.merge_copies`).

A graph that is another's but for which weights it reads (a decoder's
tasks and phases, adapter-ALBERT's tasks with heads of one width: same
ops, operands, attributes and types, its weights in the same pattern of
equal bytes) has the same canonical form but for those weights: it is
copied from the first such graph's with its own weights, not rebuilt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aalbert.ir.builder import Builder, attrs_key, const_value
from aalbert.ir.graph import Graph, Node, Sym, Value
from aalbert.ir.module import Module
from aalbert.ir.registry import OpKind, Trait, get_op, is_data, op_has
from aalbert.passes.base import Analyses, Pass, register_pass
from aalbert.passes.fusion import fuse
from aalbert.passes.positions import merge_copies
from aalbert.passes.views import Step, canonical_recipe, chain_view, is_numpy_broadcast

MAX_ROUNDS = 10


@register_pass
@dataclass(frozen=True)
class Canonicalize(Pass):
    name = "canonicalize"
    summary = "frontend-independent form: linear, gelu, layernorm, embedding, canonical layout; fold, CSE, DCE, order"

    def run(self, module: Module, analyses: Analyses) -> Module:
        cache = ChainCache()
        done: dict[tuple, tuple[Graph, list[str]]] = {}  # a graph's form -> its canonical graph, its weights
        for task in list(module.graphs):
            key, symbols = graph_form(module, module.graphs[task])
            if key in done:
                first, first_symbols = done[key]
                module.graphs[task] = with_weights(first, task, dict(zip(first_symbols, symbols)))
                continue
            graph = canonicalize_graph(module, module.graphs[task], cache)
            if merge_copies(module, graph):  # an exporter's copies of one parameter: one weight, then tidy
                graph = canonicalize_graph(module, graph, cache)
            module.graphs[task] = graph
            done[key] = graph, symbols
        module.remove_unused_weights()
        return module


def graph_form(module: Module, graph: Graph) -> tuple[tuple, list[str]]:
    """What canonicalizing `graph` depends on, with its weights as numbers (in order of first read), and those
    weights: its inputs, its nodes (ops, operands by position, attributes, result types), its outputs, and of
    each weight its type, which earlier weight has its bytes, and a one-element weight's value (which
    canonicalize makes a constant)."""
    position: dict[int, int] = {id(v): i for i, v in enumerate(graph.inputs)}
    symbols: dict[str, int] = {}
    first_of_hash: dict[str, int] = {}
    nodes = []
    for node in graph.nodes:
        if node.op == "weight":
            sym = node.attrs["name"].name
            if sym not in symbols:
                symbols[sym] = len(symbols)
            w = module.weights[sym]
            same = first_of_hash.setdefault(w.hash, symbols[sym])
            one = w.values().tobytes() if w.numel == 1 and w.data is not None else None
            attrs: tuple = ("weight", symbols[sym], same, w.type, one)
        else:
            attrs = attrs_key(node.attrs)
        nodes.append((node.op, tuple(position[id(v)] for v in node.inputs), attrs,
                      tuple(v.type for v in node.outputs)))
        for v in node.outputs:
            position[id(v)] = len(position)
    key = (tuple((v.name, v.type) for v in graph.inputs), tuple(nodes),
           tuple((name, position[id(v)]) for name, v in graph.outputs))
    return key, list(symbols)


def with_weights(graph: Graph, name: str, rename: dict[str, str]) -> Graph:
    """A copy of `graph` named `name`, reading weight `rename[s]` wherever it reads `s`."""
    new = graph.copy()
    new.name = name
    for node in new.nodes:
        if node.op == "weight":
            node.attrs = {"name": Sym(rename[node.attrs["name"].name])}
    return new


def canonicalize_graph(module: Module, graph: Graph, cache: ChainCache | None = None) -> Graph:
    """The canonical form of `graph`, which is given up: its nodes that need no rewriting move into the
    result."""
    cache = cache or ChainCache()
    previous = None
    for _ in range(MAX_ROUNDS):
        sweep = _Sweep(module, graph, cache)
        graph = sweep.run()
        changed = sweep.changed
        if fuse(module, graph):  # the sweep removed what it left dead; a fusion may leave more
            graph.remove_dead()
            changed = True
        schedule(graph)
        graph.renumber()
        if not changed:  # every node moved over as it was: this graph is its own next round
            break
        now = _fingerprint(graph)  # some rules rebuild what they built before: stop when nothing moves
        if now == previous:
            break
        previous = now
    return graph


def _fingerprint(graph: Graph) -> tuple:
    """Everything the printed graph shows (ops, operands by name, attributes, types), without printing it."""
    return (tuple((v.name, v.type) for v in graph.inputs),
            tuple((n.op, tuple(v.name for v in n.inputs), attrs_key(n.attrs), tuple(v.type for v in n.outputs))
                  for n in graph.nodes),
            tuple((name, v.name) for name, v in graph.outputs))


def schedule(graph: Graph) -> None:
    """Canonical order: depth first from the outputs, operands left to right."""
    order: list[Node] = []
    seen: set[int] = set()
    for _, out in graph.outputs:
        if out.producer is None or id(out.producer) in seen:
            continue
        nodes, next_operand = [out.producer], [0]  # the path being walked, and where each node of it is
        while nodes:
            node, i = nodes[-1], next_operand[-1]
            if i < len(node.inputs):
                next_operand[-1] = i + 1
                p = node.inputs[i].producer
                if p is not None and id(p) not in seen:
                    nodes.append(p)
                    next_operand.append(0)
            else:
                nodes.pop()
                next_operand.pop()
                seen.add(id(node))
                order.append(node)
    graph.reorder(order)


class ChainCache:
    """Index maps and canonical recipes of layout chains, by (source shape, steps)."""

    def __init__(self) -> None:
        self._info: dict[tuple, tuple] = {}

    def info(self, shape: tuple[int, ...], steps: tuple[Step, ...]):
        """(recipe or None, reads X as a numpy broadcast?, keeps or grows the element count?)."""
        key = (shape, steps)
        found = self._info.get(key)
        if found is None:
            out = shape
            for step in steps:
                out = step.result_shape(out)
            view = chain_view(shape, steps)
            found = (None, False) if view is None else (canonical_recipe(view, shape), is_numpy_broadcast(view, shape))
            found += (math.prod(out) >= math.prod(shape),)
            self._info[key] = found
        return found


_IDENTITY_OPS = frozenset({"add", "sub", "mul", "div", "and", "or", "cast", "where"})
_RULES: dict = {}  # OpDef -> the `_Sweep` rules that may rewrite its nodes


def _rules_for(opdef) -> tuple:
    """The rules that may rewrite a node of `opdef`, in the order they are tried (each returns None for any
    other op, so this only spares a graph of one op the calls that cannot match)."""
    rules = _RULES.get(opdef)
    if rules is None:
        op = opdef.name
        table = ((_Sweep._identity, op in _IDENTITY_OPS),
                 (_Sweep._embedding, op in ("gather", "embedding")),
                 (_Sweep._linear, op == "matmul"),
                 (_Sweep._layout, opdef.has(Trait.INDEX_MAP)),
                 (_Sweep._sink, opdef.kind is OpKind.ELEMENTWISE),
                 (_Sweep._narrow_cumsum, op == "cast"))
        rules = _RULES[opdef] = tuple(rule for rule, applies in table if applies)
    return rules


def _is_source(v: Value) -> bool:
    return is_data(v)


def _splat(v: Value):
    c = const_value(v)
    if c is None or c.size == 0:
        return None
    first = c.reshape(-1)[0]
    return first if np.all(c == first) else None


class _Sweep:
    def __init__(self, module: Module, old: Graph, cache: ChainCache):
        self.module = module
        self.old = old
        self.cache = cache
        self.new = Graph(old.name)
        self.b = Builder(module, self.new)
        self.b.cse = True
        self.views: dict[Value, tuple[Value, tuple[Step, ...]]] = {}
        self.changed = False  # whether the new graph differs from the old but for order and names

    def run(self) -> Graph:
        env: dict[Value, Value] = {}
        for v in self.old.inputs:
            env[v] = self.b.input(v.name, v.type)
        sources, distinct = 0, set()
        for node in self.old.nodes:
            outs = self.emit(node, [env[v] for v in node.inputs])
            if node.op in ("weight", "constant"):  # made anew, once per weight and per value
                sources += 1
                distinct.add(id(outs[0]))
            elif outs is not node.outputs:  # rewritten, folded or merged with an earlier node
                self.changed = True
            env.update(zip(node.outputs, outs))
        self.new.set_outputs((name, env[v]) for name, v in self.old.outputs)
        if len(distinct) < sources or self.new.remove_dead():
            self.changed = True
        return self.new

    # -- emission ---------------------------------------------------------------------------
    def emit(self, node: Node, ins: list[Value]) -> list[Value]:
        op, attrs = node.op, node.attrs
        mapped = ins
        if op == "weight":
            return [self.b.weight(self.module.weights[attrs["name"].name])]
        if op == "constant":
            return [self.b.constant(attrs["value"])]
        out_type = node.outputs[0].type
        opdef = get_op(op)
        if op in ("mul", "div"):
            ins = self._scales_as_constants(ins, out_type)
        if opdef.kind is OpKind.ELEMENTWISE and len(ins) > 1:
            ins = self._strip_broadcasts(op, ins, out_type.shape)
        for rule in _rules_for(opdef):
            result = rule(self, op, ins, attrs, out_type)
            if result is not None:
                return result
        if opdef.has(Trait.COMMUTATIVE) and _is_source(ins[0]) and not _is_source(ins[1]):
            ins = [ins[1], ins[0]]
        if len(ins) == len(node.inputs) and all(a.type == b.type for a, b in zip(ins, node.inputs)):
            if any(a is not b for a, b in zip(ins, mapped)):  # operands swapped or replaced
                self.changed = True
            return self.b.adopt(node, ins)  # no rule rewrote it: the node itself moves to the new graph
        return self.b.op(op, ins, attrs)

    def chain(self, src: Value, steps: tuple[Step, ...]) -> Value:
        """Emit the canonical spelling of `steps` applied to `src`."""
        if not steps:
            return src
        recipe, _, _ = self.cache.info(src.type.shape, steps)
        v = src
        if recipe is None:
            for step in steps:
                args = [v] + ([self.b.constant(np.frombuffer(step.index, step.index_dtype).reshape(step.index_shape))]
                              if step.index is not None else [])
                v = self.b.op1(step.op, args, dict(step.attrs))
        else:
            for op, attrs in recipe:
                v = self.b.op1(op, [v], dict(attrs))
        if v is not src:
            self.views[v] = (src, steps)
        return v

    def _layout_to(self, x: Value, op: str, attrs: dict, index: Value | None = None) -> Value:
        src, steps = self.views.get(x, (x, ()))
        if index is None:
            step = Step(op, tuple(sorted(attrs.items())))
        else:
            idx = const_value(index)
            step = Step(op, tuple(sorted(attrs.items())), idx.tobytes(), idx.shape, idx.dtype.str)
        return self.chain(src, steps + (step,))

    # -- rules (each returns the node's new results, or None) ------------------------------------
    def _identity(self, op, ins, attrs, out_type):
        x = None
        if op in ("add", "sub") and _splat(ins[1]) == 0:
            x = ins[0]
        elif op == "add" and _splat(ins[0]) == 0:
            x = ins[1]
        elif op in ("mul", "div") and _splat(ins[1]) == 1:
            x = ins[0]
        elif op == "mul" and _splat(ins[0]) == 1:
            x = ins[1]
        elif op == "and" and _splat(ins[1]) is not None and bool(_splat(ins[1])):
            x = ins[0]
        elif op == "and" and _splat(ins[0]) is not None and bool(_splat(ins[0])):
            x = ins[1]
        elif op == "or" and _splat(ins[1]) is not None and not bool(_splat(ins[1])):
            x = ins[0]
        elif op == "cast" and ins[0].type.dtype == out_type.dtype:
            x = ins[0]
        elif op == "where" and _splat(ins[0]) is not None:
            x = ins[1] if bool(_splat(ins[0])) else ins[2]
        if x is None or x.type.dtype != out_type.dtype:
            return None
        if x.type.shape != out_type.shape:
            x = self._layout_to(x, "broadcast", {"shape": out_type.shape})
        return [x]

    def _embedding(self, op, ins, attrs, out_type):
        if op == "gather":
            table, ids = ins
            if attrs["axis"] != 0 or table.type.rank != 2 or table.producer is None \
                    or table.producer.op != "weight":
                return None
        elif op != "embedding":
            return None
        table, ids = ins
        c = const_value(ids)
        if c is not None and c.ndim != 1:
            flat = self.b.op1("embedding", [table, self.b.constant(c.reshape(-1))])
            return [self._layout_to(flat, "reshape", {"shape": out_type.shape})]
        if op == "gather":
            return [self.b.op1("embedding", [table, ids])]
        return None

    def _linear(self, op, ins, attrs, out_type):
        if op != "matmul":
            return None
        x, w = ins
        if w.producer is None or w.producer.op != "weight" or w.type.rank != 2 or x.type.rank < 1:
            return None
        return [self.b.op1("linear", [x, w])]

    def _layout(self, op, ins, attrs, out_type):
        if not op_has(op, Trait.INDEX_MAP):
            return None
        index = None
        if len(ins) > 1:  # a gather: its constant indices are part of the map
            index = ins[1]
            if const_value(index) is None:
                return None
        return [self._layout_to(ins[0], op, dict(attrs), index)]

    def _sink(self, op, ins, attrs, out_type):
        """op(layout(x), scalars) -> layout(op(x, scalars)) when the layout does not shrink x."""
        if get_op(op).kind is not OpKind.ELEMENTWISE:
            return None
        viewed = [i for i, v in enumerate(ins) if v in self.views]
        if len(viewed) != 1:
            return None
        others = [v for i, v in enumerate(ins) if i != viewed[0]]
        if any(const_value(v) is None or const_value(v).size != 1 for v in others):
            return None
        src, steps = self.views[ins[viewed[0]]]
        _, _, grows = self.cache.info(src.type.shape, steps)
        if not grows:
            return None
        args = [src if i == viewed[0] else self.b.constant(const_value(v).reshape(()))
                for i, v in enumerate(ins)]
        inner = self.b.op1(op, args, attrs)
        return [self.chain(inner, steps)]

    def _scales_as_constants(self, ins, out_type):
        result = list(ins)
        for i, v in enumerate(ins):
            other = ins[1 - i]
            if v.producer is None or v.producer.op != "weight" or v.type.numel != 1 \
                    or other.type.shape != out_type.shape:
                continue
            weight = self.module.weights[v.producer.attrs["name"].name]
            if weight.data is not None:
                result[i] = self.b.constant(weight.values().reshape(()))
        return result

    def _narrow_cumsum(self, op, ins, attrs, out_type):
        """cast(cumsum(cast(x: T -> W)) -> T) with W at least as wide as T is cumsum(x) in T."""
        if op != "cast" or not out_type.dtype.is_int or ins[0].producer is None:
            return None
        total = ins[0].producer
        if total.op != "cumsum" or not total.output.type.dtype.is_int:
            return None
        widen = total.inputs[0].producer
        if widen is None or widen.op != "cast" or widen.inputs[0].type.dtype != out_type.dtype \
                or total.output.type.dtype.itemsize < out_type.dtype.itemsize:
            return None
        return [self.b.op1("cumsum", [widen.inputs[0]], dict(total.attrs))]

    def _strip_broadcasts(self, op, ins, out_shape):
        """Drop explicit broadcasts that the op's own numpy broadcasting performs."""
        result = list(ins)
        for i, v in enumerate(ins):
            if v not in self.views:
                continue
            src, steps = self.views[v]
            _, numpy_like, _ = self.cache.info(src.type.shape, steps)
            if not numpy_like:
                continue
            trial = result[:i] + [src] + result[i + 1:]
            try:
                shape = tuple(np.broadcast_shapes(*(t.type.shape for t in trial)))
            except ValueError:
                continue
            if shape == out_shape:
                result = trial
        return result
