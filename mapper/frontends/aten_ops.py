"""The ATen operator table: every operator the torch.export path imports, and how.

Keys are ATen overload names (`add.Tensor`); `docs/aten_ops.md` is generated
from this table (`python -m aalbert.mapper.frontends.aten_ops`). This module
holds the Core ATen operators, `aten_composite` the composite ones a program
holds before decomposition (both fill `aten_table.ATEN_OPS`). Handlers get
the emitter (whose `out_dtype` is the result type torch recorded for the
node, so arithmetic is computed in torch's promoted type) and the call's
arguments. Arguments that are all concrete never reach a handler: the
walker runs such calls (sizes, `full`, `arange`) on the spot.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aalbert.ir.types import DType
from aalbert.mapper.frontends import aten_composite  # noqa: F401 -- registers the composite operators
from aalbert.mapper.frontends import torch_ops as ops
from aalbert.mapper.frontends.aten_table import ATEN_OPS, NOTES, aten
from aalbert.mapper.frontends.torch_common import Fail, Param, T, TorchEmitter, axis, dtype_of, promote


# -- elementwise --------------------------------------------------------------------------
@dataclass(frozen=True)
class ArithArgs:
    """An arithmetic operator's arguments (add, sub, mul, div and their modes, pow, maximum, minimum); alpha may
    come third, by position; further keyword arguments are taken and not used."""

    a: Any
    b: Any
    alpha: Any = 1
    rounding_mode: str | None = None

    @classmethod
    def of(cls, a, b, *rest, alpha=1, rounding_mode=None, **_unused) -> ArithArgs:
        return cls(a, b, rest[0] if rest else alpha, rounding_mode)


def _arith(name: str, reverse: bool = False):
    def handler(imp: TorchEmitter, args: ArithArgs):
        a, b, alpha, rounding_mode = args.a, args.b, args.alpha, args.rounding_mode
        if rounding_mode not in (None, "floor"):
            raise Fail(f"rounding mode {rounding_mode!r} is not supported")
        if rounding_mode == "floor" and not (imp.out_dtype or promote(a, b)).is_float:
            raise Fail("integer floor division is not supported")
        if alpha != 1:
            b = imp.binary("mul", b, alpha, imp.out_dtype)
        y = imp.binary(name, b, a, imp.out_dtype) if reverse else imp.binary(name, a, b, imp.out_dtype)
        return imp.op("floor", [y.v]) if rounding_mode == "floor" else y
    return ops.parsed(ArithArgs, handler)


for _n, _ir in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("div", "div")):
    aten(f"{_n}.Tensor")(_arith(_ir))
aten("mul.Scalar")(_arith("mul"))
aten("div.Tensor_mode", note="rounding mode None or 'floor' (floats)")(_arith("div"))
aten("pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar")(_arith("pow"))
aten("maximum.default")(_arith("max"))
aten("minimum.default")(_arith("min"))


def _compare(name: str, negate: bool = False):
    def handler(imp: TorchEmitter, a, b):
        y = imp.binary(name, a, b)
        return imp.op("not", [y.v]) if negate else y
    return handler


for _n, _ir in (("eq", "equal"), ("lt", "less"), ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal")):
    aten(f"{_n}.Tensor", f"{_n}.Scalar")(_compare(_ir))
aten("ne.Tensor", "ne.Scalar")(_compare("equal", negate=True))


def _logical(name: str):
    def handler(imp: TorchEmitter, a, b):
        return imp.binary(name, a, b, DType.BOOL)
    return handler


for _n, _ir in (("and", "and"), ("or", "or"), ("xor", "xor")):
    aten(f"logical_{_n}.default")(_logical(_ir))


def _bitwise(name: str):
    def handler(imp: TorchEmitter, a, b):
        if promote(a, b) is not DType.BOOL:
            raise Fail("bitwise operations on integers are not supported (booleans are)")
        return imp.binary(name, a, b, DType.BOOL)
    return handler


for _n, _ir in (("and", "and"), ("or", "or"), ("xor", "xor")):
    aten(f"bitwise_{_n}.Tensor", note="booleans")(_bitwise(_ir))
for _n, _ir in (("and", "and"), ("or", "or")):
    aten(f"bitwise_{_n}.Scalar", note="booleans")(_bitwise(_ir))


@aten("logical_not.default", "bitwise_not.default", note="bitwise_not: booleans")
def _not(imp: TorchEmitter, x):
    x = imp.t(x)
    if x.type.dtype is not DType.BOOL and imp.node_target == "bitwise_not":
        raise Fail("bitwise not on integers is not supported (booleans are)")
    return imp.op("not", [imp.cast(x, DType.BOOL).v])


for _n in ("neg", "abs", "exp", "log", "sqrt", "reciprocal", "tanh", "sigmoid", "relu", "erf", "sign", "floor",
           "ceil", "silu", "sin", "cos"):
    aten(f"{_n}.default")(ops.unary(_n))


@aten("rsqrt.default")
def _rsqrt(imp: TorchEmitter, x):
    x = imp.t(x)
    return ops.rsqrt(imp, imp.cast(x, imp.out_dtype) if imp.out_dtype else x)


aten("gelu.default", note="approximate 'none' or 'tanh'")(
    lambda imp, x, approximate="none": ops.gelu(imp, imp.t(x), approximate))


@aten("isnan.default")
def _isnan(imp: TorchEmitter, x):
    return imp.op("isnan", [imp.tensor(x)])


@aten("clamp.default", note="floating-point operands, number bounds")
def _clamp(imp: TorchEmitter, x, min=None, max=None):
    x = imp.t(x)
    if not x.type.dtype.is_float or isinstance(min, (T, Param)) or isinstance(max, (T, Param)):
        raise Fail("clamp is supported on floating-point tensors with number bounds")
    return imp.op("clip", [x.v], {"min": -math.inf if min is None else float(min),
                                  "max": math.inf if max is None else float(max)})


@aten("where.self")
def _where(imp: TorchEmitter, cond, a, b):
    c = imp.cast(imp.t(cond), DType.BOOL)
    return ops.where(imp, c, a, b)


@aten("_to_copy.default", note="dtype conversion (device, layout ignored)")
def _to_copy(imp: TorchEmitter, x, *args, dtype=None, **kwargs):
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
    return imp.t(x) if dtype is None else imp.cast(imp.t(x), dtype_of(dtype))


aten("clone.default", "alias.default")(ops.identity)


@aten("_assert_tensor_metadata.default", note="a check, dropped")
def _assert(imp: TorchEmitter, *args, **kwargs):
    return None


@aten("sym_size.int")
def _sym_size(imp: TorchEmitter, x, dim):
    return ops.size(imp, imp.t(x), dim)


# -- creation --------------------------------------------------------------------------------
def _fill(imp: TorchEmitter, shape, value, dtype) -> T:
    return T(imp.b.constant(np.full(tuple(shape), value, dtype=dtype.np)))


@aten("full_like.default")
def _full_like(imp: TorchEmitter, x, value, *args, dtype=None, **kwargs):
    x = imp.t(x)
    return _fill(imp, x.type.shape, value, imp.out_dtype or (dtype_of(dtype) if dtype else x.type.dtype))


# -- layout ------------------------------------------------------------------------------------
aten("view.default")(lambda imp, x, shape: ops.view(imp, x, shape))
aten("permute.default")(lambda imp, x, dims: ops.permute(imp, x, *dims))
aten("unsqueeze.default")(lambda imp, x, dim: ops.unsqueeze(imp, imp.t(x), dim))
aten("squeeze.dims")(lambda imp, x, dim=None: ops.squeeze(imp, imp.t(x), dim))
aten("expand.default", note="implicit=False")(lambda imp, x, size, implicit=False: ops.expand(imp, x, size))
aten("cat.default")(lambda imp, tensors, dim=0: ops.cat(imp, tensors, dim))


@aten("slice.Tensor")
def _slice(imp: TorchEmitter, x, dim: int = 0, start=None, end=None, step: int = 1):
    x = imp.t(x)
    index = [slice(None)] * x.type.rank
    index[axis(dim, x.type.rank)] = slice(start, min(end, sys.maxsize) if end is not None else None, step)
    return ops.getitem(imp, x, tuple(index))


@aten("select.int")
def _select(imp: TorchEmitter, x, dim: int, i: int):
    x = imp.t(x)
    index: list[slice | int] = [slice(None)] * x.type.rank
    index[axis(dim, x.type.rank)] = i
    return ops.getitem(imp, x, tuple(index))


@aten("split_with_sizes.default")
def _split(imp: TorchEmitter, x, sizes, dim: int = 0):
    x = imp.t(x)
    d = axis(dim, x.type.rank)
    n = x.type.shape[d]
    if sum(sizes) != n:
        raise Fail(f"split sizes {list(sizes)} do not add up to {n}")
    parts, start = [], 0
    for s in sizes:
        parts.append(_slice(imp, x, d, start, start + s))
        start += s
    return parts


@aten("repeat.default")
def _repeat(imp: TorchEmitter, x, repeats):
    x = imp.t(x)
    repeats = tuple(int(r) for r in repeats)
    if len(repeats) < x.type.rank:
        raise Fail(f"{len(repeats)} repeats for a rank-{x.type.rank} tensor")
    x = imp.reshape(x, (1,) * (len(repeats) - x.type.rank) + x.type.shape)
    return x if all(r == 1 for r in repeats) else imp.op("tile", [x.v], {"repeats": repeats})


@aten("index_select.default")
def _index_select(imp: TorchEmitter, x, dim: int, index):
    x = imp.t(x)
    return imp.op("gather", [x.v, imp.tensor(index)], {"axis": axis(dim, x.type.rank)})


@aten("index.Tensor", note="one index tensor, or several constant ones")
def _index(imp: TorchEmitter, x, indices):
    x = imp.t(x)
    given = [i for i, t in enumerate(indices) if t is not None]
    if len(given) == 1 and given == list(range(given[0], given[0] + 1)) and all(t is None for t in indices[:given[0]]):
        return imp.op("gather", [x.v, imp.tensor(indices[given[0]])], {"axis": given[0]})
    if any(t is None for t in indices) or not all(isinstance(t, torch.Tensor) for t in indices):
        raise Fail("indexing with several tensors computed by the model (or with gaps) is not supported")
    idx = [t.numpy().astype(np.int64) for t in indices]
    shape = np.broadcast_shapes(*(i.shape for i in idx))
    stacked = np.stack([np.broadcast_to(i, shape) for i in idx], axis=-1)
    return imp.op("gather_nd", [x.v, imp.tensor(stacked)], {"batch_dims": 0})


@aten("index_copy.default", note="a state update in place (the KV cache)")
def _index_copy(imp: TorchEmitter, x, dim: int, index, source):
    x = imp.t(x)
    return imp.op("index_copy", [x.v, imp.tensor(index), imp.cast(imp.t(source), x.type.dtype).v],
                  {"axis": axis(dim, x.type.rank)})


@aten("index_put.default", note="one 1-D index tensor, no accumulation: index_copy")
def _index_put(imp: TorchEmitter, x, indices, values, accumulate=False):
    x = imp.t(x)
    given = [i for i, t in enumerate(indices) if t is not None]
    if accumulate or len(given) != 1:
        raise Fail("index_put is supported with one index tensor and no accumulation")
    (d,) = given
    index = imp.t(indices[d]) if isinstance(indices[d], T) else T(imp.tensor(indices[d]))
    if index.type.rank != 1:
        raise Fail(f"index_put with a rank-{index.type.rank} index is not supported (1-D)")
    want = x.type.shape[:d] + index.type.shape + x.type.shape[d + 1:]
    source = ops.expand(imp, values, want)
    return _index_copy(imp, x, d, index, source)


# -- linear algebra and normalization ----------------------------------------------------------
aten("linear.default")(lambda imp, x, w, b=None: ops.linear(imp, x, w, b))
aten("matmul.default", "mm.default", "bmm.default")(ops.matmul)


@aten("addmm.default", note="beta = alpha = 1")
def _addmm(imp: TorchEmitter, bias, a, b, beta=1, alpha=1):
    if beta != 1 or alpha != 1:
        raise Fail("addmm with beta or alpha other than 1 is not supported")
    return imp.op("linear", [imp.tensor(a), imp.tensor(b), imp.tensor(bias)])


aten("embedding.default")(lambda imp, weight, ids, *args: ops.embedding(imp, ids, imp.t(weight)))


@aten("native_layer_norm.default", note="the normalized output (not the mean and rstd)")
def _layer_norm(imp: TorchEmitter, x, shape, weight=None, bias=None, eps=1e-5):
    return ops.layer_norm(imp, ops.LayerNormArgs(x, shape, weight, bias, eps)), None, None


@aten("_softmax.default")
def _softmax(imp: TorchEmitter, x, dim, half_or_dtype=None):
    x = imp.t(x)
    if imp.out_dtype is not None:
        x = imp.cast(x, imp.out_dtype)
    return ops.softmax(imp, x, dim)


@aten("_log_softmax.default")
def _log_softmax(imp: TorchEmitter, x, dim, half_or_dtype=None):
    return imp.op("log", [_softmax(imp, x, dim).v])


@dataclass(frozen=True)
class AttentionArgs:
    """scaled_dot_product_attention's arguments."""

    query: Any
    key: Any
    value: Any
    attn_mask: Any = None
    dropout_p: float = 0.0
    is_causal: bool = False
    scale: float | None = None
    enable_gqa: bool = False


def _sdpa(imp: TorchEmitter, a: AttentionArgs):
    """Attention spelled as torch's math kernel and the ONNX exporters spell it."""
    if a.dropout_p:
        raise Fail("attention dropout (training mode) is not supported; call model.eval() before exporting")
    q, k, v = imp.t(a.query), imp.t(a.key), imp.t(a.value)
    attn_mask, is_causal, scale = a.attn_mask, a.is_causal, a.scale
    if q.type.rank < 2 or k.type.rank != q.type.rank or v.type.rank != q.type.rank:
        raise Fail(f"query, key and value of ranks {q.type.rank}, {k.type.rank}, {v.type.rank}")
    if a.enable_gqa and q.type.shape[-3] != k.type.shape[-3]:
        raise Fail("grouped-query attention is not supported")
    root = math.sqrt(scale if scale is not None else 1.0 / math.sqrt(q.type.shape[-1]))
    scores = ops.matmul(imp, imp.binary("mul", q, root), imp.binary("mul", ops.transpose(imp, k, -2, -1), root))
    rows, keys = q.type.shape[-2], k.type.shape[-2]
    empty = None  # rows whose every key is masked out: torch gives zeros there
    if is_causal:
        if attn_mask is not None:
            raise Fail("a mask and is_causal together")
        attn_mask = torch.ones(rows, keys, dtype=torch.bool).tril()
    if attn_mask is not None:
        mask = imp.t(attn_mask)
        if mask.type.dtype is DType.BOOL:
            zero, neg = T(imp.tensor(0.0, like=scores)), T(imp.tensor(-math.inf, like=scores))
            some = imp.cast(imp.op("reduce_max", [imp.cast(mask, DType.U8).v], {"axes": (mask.type.rank - 1,),
                                                                                   "keepdims": True}), DType.BOOL)
            empty = imp.op("not", [some.v])
            mask = ops.where(imp, mask, zero, neg)
        scores = imp.binary("add", scores, mask)
    probs = ops.softmax(imp, scores, -1)
    if empty is not None:
        probs = ops.where(imp, empty, T(imp.tensor(0.0, like=probs)), probs)
    return ops.matmul(imp, probs, v)


aten("scaled_dot_product_attention.default",
     note="no dropout; boolean, float or causal masks; fully masked rows give zeros for boolean and causal "
          "masks")(ops.parsed(AttentionArgs, _sdpa))


# -- reductions ------------------------------------------------------------------------------
aten("sum.dim_IntList", note="booleans and integers sum in int64")(ops.reduce("reduce_sum"))
aten("mean.dim", "mean.default")(ops.reduce("reduce_mean"))
aten("amax.default")(ops.reduce("reduce_max"))
aten("amin.default")(ops.reduce("reduce_min"))


@aten("max.dim", "min.dim", note="the values (not the indices)")
def _max_dim(imp: TorchEmitter, x, dim, keepdim=False):
    name = "reduce_max" if imp.node_target == "max" else "reduce_min"
    return ops.reduce(name)(imp, x, dim, keepdim), None


def _bool_reduce(name: str):
    """any (max) and all (min) over booleans, computed on bytes."""
    def handler(imp: TorchEmitter, x, dim=None, keepdim=False):
        x = imp.cast(imp.cast(imp.t(x), DType.BOOL), DType.U8)
        y = imp.op(name, [x.v], {"axes": ops.reduce_axes(x.type.rank, dim), "keepdims": bool(keepdim)})
        return imp.cast(y, DType.BOOL)
    return handler


aten("any.dim", "any.dims", "any.default")(_bool_reduce("reduce_max"))


@aten("cumsum.default")
def _cumsum(imp: TorchEmitter, x, dim, dtype=None):
    x = imp.t(x)
    x = imp.cast(x, imp.out_dtype or (dtype_of(dtype) if dtype else x.type.dtype))
    return imp.op("cumsum", [x.v], {"axis": axis(dim, x.type.rank), "exclusive": False, "reverse": False})


def markdown() -> str:
    """The supported operator list, as written to docs/aten_ops.md."""
    lines = ["# Supported ATen operators", "",
             "Generated from the torch.export importer's table (`mapper/frontends/aten_ops.py`) by",
             "`python -m aalbert.mapper.frontends.aten_ops > docs/aten_ops.md`; a test checks that this",
             f"file is current. {len(ATEN_OPS)} overloads, each exercised by `tests/test_aten_ops.py`. Calls whose",
             "arguments are all known at import (sizes, `full`, `arange`, `scalar_tensor`) run on the spot",
             "instead.", "",
             "| operator | overload | notes |", "|---|---|---|"]
    for name in sorted(ATEN_OPS):
        op, _, overload = name.partition(".")
        lines.append(f"| `aten.{op}` | `{overload}` | {NOTES.get(name, '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
