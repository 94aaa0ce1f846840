"""SSA graphs: `Value`, `Node` and `Graph`.

A graph is an ordered list of nodes, each `op(inputs) -> outputs` with
attributes; every value is defined exactly once, before its uses. Graph
inputs are values without a producer; graph outputs are named references to
values. The list order is the program order; analyses that want a real graph
take `ir.analysis.to_digraph`.

As in torch.fx, the graph keeps use lists: which of its nodes read each value
(`readers`, in the order the reads were added). A node's uses are recorded
when it enters the graph (`append`, `adopt`, `insert`) and kept up to date
when its operands change (`set_inputs`), when it is replaced
(`replace_node`, `replace_uses`) and when dead nodes go (`remove_dead`). The
node list is changed only through these methods and `reorder`; the verifier
checks the use lists against the nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aalbert.errors import Loc
from aalbert.ir.mapping import Mapping
from aalbert.ir.placement import Arena
from aalbert.ir.types import TensorType


@dataclass(frozen=True)
class Sym:
    """A reference to a module-level symbol (a weight), printed `@name`."""

    name: str

    def __str__(self) -> str:
        return self.name


# An attribute value: int, float, bool, str, Sym, tuple of ints or floats,
# or a numpy array (a dense constant, frozen by `constant_array`).
Attr = Any


def constant_array(value: np.ndarray) -> np.ndarray:
    """Freeze an array for use as a constant attribute."""
    a = np.array(value, copy=True, order="C")
    a.setflags(write=False)
    return a


class Value:
    """An SSA value: a graph input or one result of a node."""

    __slots__ = ("name", "type", "producer", "index", "offset")

    def __init__(self, name: str, type: TensorType, producer: Node | None = None, index: int = 0):
        self.name = name
        self.type = type
        self.producer = producer
        self.index = index
        self.offset: int | None = None  # byte offset in the graph's activation arena, once planned

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One operation. `attrs` maps attribute names to immutable values; `graph` is the graph it is in."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "loc", "mapping", "graph")

    def __init__(self, op: str, inputs: list[Value], attrs: dict[str, Attr],
                 outputs: list[Value], loc: Loc | None = None):
        self.op = op
        self.inputs: tuple[Value, ...] = tuple(inputs)  # change them with `Graph.set_inputs`
        self.attrs = attrs
        self.outputs = outputs
        self.loc = loc
        self.mapping: Mapping | None = None  # how a matrix product runs on the target, once mapped
        self.graph: Graph | None = None

    @property
    def output(self) -> Value:
        (out,) = self.outputs
        return out

    def __repr__(self) -> str:
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self.inputs)
        return f"{outs} = {self.op}({ins})"


@dataclass
class Graph:
    """One task's computation. Outputs are (name, value) pairs."""

    name: str
    inputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: list[tuple[str, Value]] = field(default_factory=list)
    arena: Arena | None = None  # once activations are planned
    _names: set[str] = field(default_factory=set, repr=False)
    _counter: int = field(default=0, repr=False)
    _uses: dict[Value, list[Node]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for node in self.nodes:  # a graph made with nodes already in it
            self._enter(node)

    # -- use lists ----------------------------------------------------------
    def _add_uses(self, node: Node) -> None:
        uses = self._uses
        for v in node.inputs:  # a node reading a value twice is listed twice
            readers = uses.get(v)
            if readers is None:
                uses[v] = [node]
            else:
                readers.append(node)

    def _drop_uses(self, node: Node) -> None:
        uses = self._uses
        for v in node.inputs:
            readers = uses.get(v)
            if readers is not None and node in readers:
                readers.remove(node)

    def _enter(self, node: Node) -> None:
        if node.graph is not None and node.graph is not self:
            node.graph._drop_uses(node)  # moved from another graph: it reads nothing there any more
        node.graph = self
        self._add_uses(node)

    def readers(self, value: Value) -> list[Node]:
        """The nodes of this graph that read `value` (a node once per read), in the order the reads were added
        (program order, unless nodes were inserted or operands changed since the last `reorder`)."""
        return list(self._uses.get(value, ()))

    # -- construction -------------------------------------------------------
    def fresh_name(self, hint: str | None = None) -> str:
        if hint is not None and hint not in self._names:
            return hint
        while str(self._counter) in self._names:
            self._counter += 1
        return str(self._counter)

    def _claim(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"value name %{name} defined twice in graph @{self.name}")
        self._names.add(name)

    def add_input(self, name: str, type: TensorType) -> Value:
        self._claim(name)
        value = Value(name, type)
        self.inputs.append(value)
        return value

    def create_node(self, op: str, inputs: list[Value], attrs: dict[str, Attr],
                    types: list[TensorType], names: list[str | None] | None = None,
                    loc: Loc | None = None) -> Node:
        """Make a node with results of the given types (not yet inserted)."""
        node = Node(op, list(inputs), dict(attrs), [], loc)
        outputs = node.outputs
        for i, t in enumerate(types):
            name = self.fresh_name(names[i] if names else None)
            self._claim(name)
            outputs.append(Value(name, t, node, i))
        return node

    def append(self, node: Node) -> Node:
        self.nodes.append(node)
        self._enter(node)
        return node

    def insert(self, index: int, node: Node) -> Node:
        """Put `node` at position `index` of the program."""
        self.nodes.insert(index, node)
        self._enter(node)
        return node

    def set_inputs(self, node: Node, values: Iterable[Value]) -> None:
        """New operands for `node`, its uses moved."""
        self._drop_uses(node)
        node.inputs = tuple(values)
        self._add_uses(node)

    def replace_node(self, old: Node, new: Node) -> None:
        """Put `new` where `old` is; readers of old's single result read new's."""
        self.nodes[self.nodes.index(old)] = new
        self._enter(new)
        self.replace_uses(old.output, new.output)
        self._drop_uses(old)
        old.graph = None

    def reorder(self, nodes: list[Node]) -> None:
        """The graph's nodes in another program order (a schedule); nodes left out are gone (they must be
        dead: nothing kept may read them)."""
        if nodes == self.nodes:
            return
        kept = {id(n) for n in nodes}
        if len(kept) != len(nodes) or any(n.graph is not self for n in nodes):
            raise ValueError(f"graph @{self.name}: a new order holds each of the graph's nodes at most once")
        for node in self.nodes:
            if id(node) not in kept:
                node.graph = None
        self.nodes = nodes
        self._uses = {}
        for node in nodes:  # the use lists in the new program order
            self._add_uses(node)

    def adopt(self, node: Node, inputs: Iterable[Value] | None = None) -> Node:
        """Append `node` of another graph as it is, reading `inputs` (values of this one; by default its own
        operands), its results renamed where their names are taken here. The other graph is given up: its use
        lists are not kept."""
        node.graph = None
        if inputs is not None:
            node.inputs = tuple(inputs)
        for v in node.outputs:
            v.name = self.fresh_name(v.name)
            self._claim(v.name)
        return self.append(node)

    def set_outputs(self, outputs: Iterable[tuple[str, Value]]) -> None:
        self.outputs = list(outputs)

    # -- queries ------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        for node in self.nodes:
            yield from node.outputs

    def users(self) -> dict[Value, list[Node]]:
        """Every value of the graph (and every value its nodes read) with the nodes that read it, from the use
        lists."""
        uses = self._uses
        result: dict[Value, list[Node]] = {v: list(uses.get(v, ())) for v in self.inputs}
        for node in self.nodes:
            for v in node.outputs:
                readers = uses.get(v)
                result[v] = list(readers) if readers else []
        for v, readers in uses.items():
            if v not in result:
                result[v] = list(readers)
        return result

    def input_named(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise KeyError(name)

    def copy(self) -> Graph:
        """A structurally independent copy (attribute values are shared; they are immutable)."""
        new = Graph(self.name)
        env: dict[int, Value] = {}
        for v in self.inputs:
            env[id(v)] = new.add_input(v.name, v.type)
        for node in self.nodes:
            n = new.create_node(node.op, [env[id(v)] for v in node.inputs], node.attrs,
                                [v.type for v in node.outputs], [v.name for v in node.outputs], node.loc)
            n.mapping = node.mapping
            new.append(n)
            env.update((id(a), b) for a, b in zip(node.outputs, n.outputs))
        new.set_outputs((name, env[id(v)]) for name, v in self.outputs)
        for old_v in self.values():
            env[id(old_v)].offset = old_v.offset
        new.arena = self.arena
        new._counter = self._counter
        return new

    # -- rewriting ----------------------------------------------------------
    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every reader of `old` (nodes and graph outputs) read `new`."""
        for node in list(dict.fromkeys(self._uses.get(old, ()))):
            self.set_inputs(node, [new if v is old else v for v in node.inputs])
        self.outputs = [(n, new if v is old else v) for n, v in self.outputs]

    def remove_dead(self) -> int:
        """Delete nodes whose results nobody reads; returns how many."""
        live: set[int] = {id(v) for _, v in self.outputs}
        kept: list[Node] = []
        for node in reversed(self.nodes):
            outs = node.outputs
            if (id(outs[0]) in live if len(outs) == 1 else any(id(v) in live for v in outs)):
                kept.append(node)
                for v in node.inputs:
                    live.add(id(v))
            else:
                for v in node.outputs:
                    self._names.discard(v.name)
                    self._uses.pop(v, None)
                self._drop_uses(node)
                node.graph = None
        removed = len(self.nodes) - len(kept)
        kept.reverse()
        self.nodes = kept
        return removed

    def renumber(self) -> None:
        """Rename every node result to 0, 1, 2, ... in program order."""
        taken = {v.name for v in self.inputs}
        self._names = set(taken)
        self._counter = 0
        n = 0
        for node in self.nodes:
            for v in node.outputs:
                while str(n) in taken:
                    n += 1
                v.name = str(n)
                self._names.add(v.name)
                n += 1
        self._counter = n


def attrs_equal(a: Attr, b: Attr) -> bool:
    """Structural equality of attribute values (arrays compared exactly)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes())
    return type(a) is type(b) and a == b
