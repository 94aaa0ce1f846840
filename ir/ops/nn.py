"""The neural-network ops of transformer encoders: `matmul` (activation x
activation or x weight, numpy semantics), `linear` (x @ W + b with W laid out
[in, out]), `softmax`, `layernorm` and `embedding`."""

from __future__ import annotations

import math

import numpy as np

from aalbert.ir.ops.elementwise import broadcast
from aalbert.ir.registry import AttrKind, OpDef, OpKind, Trait, Work, register, require
from aalbert.ir.types import DType, TensorType


def _same_float(op: str, *types: TensorType) -> None:
    require(types[0].dtype.is_float or types[0].dtype.is_int,
            f"{op}: operands must be numeric, got {types[0].dtype}")
    for t in types[1:]:
        require(t.dtype == types[0].dtype, f"{op}: operand types differ ({types[0].dtype} and {t.dtype})")


@register
class MatmulOp(OpDef):
    name = "matmul"
    kind = OpKind.MATMUL
    operands = (2, 2)
    doc = "Matrix product with numpy's broadcasting rules."

    def infer(self, types, attrs, ctx):
        a, b = types
        _same_float("matmul", a, b)
        shape = _mm(a.shape, b.shape)[0]
        return [TensorType(shape, a.dtype)]

    def eval(self, args, attrs):
        return [np.asarray(np.matmul(args[0], args[1]), dtype=args[0].dtype)]

    def work(self, ins, outs, attrs):
        _, batch, m, k, n = _mm(ins[0].shape, ins[1].shape)
        return Work(macs=batch * m * k * n, bytes_read=ins[0].nbytes + ins[1].nbytes,
                    bytes_written=outs[0].nbytes)


def _mm(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], int, int, int, int]:
    require(len(a) >= 1 and len(b) >= 1, "matmul: scalar operand")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    m, k = a2[-2], a2[-1]
    k2, n = b2[-2], b2[-1]
    require(k == k2, f"matmul: inner dimensions differ ({k} and {k2})")
    try:
        batch = tuple(int(d) for d in np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        batch = None
    require(batch is not None, f"matmul: batch dimensions {a2[:-2]} and {b2[:-2]} do not broadcast")
    shape = batch + ((m,) if len(a) > 1 else ()) + ((n,) if len(b) > 1 else ())
    return shape, math.prod(batch), m, k, n


@register
class LinearOp(OpDef):
    name = "linear"
    kind = OpKind.MATMUL
    operands = (2, 3)
    doc = "x @ W (+ b), W laid out [in, out], b of [out]."

    def infer(self, types, attrs, ctx):
        x, w = types[0], types[1]
        _same_float("linear", *types)
        require(w.rank == 2, f"linear: weight must be 2-D, got {w}")
        require(x.rank >= 1 and x.shape[-1] == w.shape[0],
                f"linear: input {x} does not match weight {w} (layout [in, out])")
        if len(types) == 3:
            require(types[2].shape == (w.shape[1],), f"linear: bias {types[2]} must be [{w.shape[1]}]")
        return [TensorType(x.shape[:-1] + (w.shape[1],), x.dtype)]

    def eval(self, args, attrs):
        y = np.matmul(args[0], args[1])
        if len(args) == 3:
            y = y + args[2]
        return [np.asarray(y, dtype=args[0].dtype)]

    def work(self, ins, outs, attrs):
        rows = math.prod(ins[0].shape[:-1])
        k, n = ins[1].shape
        return Work(macs=rows * k * n, elementwise=rows * n if len(ins) == 3 else 0,
                    bytes_read=sum(t.nbytes for t in ins), bytes_written=outs[0].nbytes)


@register
class SoftmaxOp(OpDef):
    name = "softmax"
    kind = OpKind.NORMALIZATION
    attrs = {"axis": AttrKind.INT}
    doc = "exp(x - max) / sum(exp(x - max)) along one axis."

    def infer(self, types, attrs, ctx):
        (t,) = types
        require(t.dtype.is_float, f"softmax: needs a floating-point operand, got {t.dtype}")
        require(0 <= attrs["axis"] < t.rank, f"softmax: axis {attrs['axis']} out of range for rank {t.rank}")
        return [t]

    def eval(self, args, attrs):
        x, axis = args[0], attrs["axis"]
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return [np.asarray(e / np.sum(e, axis=axis, keepdims=True), dtype=x.dtype)]


@register
class LayernormOp(OpDef):
    name = "layernorm"
    kind = OpKind.NORMALIZATION
    operands = (2, 3)
    attrs = {"axis": AttrKind.INT, "eps": AttrKind.FLOAT}
    doc = "Normalize over axes [axis, rank), then scale (and shift)."

    def infer(self, types, attrs, ctx):
        x = types[0]
        axis = attrs["axis"]
        require(x.dtype.is_float, f"layernorm: needs a floating-point operand, got {x.dtype}")
        require(0 <= axis < x.rank, f"layernorm: axis {axis} out of range for rank {x.rank}")
        norm = x.shape[axis:]
        for p in types[1:]:
            require(p.dtype == x.dtype, f"layernorm: parameter type {p.dtype} differs from {x.dtype}")
            ok = p.rank <= len(norm) and broadcast([p, TensorType(norm, x.dtype)], "layernorm") == norm
            require(ok, f"layernorm: parameter {p} does not fit the normalized shape {list(norm)}")
        return [x]

    def eval(self, args, attrs):
        x = args[0]
        axes = tuple(range(attrs["axis"], x.ndim))
        mean = np.mean(x, axis=axes, keepdims=True)
        d = x - mean
        var = np.mean(d * d, axis=axes, keepdims=True)
        y = d / np.sqrt(var + x.dtype.type(attrs["eps"])) * args[1]
        if len(args) == 3:
            y = y + args[2]
        return [np.asarray(y, dtype=x.dtype)]


@register
class EmbeddingOp(OpDef):
    name = "embedding"
    kind = OpKind.LAYOUT
    traits = frozenset({Trait.GATHERS_ROWS})
    operands = (2, 2)
    doc = "Rows of a [vocab, dim] table selected by integer ids."

    def infer(self, types, attrs, ctx):
        table, ids = types
        require(table.rank == 2, f"embedding: table must be 2-D, got {table}")
        require(ids.dtype in (DType.I64, DType.I32), f"embedding: ids must be i64 or i32, got {ids.dtype}")
        return [TensorType(ids.shape + (table.shape[1],), table.dtype)]

    def eval(self, args, attrs):
        table, ids = args
        if ids.size and (ids.min() < 0 or ids.max() >= table.shape[0]):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise IndexError(f"id {bad} out of range for a table of {table.shape[0]} rows")
        return [np.take(table, ids, axis=0)]

    def work(self, ins, outs, attrs):
        return Work(bytes_read=outs[0].nbytes + ins[1].nbytes, bytes_written=outs[0].nbytes)
