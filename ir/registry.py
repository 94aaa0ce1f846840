"""The op registry: one declaration per op, read by every part of aalbert.

Each op is a subclass of `OpDef` declaring its operand count, its attributes
(name and kind), its type inference, its numpy semantics (the reference
interpreter's meaning of the op) and its work (MACs, elementwise operations,
bytes read and written). The importers, the builder's constant folding, the
verifier, the interpreter and the cost models all read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, ClassVar, Sequence

import numpy as np

from .graph import Attr, Sym
from .types import TensorType


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


class InferError(Exception):
    """Raised by type inference when operands or attributes are inconsistent."""


@dataclass(frozen=True)
class Work:
    """What one execution of an op costs, independent of any hardware."""

    macs: int = 0
    elementwise: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def __add__(self, other: "Work") -> "Work":
        return Work(self.macs + other.macs, self.elementwise + other.elementwise,
                    self.bytes_read + other.bytes_read,
                    self.bytes_written + other.bytes_written)


class InferContext:
    """What type inference may ask about the enclosing module."""

    def __init__(self, weight_type: Callable[[str], TensorType]):
        self.weight_type = weight_type


class OpDef:
    """Base of op declarations; subclasses override the class attributes."""

    name: ClassVar[str]
    kind: ClassVar[str]  # source | elementwise | matmul | normalization | reduction | layout
    operands: ClassVar[tuple[int, int | None]] = (1, 1)
    attrs: ClassVar[dict[str, AttrKind]] = {}
    doc: ClassVar[str] = ""

    def infer(self, types: Sequence[TensorType], attrs: dict[str, Attr],
              ctx: InferContext | None) -> list[TensorType]:
        raise NotImplementedError

    def eval(self, args: Sequence[np.ndarray], attrs: dict[str, Attr]) -> list[np.ndarray]:
        raise NotImplementedError

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


_INFERRED: dict[tuple, tuple[TensorType, ...]] = {}
_INFERRED_LIMIT = 200_000


def infer_types(opdef: OpDef, types: Sequence[TensorType], attrs: dict[str, Attr],
                ctx: InferContext | None) -> list[TensorType]:
    """`opdef.infer`, remembered: a graph of repeated layers asks the same question many times.

    Only ops whose answer depends on nothing but operand types and attributes are remembered
    (`weight` reads the pool; `constant`'s attribute is its data).
    """
    if opdef.name in ("weight", "constant"):
        return opdef.infer(types, attrs, ctx)
    try:
        key = (opdef.name, tuple(types), tuple((k, type(v).__name__, v) for k, v in sorted(attrs.items())))
        hit = _INFERRED.get(key)
    except TypeError:  # an unhashable attribute (a list): just infer
        return opdef.infer(types, attrs, ctx)
    if hit is None:
        hit = tuple(opdef.infer(types, attrs, ctx))
        if len(_INFERRED) >= _INFERRED_LIMIT:
            _INFERRED.clear()
        _INFERRED[key] = hit
    return list(hit)


def get_op(name: str) -> OpDef:
    from . import ops  # noqa: F401  (populates the registry)
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(name) from None


def all_ops() -> dict[str, OpDef]:
    from . import ops  # noqa: F401
    return dict(REGISTRY)


def require(cond: bool, message: str) -> None:
    if not cond:
        raise InferError(message)


def norm_axis(axis: int, rank: int) -> int:
    """Check a non-negative axis (the IR stores axes normalized)."""
    require(0 <= axis < rank, f"axis {axis} out of range for rank {rank}")
    return axis
