"""SSA graphs: `Value`, `Node` and `Graph`.

A graph is an ordered list of nodes, each `op(inputs) -> outputs` with
attributes; every value is defined exactly once, before its uses. Graph
inputs are values without a producer; graph outputs are named references to
values. The list order is the program order; analyses that want a real graph
take `ir.analysis.to_digraph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from aalbert.errors import Loc
from aalbert.ir.placement import Arena
from aalbert.ir.mapping import Mapping
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

    def __init__(self, name: str, type: TensorType, producer: "Node | None" = None, index: int = 0):
        self.name = name
        self.type = type
        self.producer = producer
        self.index = index
        self.offset: int | None = None  # byte offset in the graph's activation arena, once planned

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One operation. `attrs` maps attribute names to immutable values."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "loc", "mapping")

    def __init__(self, op: str, inputs: list[Value], attrs: dict[str, Attr],
                 outputs: list[Value], loc: Loc | None = None):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.outputs = outputs
        self.loc = loc
        self.mapping: Mapping | None = None  # how a matrix product runs on the target, once mapped

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
        return node

    def adopt(self, node: Node) -> Node:
        """Append `node` of another graph as it is (its operands must be values of this one), its results
        renamed where their names are taken here."""
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
        """Map every value to the nodes that read it (in program order)."""
        result: dict[Value, list[Node]] = {v: [] for v in self.inputs}
        for node in self.nodes:
            for v in node.inputs:
                readers = result.get(v)
                if readers is None:
                    result[v] = [node]
                else:
                    readers.append(node)
            for v in node.outputs:
                result.setdefault(v, [])
        return result

    def input_named(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise KeyError(name)

    def copy(self) -> "Graph":
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
        for node in self.nodes:
            if old in node.inputs:
                node.inputs = [new if v is old else v for v in node.inputs]
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
