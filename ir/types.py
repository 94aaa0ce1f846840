"""Element types and tensor types of the IR, and their text syntax.

A `TensorType` is a static shape plus an element type and prints as
`tensor<1x128x768xf32>` (a scalar is `tensor<f32>`).
"""

from __future__ import annotations

import math
from enum import Enum

import numpy as np
from numpy.typing import DTypeLike


class DType(str, Enum):  # noqa: UP042 (a StrEnum would print differently)
    """Element types; the value is the spelling used in the text form."""

    F64 = "f64"
    F32 = "f32"
    F16 = "f16"
    I64 = "i64"
    I32 = "i32"
    I16 = "i16"
    I8 = "i8"
    U8 = "u8"
    BOOL = "bool"

    @property
    def np(self) -> np.dtype:
        return _NUMPY[self._value_]

    @property
    def itemsize(self) -> int:
        return _NUMPY[self._value_].itemsize

    @property
    def is_float(self) -> bool:
        return self._value_ in _FLOATS

    @property
    def is_int(self) -> bool:
        return self in (DType.I64, DType.I32, DType.I16, DType.I8, DType.U8)

    @staticmethod
    def from_numpy(dtype: DTypeLike) -> DType:
        key = np.dtype(dtype).name
        try:
            return _FROM_NUMPY[key]
        except KeyError:
            raise ValueError(f"unsupported element type {key}") from None

    def __str__(self) -> str:
        return self.value

    # a member is its spelling: hash it as that string, in C (Enum's own hash is Python code, and types
    # are hashed for every value of every pass)
    __hash__ = str.__hash__


_TO_NUMPY = {
    DType.F64: "float64", DType.F32: "float32", DType.F16: "float16",
    DType.I64: "int64", DType.I32: "int32", DType.I16: "int16",
    DType.I8: "int8", DType.U8: "uint8", DType.BOOL: "bool",
}
_FROM_NUMPY = {v: k for k, v in _TO_NUMPY.items()}
# by spelling, which hashes faster than the members: asked for every value of every pass
_NUMPY = {k.value: np.dtype(v) for k, v in _TO_NUMPY.items()}
_FLOATS = frozenset({"f64", "f32", "f16"})


class TensorType:
    """A statically shaped tensor type, immutable.

    Types are interned: equal types are one object. Every pass compares and hashes the types of the values
    it meets (its caches are keyed by them), and an interned type does both by identity, in C; a dataclass
    did both in Python, once per value per pass.
    """

    __slots__ = ("shape", "dtype", "numel")
    shape: tuple[int, ...]
    dtype: DType
    numel: int

    def __new__(cls, shape: tuple[int, ...], dtype: DType) -> TensorType:
        if shape.__class__ is not tuple:
            shape = tuple(shape)
        for d in shape:
            if not isinstance(d, int) or d < 0:
                raise ValueError(f"bad tensor shape {shape}")
        found = _INTERNED.get((shape, dtype))
        if found is None:
            dtype = DType(dtype)
            shape = tuple(int(d) for d in shape)  # plain ints, whatever int subclass spelled them
            found = _INTERNED[shape, dtype] = object.__new__(cls)
            object.__setattr__(found, "shape", shape)
            object.__setattr__(found, "dtype", dtype)
            object.__setattr__(found, "numel", math.prod(shape))
        return found

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"TensorType is immutable: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"TensorType is immutable: cannot delete {name}")

    def __reduce__(self):
        return TensorType, (self.shape, self.dtype)  # copies and unpickled types are interned too

    def __repr__(self) -> str:
        return f"TensorType(shape={self.shape!r}, dtype={self.dtype!r})"

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(int(d) for d in shape), self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    @staticmethod
    def of(array: np.ndarray) -> TensorType:
        return TensorType(tuple(int(d) for d in array.shape), DType.from_numpy(array.dtype))

    def __str__(self) -> str:
        dims = "".join(f"{d}x" for d in self.shape)
        return f"tensor<{dims}{self.dtype.value}>"


_INTERNED: dict[tuple[tuple[int, ...], DType], TensorType] = {}


def parse_tensor_type(text: str) -> TensorType:
    """Parse `tensor<2x3xf32>`; raises ValueError with a reason."""
    if not (text.startswith("tensor<") and text.endswith(">")):
        raise ValueError(f"expected tensor<...>, got {text!r}")
    parts = text[len("tensor<"):-1].split("x")
    *dims, elem = parts
    try:
        dtype = DType(elem)
    except ValueError:
        names = ", ".join(d.value for d in DType)
        raise ValueError(f"unknown element type {elem!r} (known: {names})") from None
    shape = []
    for d in dims:
        if not d.isdigit():
            raise ValueError(f"bad dimension {d!r} in {text}")
        shape.append(int(d))
    return TensorType(tuple(shape), dtype)
