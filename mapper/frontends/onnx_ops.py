"""Translation of ONNX operators into IR ops, one handler per operator.

Handlers receive a `NodeContext` (operands as IR values, attributes, opset)
and return the IR values of the node's outputs. Inputs that shape the result
(Reshape's shape, Slice's starts, ReduceMean's axes, ...) must be constants
once dimensions are fixed; the builder folds everything computable, so shape
arithmetic never reaches the graph.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from aalbert.ir.builder import Builder, const_value
from aalbert.ir.graph import Value
from aalbert.ir.types import DType

Handler = Callable[["NodeContext"], list[Value | None]]
HANDLERS: dict[str, Handler] = {}


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


def handles(*names: str):
    def deco(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn
    return deco


def _axis(axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise HandlerError(f"axis {axis} out of range for rank {rank}")
    return a


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(values).reshape(-1))


# --- elementwise ---------------------------------------------------------------
_UNARY = {"Neg": "neg", "Abs": "abs", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Erf": "erf",
          "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Reciprocal": "reciprocal",
          "Not": "not", "IsNaN": "isnan", "Sign": "sign", "Floor": "floor", "Ceil": "ceil"}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "equal",
           "Less": "less", "LessOrEqual": "less_equal", "Greater": "greater",
           "GreaterOrEqual": "greater_equal", "And": "and", "Or": "or", "Xor": "xor"}


@handles(*_UNARY)
def _unary(c: NodeContext):
    return [c.op(_UNARY[c.node.op_type], [c.input(0)])]


@handles(*_BINARY)
def _binary(c: NodeContext):
    return [c.op(_BINARY[c.node.op_type], [c.input(0), c.input(1)])]


@handles("Max", "Min", "Sum")
def _variadic(c: NodeContext):
    name = {"Max": "max", "Min": "min", "Sum": "add"}[c.node.op_type]
    args = [v for v in c.inputs if v is not None]
    if not args:
        raise HandlerError("needs at least one input")
    out = args[0]
    for v in args[1:]:
        out = c.op(name, [out, v])
    return [out]


@handles("Identity", "Dropout")
def _identity(c: NodeContext):
    if c.node.op_type == "Dropout" and len(c.node.output) > 1 and c.node.output[1]:
        x = c.input(0)
        return [x, c.b.constant(np.ones(x.type.shape, dtype=bool))]
    return [c.input(0)]


@handles("Gelu")
def _gelu(c: NodeContext):
    return [c.op("gelu", [c.input(0)], {"approximate": str(c.attr("approximate", "none"))})]


@handles("Cast")
def _cast(c: NodeContext):
    to = onnx_dtype(c.attr("to"))
    x = c.input(0)
    if x.type.dtype == to:
        return [x]
    return [c.op("cast", [x], {"to": to.value})]


@handles("Clip")
def _clip(c: NodeContext):
    x = c.input(0)
    if c.opset < 11:
        lo, hi = float(c.attr("min", -math.inf)), float(c.attr("max", math.inf))
    else:
        lo = float(c.const(1, "min")) if c.opt(1) is not None else -math.inf
        hi = float(c.const(2, "max")) if c.opt(2) is not None else math.inf
    return [c.op("clip", [x], {"min": lo, "max": hi})]


@handles("Where")
def _where(c: NodeContext):
    return [c.op("where", [c.input(0), c.input(1), c.input(2)])]


# --- matmul and normalization ---------------------------------------------------
@handles("MatMul")
def _matmul(c: NodeContext):
    return [c.op("matmul", [c.input(0), c.input(1)])]


@handles("Gemm")
def _gemm(c: NodeContext):
    a, b = c.input(0), c.input(1)
    if c.attr("transA", 0):
        a = c.op("transpose", [a], {"perm": (1, 0)})
    if c.attr("transB", 0):
        b = c.op("transpose", [b], {"perm": (1, 0)})
    y = c.op("matmul", [a, b])
    alpha, beta = float(c.attr("alpha", 1.0)), float(c.attr("beta", 1.0))
    if alpha != 1.0:
        y = c.op("mul", [y, c.b.constant(np.array(alpha, dtype=y.type.dtype.np))])
    bias = c.opt(2)
    if bias is not None and beta != 0.0:
        if beta != 1.0:
            bias = c.op("mul", [bias, c.b.constant(np.array(beta, dtype=bias.type.dtype.np))])
        y = c.op("add", [y, bias])
    return [y]


@handles("Softmax")
def _softmax(c: NodeContext):
    x = c.input(0)
    if c.opset >= 13:
        return [c.op("softmax", [x], {"axis": _axis(c.attr("axis", -1), x.type.rank)})]
    # before opset 13: flatten to 2-D at `axis`, normalize rows, restore the shape
    axis = _axis(c.attr("axis", 1), x.type.rank)
    rows = math.prod(x.type.shape[:axis])
    flat = c.op("reshape", [x], {"shape": (rows, x.type.numel // max(rows, 1))})
    y = c.op("softmax", [flat], {"axis": 1})
    return [c.op("reshape", [y], {"shape": x.type.shape})]


@handles("LayerNormalization")
def _layernorm(c: NodeContext):
    if any(c.node.output[1:]):
        raise HandlerError("the Mean and InvStdDev outputs are not supported")
    x = c.input(0)
    args = [x, c.input(1)] + ([c.opt(2)] if c.opt(2) is not None else [])
    attrs = {"axis": _axis(c.attr("axis", -1), x.type.rank), "eps": float(c.attr("epsilon", 1e-5))}
    return [c.op("layernorm", args, attrs)]


# --- reductions -----------------------------------------------------------------
_REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
           "ReduceMin": "reduce_min", "ReduceL2": "reduce_l2"}


@handles(*_REDUCE)
def _reduce(c: NodeContext):
    x = c.input(0)
    axes_as_input = c.opset >= (13 if c.node.op_type == "ReduceSum" else 18)
    if axes_as_input:
        axes = _ints(c.const(1, "axes")) if c.opt(1) is not None else None
    else:
        axes = c.attr("axes")
    if not axes:
        if c.attr("noop_with_empty_axes", 0):
            return [x]
        axes = range(x.type.rank)
    norm = tuple(sorted({_axis(int(a), x.type.rank) for a in axes}))
    return [c.op(_REDUCE[c.node.op_type], [x], {"axes": norm, "keepdims": bool(c.attr("keepdims", 1))})]


@handles("CumSum")
def _cumsum(c: NodeContext):
    x = c.input(0)
    axis = _axis(int(c.const(1, "axis")), x.type.rank)
    return [c.op("cumsum", [x], {"axis": axis, "exclusive": bool(c.attr("exclusive", 0)),
                                 "reverse": bool(c.attr("reverse", 0))})]


# --- layout ------------------------------------------------------------------------
def _reshape_to(c: NodeContext, x: Value, shape: tuple[int, ...]) -> Value:
    if tuple(shape) == x.type.shape:
        return x
    return c.op("reshape", [x], {"shape": tuple(shape)})


@handles("Reshape")
def _reshape(c: NodeContext):
    x = c.input(0)
    spec = _ints(c.const(1, "shape"))
    allowzero = c.attr("allowzero", 0)
    shape = []
    for i, d in enumerate(spec):
        if d == 0 and not allowzero:
            if i >= x.type.rank:
                raise HandlerError(f"shape {list(spec)} copies dimension {i} of a rank-{x.type.rank} input")
            d = x.type.shape[i]
        shape.append(d)
    if shape.count(-1) > 1 or any(d < -1 for d in shape):
        raise HandlerError(f"bad target shape {list(spec)}")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.type.numel % known:
            raise HandlerError(f"cannot reshape {x.type} to {list(spec)}")
        shape[shape.index(-1)] = x.type.numel // known
    if math.prod(shape) != x.type.numel:
        raise HandlerError(f"cannot reshape {x.type} to {list(spec)}")
    return [_reshape_to(c, x, tuple(shape))]


@handles("Flatten")
def _flatten(c: NodeContext):
    x = c.input(0)
    axis = c.attr("axis", 1)
    axis = axis + x.type.rank if axis < 0 else axis
    if not 0 <= axis <= x.type.rank:
        raise HandlerError(f"axis {c.attr('axis')} out of range")
    rows = math.prod(x.type.shape[:axis])
    return [_reshape_to(c, x, (rows, math.prod(x.type.shape[axis:])))]


@handles("Unsqueeze")
def _unsqueeze(c: NodeContext):
    x = c.input(0)
    axes = c.attr("axes") if c.opset < 13 else _ints(c.const(1, "axes"))
    rank = x.type.rank + len(axes)
    norm = sorted(_axis(int(a), rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise HandlerError(f"repeated axes {list(axes)}")
    dims = iter(x.type.shape)
    shape = tuple(1 if i in norm else next(dims) for i in range(rank))
    return [_reshape_to(c, x, shape)]


@handles("Squeeze")
def _squeeze(c: NodeContext):
    x = c.input(0)
    if c.opset < 13:
        axes = c.attr("axes")
    else:
        axes = _ints(c.const(1, "axes")) if c.opt(1) is not None else None
    if axes is None or len(axes) == 0:
        norm = {i for i, d in enumerate(x.type.shape) if d == 1}
    else:
        norm = {_axis(int(a), x.type.rank) for a in axes}
        if any(x.type.shape[a] != 1 for a in norm):
            raise HandlerError(f"cannot squeeze axes {list(axes)} of {x.type}")
    return [_reshape_to(c, x, tuple(d for i, d in enumerate(x.type.shape) if i not in norm))]


@handles("Transpose")
def _transpose(c: NodeContext):
    x = c.input(0)
    perm = c.attr("perm") or list(reversed(range(x.type.rank)))
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(x.type.rank)):
        return [x]
    return [c.op("transpose", [x], {"perm": perm})]


@handles("Expand")
def _expand(c: NodeContext):
    x = c.input(0)
    target = _ints(c.const(1, "shape"))
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(x.type.shape, target))
    except ValueError:
        raise HandlerError(f"{x.type} does not broadcast with {list(target)}") from None
    if shape == x.type.shape:
        return [x]
    return [c.op("broadcast", [x], {"shape": shape})]


@handles("Tile")
def _tile(c: NodeContext):
    x = c.input(0)
    reps = _ints(c.const(1, "repeats"))
    if all(r == 1 for r in reps) and len(reps) == x.type.rank:
        return [x]
    return [c.op("tile", [x], {"repeats": reps})]


@handles("Concat")
def _concat(c: NodeContext):
    args = [v for v in c.inputs if v is not None]
    if not args:
        raise HandlerError("needs at least one input")
    axis = _axis(c.attr("axis", 0), args[0].type.rank)
    args = [v for v in args if v.type.shape[axis] != 0] or args[:1]
    if len(args) == 1:
        return [args[0]]
    return [c.op("concat", args, {"axis": axis})]


@handles("Split")
def _split(c: NodeContext):
    x = c.input(0)
    axis = _axis(c.attr("axis", 0), x.type.rank)
    n_out = len(c.node.output)
    if c.opset < 13:
        sizes = c.attr("split")
    else:
        sizes = _ints(c.const(1, "split")) if c.opt(1) is not None else None
    dim = x.type.shape[axis]
    if not sizes:
        n = c.attr("num_outputs", n_out)
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    return c.b.op("split", [x], {"axis": axis, "sizes": tuple(int(s) for s in sizes)})


@handles("Slice")
def _slice(c: NodeContext):
    x = c.input(0)
    if c.opset < 10:
        starts, ends = c.attr("starts"), c.attr("ends")
        axes = c.attr("axes") or list(range(len(starts)))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(c.const(1, "starts")), _ints(c.const(2, "ends"))
        axes = _ints(c.const(3, "axes")) if c.opt(3) is not None else range(len(starts))
        steps = _ints(c.const(4, "steps")) if c.opt(4) is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise HandlerError("starts, ends, axes and steps differ in length")
    full = [(0, d, 1) for d in x.type.shape]
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(int(a), x.type.rank)
        if st == 0:
            raise HandlerError("step 0")
        full[a] = slice(int(s), int(e), int(st)).indices(x.type.shape[a])
    if all(f == (0, d, 1) for f, d in zip(full, x.type.shape)):
        return [x]
    return [c.op("slice", [x], {"starts": tuple(f[0] for f in full), "stops": tuple(f[1] for f in full),
                                "steps": tuple(f[2] for f in full)})]


@handles("Gather")
def _gather(c: NodeContext):
    x, idx = c.input(0), c.input(1)
    axis = _axis(c.attr("axis", 0), x.type.rank)
    known = const_value(idx)
    n = x.type.shape[axis]
    if known is not None and known.size and (known.min() < -n or known.max() >= n):
        bad = int(known.max() if known.max() >= n else known.min())
        raise HandlerError(f"index {bad} is out of range for axis {axis} of size {n}")
    return [c.op("gather", [x, idx], {"axis": axis})]


@handles("GatherND")
def _gather_nd(c: NodeContext):
    return [c.op("gather_nd", [c.input(0), c.input(1)], {"batch_dims": int(c.attr("batch_dims", 0))})]


# --- shape computations (always folded) ---------------------------------------------
@handles("Shape")
def _shape(c: NodeContext):
    shape = c.input(0).type.shape
    start, end = c.attr("start", 0), c.attr("end", len(shape))
    return [c.b.constant(np.array(shape[slice(start, end)], dtype=np.int64))]


@handles("Size")
def _size(c: NodeContext):
    return [c.b.constant(np.array(c.input(0).type.numel, dtype=np.int64))]


@handles("Range")
def _range(c: NodeContext):
    start, limit, delta = (c.const(i, n) for i, n in enumerate(("start", "limit", "delta")))
    if delta == 0:
        raise HandlerError("delta 0")
    n = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    if n > 1 << 24:
        raise HandlerError(f"{n} elements is too many")
    values = start + np.arange(n, dtype=start.dtype) * delta
    return [c.b.constant(values.astype(start.dtype))]


@handles("ConstantOfShape")
def _constant_of_shape(c: NodeContext):
    shape = _ints(c.const(0, "shape"))
    if any(d < 0 for d in shape):
        raise HandlerError(f"negative dimension in {list(shape)}")
    if math.prod(shape) > 1 << 28:
        raise HandlerError(f"shape {list(shape)} is too large")
    fill = c.attr("value")
    fill = np.zeros(1, dtype=np.float32) if fill is None else fill.reshape(-1)
    return [c.b.constant(np.full(shape, fill[0], dtype=fill.dtype))]


@handles("Constant")
def _constant(c: NodeContext):
    # Constant nodes are turned into values by the importer itself (see onnx_import).
    raise HandlerError("unexpected Constant")
