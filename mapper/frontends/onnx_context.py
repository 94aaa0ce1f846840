"""What every ONNX operator handler shares: the node's context, attributes, axes and the handler tables.

A handler receives a `NodeContext` (operands as IR values, attributes, opset)
and returns the IR values of the node's outputs. Inputs that shape the result
(Reshape's shape, Slice's starts, ReduceMean's axes, ...) must be constants
once dimensions are fixed; the builder folds everything computable, so shape
arithmetic never reaches the graph. Handlers live in `onnx_ops` (arithmetic,
matrix products, normalization, reductions) and `onnx_layout` (data
movement and shape computations); `onnx_import` joins their tables.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from aalbert.ir.builder import Builder, const_value
from aalbert.ir.graph import Value
from aalbert.ir.types import DType

Handler = Callable[["NodeContext"], list[Value | None]]


class HandlerError(Exception):
    """A node the frontend cannot translate (bad attributes or data-dependent shapes)."""


def onnx_dtype(code: int) -> DType:
    try:
        return DType.from_numpy(helper.tensor_dtype_to_np_dtype(code))
    except (KeyError, ValueError, TypeError):
        name = onnx.TensorProto.DataType.Name(code) if code in onnx.TensorProto.DataType.values() else str(code)
        raise HandlerError(f"element type {name} is not supported") from None


class NodeContext:
    def __init__(self, b: Builder, node: onnx.NodeProto, inputs: list[Value | None], opset: int):
        self.b = b
        self.node = node
        self.inputs = inputs
        self.opset = opset
        self.attrs = {a.name: _attr_value(a) for a in node.attribute}

    def input(self, i: int) -> Value:
        if i >= len(self.inputs) or self.inputs[i] is None:
            raise HandlerError(f"input {i} is required")
        return self.inputs[i]

    def opt(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def const(self, i: int, what: str) -> np.ndarray:
        value = const_value(self.input(i))
        if value is None:
            raise HandlerError(f"{what} (input {i}) depends on the model's inputs; "
                               "only static shapes are supported")
        return value

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def op(self, name: str, inputs, attrs=None) -> Value:
        return self.b.op1(name, inputs, attrs)


def _attr_value(a: onnx.AttributeProto):
    value = helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, onnx.TensorProto):
        try:
            return numpy_helper.to_array(value)
        except Exception as e:  # onnx's decoder fails in many ways on inconsistent dims and data
            raise HandlerError(f"attribute '{a.name}' holds a corrupt tensor ({type(e).__name__}: {e})") from None
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    return value


def handler_table() -> tuple[dict[str, Handler], Callable]:
    """A table of handlers by ONNX operator name, and the decorator that fills it."""
    table: dict[str, Handler] = {}

    def handles(*names: str):
        def deco(fn: Handler) -> Handler:
            for n in names:
                table[n] = fn
            return fn
        return deco
    return table, handles


def _axis(axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise HandlerError(f"axis {axis} out of range for rank {rank}")
    return a


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(values).reshape(-1))
