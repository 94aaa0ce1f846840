"""Where a weight is read: what tells tensors with equal bytes apart.

Bytes alone do not say which weight a tensor is. A freshly initialised
model's biases are all zero and its LayerNorm scales all one, LoRA's B
matrices start at zero, and an exporter may write one parameter several
times (the dynamo exporter writes ALBERT's shared FFN matrices once per
layer). What tells them apart is where they are read.

A *landmark* is a weight whose bytes no other weight of the graph has (a
trained or random matrix is its own landmark). A use of a weight is
described by the node that reads it (its op and the operand) and by the
landmarks nearest that node: breadth first over the graph, through operands
and users alike, the landmarks read at the first distance where there are
any (distance 0: the other weights the node itself reads, as a bias's
matrix). A zero query bias is "operand 2 of a linear beside the query
matrix", a LayerNorm scale "operand 1 of a layernorm next to the linears
that read its result".

`merge_copies` uses this within one graph: tensors with equal bytes, of one
kind, whose every use is described alike, are one parameter written more
than once. `share` uses it across tasks, with the landmarks every task
reads (`passes.share`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aalbert.ir.graph import Graph, Node, Sym
from aalbert.ir.module import Module
from aalbert.ir.registry import OpKind, get_op
from aalbert.passes.weight_kinds import classify

MAX_DISTANCE = 6     # how far from the reading node landmarks are looked for
MAX_VISITED = 4096   # nodes looked at per use, at most


@dataclass(frozen=True, order=True)
class Use:
    """One read of a weight: the reading node's op, the operand, and the landmarks nearest it (their content
    hashes), found at `distance` (-1: none within reach)."""

    op: str
    operand: int
    distance: int
    landmarks: tuple[str, ...]

    @property
    def placed(self) -> bool:
        return self.distance >= 0


def weight_symbol(node: Node) -> str | None:
    return node.attrs["name"].name if node.op == "weight" else None


def symbols_in_order(graph: Graph) -> list[str]:
    """The weights a graph reads, in the order of their weight nodes."""
    return list(dict.fromkeys(s for n in graph.nodes if (s := weight_symbol(n)) is not None))


class Neighbourhood:
    """Landmarks near the nodes of one graph."""

    def __init__(self, module: Module, graph: Graph, landmark: Callable[[str], bool]):
        self.module = module
        self.graph = graph
        self.landmark = landmark
        self.users = graph.users()
        self.reads: dict[str, list[tuple[Node, int]]] = {}  # symbol -> (reading node, operand), in order
        for node in graph.nodes:
            for i, s in self._read(node):
                self.reads.setdefault(s, []).append((node, i))

    def _read(self, node: Node) -> list[tuple[int, str]]:
        """(operand index, symbol) of the weights `node` reads."""
        return [(i, s) for i, v in enumerate(node.inputs)
                if v.producer is not None and (s := weight_symbol(v.producer)) is not None]

    def _neighbours(self, node: Node) -> list[Node]:
        found = [v.producer for v in node.inputs if v.producer is not None
                 and v.producer.op not in ("weight", "constant")]
        for out in node.outputs:
            found.extend(self.users.get(out, []))
        return found

    def uses(self, symbol: str, reach: int = MAX_DISTANCE) -> list[Use]:
        """Every read of `symbol` in the graph, described with the landmarks at most `reach` nodes away."""
        h = self.module.weights[symbol].hash
        return [self._describe(node, i, h, reach) for node, i in self.reads.get(symbol, ())]

    def _describe(self, reader: Node, operand: int, own_hash: str, reach: int) -> Use:
        frontier, seen, distance = [reader], {id(reader)}, 0
        visited = 1
        while frontier and distance <= reach:
            marks = set()
            for node in frontier:
                for i, s in self._read(node):
                    if node is reader and i == operand:
                        continue
                    h = self.module.weights[s].hash
                    if h != own_hash and self.landmark(h):
                        marks.add(h)
            if marks:
                return Use(reader.op, operand, distance, tuple(sorted(marks)))
            if distance == reach:
                break
            following = []
            for node in frontier:
                for nb in self._neighbours(node):
                    if id(nb) not in seen and visited < MAX_VISITED:
                        seen.add(id(nb))
                        visited += 1
                        following.append(nb)
            frontier, distance = following, distance + 1
        return Use(reader.op, operand, -1, ())


def merge_copies(module: Module, graph: Graph) -> int:
    """Make one weight of the tensors of `graph` that are copies of one parameter: equal bytes, one kind,
    every use described alike (and placed near some landmark). Returns how many symbols went.

    Repeats until nothing merges, since a merged copy may become the landmark its neighbours needed."""
    merged = 0
    while True:
        symbols = symbols_in_order(graph)
        by_hash: dict[str, list[str]] = {}
        for s in symbols:
            by_hash.setdefault(module.weights[s].hash, []).append(s)
        if all(len(v) == 1 for v in by_hash.values()):
            return merged
        kinds = classify(graph)
        around = Neighbourhood(module, graph, lambda h: len(by_hash.get(h, ())) == 1)  # noqa: B023 (this round's)
        rename: dict[str, str] = {}
        for group in by_hash.values():
            if len(group) < 2:
                continue
            first: dict[tuple, str] = {}
            for s in group:
                uses = around.uses(s)
                if not uses or not all(u.placed for u in uses):
                    continue
                key = (kinds.get(s, "other"), tuple(sorted(set(uses))))
                if key in first:
                    rename[s] = first[key]
                else:
                    first[key] = s
        if not rename:
            return merged
        for node in graph.nodes:
            s = weight_symbol(node)
            if s in rename:
                node.attrs = {"name": Sym(rename[s])}
        _dedupe_weight_nodes(graph)
        merged += len(rename)


def _dedupe_weight_nodes(graph: Graph) -> None:
    """One weight node per symbol: the readers of later ones read the first (which comes before them)."""
    first: dict[str, Node] = {}
    for node in graph.nodes:
        s = weight_symbol(node)
        if s is None:
            continue
        if s in first:
            graph.replace_uses(node.output, first[s].output)
        else:
            first[s] = node
    graph.remove_dead()


def _one_data_operand(node: Node) -> bool:
    """An elementwise node of one operand that is not a constant (a scaling, an activation, a cast)."""
    return get_op(node.op).kind is OpKind.ELEMENTWISE and \
        sum(1 for v in node.inputs if v.producer is None or v.producer.op != "constant") == 1


def beside(module: Module, node: Node, operand: int, landmark: Callable[[str], bool],
           users: dict | None = None, pairs: bool = False) -> tuple[str, ...]:
    """The landmarks read right beside one read of a weight: by the reading node itself (a bias's matrix),
    and with `pairs`, for a linear, by the linears feeding or fed by it through elementwise nodes only (the
    other half of a pair: a LoRA B's A, an adapter up-projection's down-projection)."""
    own = module.weights[node.inputs[operand].producer.attrs["name"].name].hash
    found: set[str] = set()

    def take(n: Node, skip: int | None = None) -> None:
        for i, v in enumerate(n.inputs):
            s = weight_symbol(v.producer) if v.producer is not None and i != skip else None
            if s is not None:
                h = module.weights[s].hash
                if h != own and landmark(h):
                    found.add(h)
    take(node, operand)
    if pairs and node.op == "linear":
        v = node.inputs[0]
        while v.producer is not None and _one_data_operand(v.producer):
            v = next(u for u in v.producer.inputs if u.producer is None or u.producer.op != "constant")
        if v.producer is not None and v.producer.op == "linear":
            take(v.producer)
        stack = [node.output]
        while stack:
            w = stack.pop()
            for u in (users or {}).get(w, []):
                if u.op == "linear" and u.inputs[0] is w:
                    take(u)
                elif _one_data_operand(u):
                    stack.append(u.output)
    return tuple(sorted(found))
