"""The op registry: one declaration per op, read by every part of aalbert.

Each op is a subclass of `OpDef` declaring its operand count, its attributes
(name and kind), its kind and traits (what passes and backends may assume
about it), its type inference, its numpy semantics (the reference
interpreter's meaning of the op) and its work (MACs, elementwise operations,
bytes read and written). The importers, the builder's constant folding, the
verifier, the interpreter, the passes and the cost models all read this one
table; none keeps a list of op names of its own. The op declarations live in
`ir/ops/`, and importing `aalbert.ir` registers all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import numpy as np

from aalbert.ir.affine import Affine
from aalbert.ir.graph import Attr, Sym, Value
from aalbert.ir.types import TensorType


class AttrKind(Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"
    INTS = "ints"
    FLOATS = "floats"
    SYM = "symbol"
    DENSE = "dense"

    def accepts(self, value: Attr) -> bool:
        match self:
            case AttrKind.INT:
                return type(value) is int
            case AttrKind.FLOAT:
                return type(value) is float
            case AttrKind.BOOL:
                return type(value) is bool
            case AttrKind.STR:
                return type(value) is str
            case AttrKind.INTS:
                return type(value) is tuple and all(type(v) is int for v in value)
            case AttrKind.FLOATS:
                return type(value) is tuple and all(type(v) is float for v in value)
            case AttrKind.SYM:
                return isinstance(value, Sym)
            case AttrKind.DENSE:
                return isinstance(value, np.ndarray)
        return False


class OpKind(Enum):
    """What an op does, broadly; backends choose the unit that runs it from this."""

    SOURCE = "source"                # brings data into a graph (weights, constants)
    ELEMENTWISE = "elementwise"      # one result element from the same elements of its operands
    MATMUL = "matmul"                # a matrix product (the PE array's work)
    NORMALIZATION = "normalization"  # softmax, LayerNorm: statistics over an axis, then elementwise
    REDUCTION = "reduction"          # fewer (or running) results over some axes
    LAYOUT = "layout"                # moves or selects data without arithmetic

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is Python code, asked per node


class Trait(Enum):
    """Facts about an op that passes and backends ask for instead of matching op names."""

    COMMUTATIVE = "commutative"      # op(a, b) == op(b, a)
    VIEW = "view"                    # the result is the operand's bytes read another way (no data moves)
    INDEX_MAP = "index_map"          # the result is operand 0 read through an index map fixed by the
    #                                  attributes (and a constant index operand, if any): a layout chain link
    GATHERS_ROWS = "gathers_rows"    # reads only the rows of operand 0 that its index operand selects
    ACTIVATION = "activation"        # the non-linearity between the two linears of an FFN or adapter
    MIXED_OPERANDS = "mixed_operands"  # a binary op whose operands may have different element types

    __hash__ = object.__hash__  # as OpKind's


class InferError(Exception):
    """Raised by type inference when operands or attributes are inconsistent."""


@dataclass(frozen=True)
class Work:
    """What one execution of an op costs, independent of any hardware."""

    macs: int = 0
    elementwise: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def __add__(self, other: Work) -> Work:
        return Work(self.macs + other.macs, self.elementwise + other.elementwise,
                    self.bytes_read + other.bytes_read,
                    self.bytes_written + other.bytes_written)

    def __mul__(self, times: int) -> Work:
        return Work(self.macs * times, self.elementwise * times, self.bytes_read * times, self.bytes_written * times)


class InferContext:
    """What type inference may ask about the enclosing module."""

    def __init__(self, weight_type: Callable[[str], TensorType]):
        self.weight_type = weight_type


class OpDef:
    """Base of op declarations; subclasses override the class attributes."""

    name: ClassVar[str]
    kind: ClassVar[OpKind]
    traits: ClassVar[frozenset[Trait]] = frozenset()
    operands: ClassVar[tuple[int, int | None]] = (1, 1)
    attrs: ClassVar[dict[str, AttrKind]] = {}
    doc: ClassVar[str] = ""

    def has(self, trait: Trait) -> bool:
        return trait in self.traits

    def infer(self, types: Sequence[TensorType], attrs: dict[str, Attr],
              ctx: InferContext | None) -> list[TensorType]:
        raise NotImplementedError

    def eval(self, args: Sequence[np.ndarray], attrs: dict[str, Attr]) -> list[np.ndarray]:
        raise NotImplementedError

    def reindex(self, view: Affine, attrs: dict[str, Attr], index: np.ndarray | None) -> Affine | None:
        """INDEX_MAP ops: the affine index map of the result given the operand's (`index`: a constant index
        operand). None when the result's map has no affine form (or the op moves no data this way)."""
        return None

    def work(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: dict[str, Attr]) -> Work:
        """Default: one elementwise operation per output element, all bytes moved."""
        return Work(elementwise=sum(t.numel for t in outs),
                    bytes_read=sum(t.nbytes for t in ins),
                    bytes_written=sum(t.nbytes for t in outs))


REGISTRY: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    if cls.name in REGISTRY:
        raise ValueError(f"op {cls.name} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def infer_types(opdef: OpDef, types: Sequence[TensorType], attrs: dict[str, Attr],
                ctx: InferContext | None) -> list[TensorType]:
    """`opdef.infer`, remembered: a graph of repeated layers asks the same question many times.

    Only ops whose answer depends on nothing but operand types and attributes are remembered
    (`weight` reads the pool; `constant`'s attribute is its data).
    """
    if opdef.kind is OpKind.SOURCE:
        return opdef.infer(types, attrs, ctx)
    key: tuple[tuple[str, str, Attr], ...] = ()  # (name, type name, value): 1 and True are different answers
    if attrs:
        try:
            key = tuple((k, type(v).__name__, v) for k, v in sorted(attrs.items()))
            hash(key)
        except TypeError:  # an unhashable attribute (a list): just infer
            return opdef.infer(types, attrs, ctx)
    return list(_infer_remembered(opdef, tuple(types), key))


@functools.lru_cache(maxsize=1 << 16)
def _infer_remembered(opdef: OpDef, types: tuple[TensorType, ...],
                      key: tuple[tuple[str, str, Attr], ...]) -> tuple[TensorType, ...]:
    return tuple(opdef.infer(types, {k: v for k, _, v in key}, None))


def get_op(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(name) from None


def op_has(name: str, trait: Trait) -> bool:
    """Whether the registered op `name` has `trait` (False for an unknown op)."""
    op = REGISTRY.get(name)
    return op is not None and trait in op.traits


def all_ops() -> dict[str, OpDef]:
    return dict(REGISTRY)


def is_data(value: Value) -> bool:
    """Whether a value is model data (produced by a source op: a weight or a constant), not an activation."""
    p = value.producer
    return p is not None and REGISTRY[p.op].kind is OpKind.SOURCE


def require(cond: bool, message: str) -> None:
    if not cond:
        raise InferError(message)


def norm_axis(axis: int, rank: int) -> int:
    """Check a non-negative axis (the IR stores axes normalized)."""
    require(0 <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis
