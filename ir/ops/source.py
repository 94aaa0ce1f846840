"""Ops that bring data into a graph: `weight` (from the module's pool) and
`constant` (small data written inline in the IR, e.g. shapes and scalars)."""

from __future__ import annotations

from aalbert.ir.registry import AttrKind, InferError, OpDef, OpKind, Work, register
from aalbert.ir.types import TensorType


@register
class WeightOp(OpDef):
    name = "weight"
    kind = OpKind.SOURCE
    operands = (0, 0)
    attrs = {"name": AttrKind.SYM}
    doc = "Read a weight of the module's pool by symbol."

    def infer(self, types, attrs, ctx):
        if ctx is None:
            raise InferError("weight types need the module")
        return [ctx.weight_type(attrs["name"].name)]

    def eval(self, args, attrs):
        raise AssertionError("the interpreter binds weights itself")

    def work(self, ins, outs, attrs):
        return Work()


@register
class ConstantOp(OpDef):
    name = "constant"
    kind = OpKind.SOURCE
    operands = (0, 0)
    attrs = {"value": AttrKind.DENSE}
    doc = "An inline constant tensor."

    def infer(self, types, attrs, ctx):
        return [TensorType.of(attrs["value"])]

    def eval(self, args, attrs):
        return [attrs["value"]]

    def work(self, ins, outs, attrs):
        return Work()
