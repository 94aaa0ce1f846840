"""Reductions over a set of axes (`reduce_sum`, `reduce_mean`, `reduce_max`,
`reduce_min`, `reduce_l2`), the running sum `cumsum`, and `entropy`, the
entropy of the softmax along one axis (an off-ramp's confidence)."""

from __future__ import annotations

import numpy as np

from aalbert.ir.registry import AttrKind, OpDef, OpKind, Work, register, require
from aalbert.ir.types import DType, TensorType


def _reduce(name: str, fn, float_only: bool = False):
    class Reduce(OpDef):
        kind = OpKind.REDUCTION
        attrs = {"axes": AttrKind.INTS, "keepdims": AttrKind.BOOL}
        doc = "Reduce over the given axes (normalized, ascending)."

        def infer(self, types, attrs, ctx):
            (t,) = types
            axes = attrs["axes"]
            require(all(0 <= a < t.rank for a in axes) and list(axes) == sorted(set(axes)),
                    f"{self.name}: axes {list(axes)} must be ascending, distinct and in [0, {t.rank})")
            require(t.dtype is not DType.BOOL, f"{self.name}: bool operand")
            if float_only:
                require(t.dtype.is_float, f"{self.name}: needs a floating-point operand")
            if attrs["keepdims"]:
                shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape))
            else:
                shape = tuple(d for i, d in enumerate(t.shape) if i not in axes)
            return [TensorType(shape, t.dtype)]

        def eval(self, args, attrs):
            x = args[0]
            out = fn(x, axis=tuple(attrs["axes"]), keepdims=attrs["keepdims"])
            return [np.asarray(out, dtype=x.dtype)]

        def work(self, ins, outs, attrs):
            return Work(elementwise=ins[0].numel, bytes_read=ins[0].nbytes,
                        bytes_written=outs[0].nbytes)

    Reduce.name = name
    Reduce.__name__ = Reduce.__qualname__ = f"{name.title().replace('_', '')}Op"
    register(Reduce)


def _l2(x, axis, keepdims):
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


def _mean(x, axis, keepdims):
    if x.dtype.kind in "iu":  # integer mean truncates, like the sum it is made of
        n = int(np.prod([x.shape[a] for a in axis])) if axis else 1
        return np.sum(x, axis=axis, keepdims=keepdims) // max(n, 1)
    return np.mean(x, axis=axis, keepdims=keepdims)


_reduce("reduce_sum", np.sum)
_reduce("reduce_mean", _mean)
_reduce("reduce_max", np.max)
_reduce("reduce_min", np.min)
_reduce("reduce_l2", _l2, float_only=True)


@register
class CumsumOp(OpDef):
    name = "cumsum"
    kind = OpKind.REDUCTION
    attrs = {"axis": AttrKind.INT, "exclusive": AttrKind.BOOL, "reverse": AttrKind.BOOL}
    doc = "Running sum along one axis."

    def infer(self, types, attrs, ctx):
        (t,) = types
        require(0 <= attrs["axis"] < t.rank, f"cumsum: axis {attrs['axis']} out of range")
        require(t.dtype is not DType.BOOL, "cumsum: bool operand")
        return [t]

    def eval(self, args, attrs):
        x, axis = args[0], attrs["axis"]
        if attrs["reverse"]:
            x = np.flip(x, axis)
        out = np.cumsum(x, axis=axis, dtype=x.dtype)
        if attrs["exclusive"]:
            out = out - x
        if attrs["reverse"]:
            out = np.flip(out, axis)
        return [np.ascontiguousarray(out, dtype=args[0].dtype)]


@register
class EntropyOp(OpDef):
    name = "entropy"
    kind = OpKind.REDUCTION
    attrs = {"axis": AttrKind.INT}
    doc = "Entropy in nats of softmax(x) along one axis: log(sum(exp(x))) - sum(softmax(x) * x)."

    def infer(self, types, attrs, ctx):
        (t,) = types
        axis = attrs["axis"]
        require(t.dtype.is_float, f"entropy: needs a floating-point operand, got {t.dtype}")
        require(0 <= axis < t.rank, f"entropy: axis {axis} out of range for rank {t.rank}")
        return [TensorType(tuple(d for i, d in enumerate(t.shape) if i != axis), t.dtype)]

    def eval(self, args, attrs):
        x, axis = args[0], attrs["axis"]
        # shifted by the maximum, as the special-function unit does (EdgeBERT's Enpy: a max pass, then the sums)
        d = x - np.max(x, axis=axis, keepdims=True)
        e = np.exp(d)
        s = np.sum(e, axis=axis)
        h = np.log(s) - np.sum(e * d, axis=axis) / s
        return [np.asarray(h, dtype=x.dtype)]

    def work(self, ins, outs, attrs):
        # two passes over the logits: the maximum, then the exponentials and their two sums
        return Work(elementwise=2 * ins[0].numel, bytes_read=2 * ins[0].nbytes, bytes_written=outs[0].nbytes)
