"""The activation arena of functional execution, emulated byte by byte.

One float64 slot per byte of the arena, each value written at its element
stride (the target's activation precision for floating-point values, the
element size for integer ones), with a flag per byte saying whether anything
has written it. Reading bytes nothing has written is an `ExecutionError`.

A value read again while none of its bytes were written since is served from
a cache of read-only arrays: a product's blocks read their operands many
times, and the array a fresh read would return is the same.
"""

from __future__ import annotations

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.graph import Value
from aalbert.ir.types import TensorType


class ExecutionError(AalbertError):
    """The program did something the hardware would get wrong (a missing dependency, a bad address)."""


class Arena:
    def __init__(self, base: int, size: int, activation_bits: int):
        self.base = base
        self.mem = np.full(size, np.nan)
        self.written = np.zeros(size, dtype=bool)
        self.ab = activation_bits / 8
        self._index_of: dict[tuple[TensorType, int], np.ndarray] = {}
        self._reads: dict[tuple[TensorType, int], tuple[int, int, np.ndarray]] = {}  # -> (lo, hi, array)

    def _index(self, v: Value, offset: int) -> np.ndarray:
        key = (v.type, offset)
        idx = self._index_of.get(key)
        if idx is None:
            eb = self.ab if v.type.dtype.is_float else v.type.dtype.itemsize
            start = offset - self.base
            idx = self._index_of[key] = start + (np.arange(v.type.numel) * eb).astype(np.int64)
        return idx

    def read(self, v: Value, offset: int) -> np.ndarray:
        key = (v.type, offset)
        hit = self._reads.get(key)
        if hit is not None:
            return hit[2]
        idx = self._index(v, offset)
        if not self.written[idx].all():
            raise ExecutionError(f"%{v.name} is read from arena bytes nothing has written yet")
        array = self.mem[idx].astype(v.type.dtype.np).reshape(v.type.shape)
        array.flags.writeable = False
        if idx.size:
            self._reads[key] = (int(idx[0]), int(idx[-1]) + 1, array)
        return array

    def write(self, v: Value, offset: int, array: np.ndarray, flat_positions: np.ndarray | None = None) -> None:
        idx = self._index(v, offset)
        if flat_positions is not None:
            idx = idx[flat_positions]
        self.mem[idx] = np.asarray(array, dtype=np.float64).reshape(-1)
        self.written[idx] = True
        if idx.size and self._reads:
            lo, hi = int(idx.min()), int(idx.max()) + 1
            for key in [k for k, (a, b, _) in self._reads.items() if a < hi and lo < b]:
                del self._reads[key]
