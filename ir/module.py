"""`Weight` and `Module`: the content-addressed weight pool and the task graphs.

A module owns one pool of weights and one graph per task. Graphs refer to
weights by symbol through `weight` nodes. A weight is stored once however
many graphs or nodes use it, and the pool finds weights by content hash
(same element type, shape and bytes): a tensor that another task's import
brought already is that weight. Equal bytes are not always one weight,
though: two distinct tensors of one model (a freshly initialised model's
zero biases) stay two weights, which may share one array. Which weights
are one for sharing is decided by the `share` pass, from kind and position
as well as bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container
from dataclasses import dataclass, field

import numpy as np

from aalbert.ir.encoding import Encoding, Role
from aalbert.ir.graph import Graph, Sym
from aalbert.ir.placement import Placement
from aalbert.ir.types import TensorType

HASH_HEX_DIGITS = 16


def content_hash(array: np.ndarray, *extra: np.ndarray | str) -> str:
    """A stable digest of element type, shape and bytes (little-endian, C order).

    `extra` (encoding text, scale arrays) is mixed in for encoded weights.
    """
    h = hashlib.sha256()
    for item in (array, *extra):
        if isinstance(item, str):
            h.update(b"|" + item.encode())
            continue
        a = np.ascontiguousarray(item)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        h.update(f"{a.dtype.name}:{'x'.join(map(str, a.shape))}:".encode())
        if a.size:  # a zero-size array has no bytes (and memoryview cannot cast its shape)
            h.update(a.data.cast("B"))
    return h.hexdigest()[:HASH_HEX_DIGITS]


@dataclass(eq=False)
class Weight:
    """A tensor of model data, stored once in the module's pool.

    `type` is the logical type the graphs see; `data` holds the stored codes
    (the values themselves for the plain encoding) and `scales` the
    per-channel scales of an int encoding. `data` may be None for a module
    parsed without its sidecar: such a module can still be verified and
    analysed (byte counts included), but not executed.
    """

    name: str
    type: TensorType
    hash: str
    data: np.ndarray | None = field(default=None, repr=False)
    role: Role | None = None
    encoding: Encoding | None = None
    scales: np.ndarray | None = field(default=None, repr=False)
    placement: Placement | None = None

    def __post_init__(self) -> None:
        if self.encoding is None:
            self.encoding = Encoding.plain(self.type.dtype)

    @property
    def numel(self) -> int:
        return self.type.numel

    @property
    def nbytes(self) -> int:
        """Bytes as stored (codes, masks and format metadata)."""
        return self.encoding.storage_bytes(self.type)

    @property
    def code_type(self) -> TensorType:
        from aalbert.ir.types import DType
        return TensorType(self.type.shape, DType.from_numpy(self.encoding.code_dtype(self.type.dtype)))

    def values(self) -> np.ndarray:
        """The weight's values in its logical type (decoded from the codes)."""
        if self.data is None:
            raise ValueError(f"weight @{self.name} has no data")
        return self.encoding.decode(self.data, self.type.dtype, self.scales)

    def expected_hash(self) -> str:
        """The hash its data and encoding should have."""
        if self.encoding.format == "plain":
            return content_hash(self.data)
        extra = [repr(self.encoding)] + ([self.scales] if self.scales is not None else [])
        return content_hash(self.data, *extra)

_SYMBOL_CHARS = re.compile(r"[^A-Za-z0-9_.$/-]+")


def sanitize_symbol(name: str) -> str:
    """A readable symbol from a model's parameter name."""
    cleaned = _SYMBOL_CHARS.sub("_", name).strip("_") or "w"
    return cleaned


@dataclass
class Module:
    """A pool of weights plus one graph per task, in insertion order."""

    weights: dict[str, Weight] = field(default_factory=dict)
    graphs: dict[str, Graph] = field(default_factory=dict)
    _by_hash: dict[str, list[str]] = field(default_factory=dict, repr=False)  # hash -> symbols, pool order

    def add_weight(self, data: np.ndarray, name_hint: str = "w", scope: str | None = None,
                   digest: str | None = None, taken: Container[str] = ()) -> Weight:
        """Return a pool weight with this content that `taken` does not hold, adding one if there is none.

        An import passes the symbols its task uses already as `taken`: two
        distinct tensors of one model stay two weights even when their bytes
        are equal, while a tensor equal to one another import brought is
        stored once. A new weight with the bytes of an existing one shares
        its array. It is named after `name_hint`; if another weight has that
        name already, `scope/name_hint` (then a numeric suffix) is used.
        """
        digest = digest or content_hash(data)
        same = self._by_hash.get(digest, ())
        for name in same:
            if name not in taken:
                return self.weights[name]
        for name in same:  # store the bytes once
            other = self.weights[name]
            if other.data is not None and other.encoding.format == "plain":
                data = other.data
                break
        base = sanitize_symbol(name_hint)
        if base in self.weights and scope:
            base = f"{sanitize_symbol(scope)}/{base}"
        name = self._unique_symbol(base)
        weight = Weight(name, TensorType.of(data), digest, data)
        self.insert_weight(weight)
        return weight

    def with_hash(self, digest: str) -> list[str]:
        """The symbols of the weights with this content hash, in pool order."""
        return list(self._by_hash.get(digest, ()))

    def insert_weight(self, weight: Weight) -> None:
        """Add a weight exactly as given (the parser uses this)."""
        if weight.name in self.weights:
            raise ValueError(f"weight @{weight.name} declared twice")
        self.weights[weight.name] = weight
        self._by_hash.setdefault(weight.hash, []).append(weight.name)

    def replace_weight(self, weight: Weight) -> None:
        """Put a new version of a weight (same name: new data or encoding) in the pool."""
        old = self.weights[weight.name]
        self.weights[weight.name] = weight
        if old.hash != weight.hash:
            self._unhash(old)
            self._by_hash.setdefault(weight.hash, []).append(weight.name)

    def remove_weight(self, name: str) -> Weight:
        weight = self.weights.pop(name)
        self._unhash(weight)
        return weight

    def _unhash(self, weight: Weight) -> None:
        names = self._by_hash.get(weight.hash)
        if names is not None and weight.name in names:
            names.remove(weight.name)
            if not names:
                del self._by_hash[weight.hash]

    def _unique_symbol(self, base: str) -> str:
        if base not in self.weights:
            return base
        n = 1
        while f"{base}.{n}" in self.weights:
            n += 1
        return f"{base}.{n}"

    def copy(self) -> Module:
        """An independent module over the same (immutable) weight arrays."""
        new = Module()
        for w in self.weights.values():
            new.insert_weight(Weight(w.name, w.type, w.hash, w.data, w.role, w.encoding, w.scales, w.placement))
        for graph in self.graphs.values():
            new.add_graph(graph.copy())
        return new

    def merge(self, other: Module) -> None:
        """Add another module's weights and graphs. A weight with the content of one of this module's is that
        weight, but two weights of `other` never become one."""
        clash = sorted(set(other.graphs) & set(self.graphs))
        if clash:
            raise ValueError(f"task {clash[0]!r} defined twice")
        renamed: dict[str, str] = {}
        claimed: set[str] = set()
        for w in other.weights.values():
            existing = next((n for n in self._by_hash.get(w.hash, ()) if n not in claimed), None)
            if existing is None:
                existing = self._unique_symbol(w.name)
                self.insert_weight(Weight(existing, w.type, w.hash, w.data, w.role, w.encoding, w.scales,
                                          w.placement))
            claimed.add(existing)
            renamed[w.name] = existing
        for graph in other.graphs.values():
            for node in graph.nodes:
                if node.op == "weight":
                    node.attrs = {"name": Sym(renamed[node.attrs["name"].name])}
            self.add_graph(graph)

    def add_graph(self, graph: Graph) -> Graph:
        if graph.name in self.graphs:
            raise ValueError(f"task {graph.name!r} defined twice")
        self.graphs[graph.name] = graph
        return graph

    @property
    def has_data(self) -> bool:
        return all(w.data is not None for w in self.weights.values())

    def used_weights(self, task: str) -> list[Weight]:
        """The weights a task's graph reads, in first-use order."""
        seen: dict[str, Weight] = {}
        for node in self.graphs[task].nodes:
            if node.op == "weight":
                sym = node.attrs["name"].name
                seen.setdefault(sym, self.weights[sym])
        return list(seen.values())

    def remove_unused_weights(self) -> int:
        """Drop weights no graph references, but for those a task switch reads (`ir.switch`); returns how many."""
        used = {n.attrs["name"].name for g in self.graphs.values()
                for n in g.nodes if n.op == "weight"}
        used |= {s for name in list(used) if (role := self.weights[name].role) is not None for s in role.merges}
        dead = [name for name in self.weights if name not in used]
        for name in dead:
            self.remove_weight(name)
        return len(dead)
