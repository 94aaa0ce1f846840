"""ONNX operators that compute: elementwise arithmetic, matrix products, normalization and reductions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aalbert.mapper.frontends.onnx_context import HandlerError, NodeContext, _axis, _ints, handler_table, onnx_dtype

HANDLERS, handles = handler_table()


# --- elementwise ---------------------------------------------------------------
_UNARY = {"Neg": "neg", "Abs": "abs", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Erf": "erf",
          "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Reciprocal": "reciprocal",
          "Not": "not", "IsNaN": "isnan", "Sign": "sign", "Floor": "floor", "Ceil": "ceil",
          "Sin": "sin", "Cos": "cos"}
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
    axes: Sequence[int] | None
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
