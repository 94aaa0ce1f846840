"""Torch operations in IR, shared by the symbolic-trace and the ATen tables.

Each function takes the emitter and the call's arguments as torch passes
them (IR tensors, parameters, Python numbers, concrete tensors) and returns
the result; one whose operator has many arguments takes them as one record
named as torch's schema names them (`parsed`). Layout operations check their arguments against the static
shapes, so a bad view or index fails here, at the node that asked for it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from aalbert.ir.types import DType
from aalbert.mapper.frontends.torch_common import (
    TO_TORCH,
    Fail,
    Param,
    T,
    TorchEmitter,
    as_dtype,
    axis,
    dtype_of,
    promote,
)


def parsed(record: Any, fn: Callable) -> Callable:
    """A handler that gives `fn` the emitter and its operator's arguments as one `record`, built by `record.of`
    (else the record itself) from the arguments as torch passes them."""
    make = getattr(record, "of", record)

    def handler(imp: TorchEmitter, *args, **kwargs):
        return fn(imp, make(*args, **kwargs))
    return handler


@dataclass(frozen=True)
class LayerNormArgs:
    """layer_norm's arguments (`F.layer_norm`, `native_layer_norm`)."""

    input: Any
    normalized_shape: Any
    weight: Any = None
    bias: Any = None
    eps: float = 1e-5


@dataclass(frozen=True)
class ReduceArgs:
    """A reduction's arguments (sum, mean, amax, amin and their tensor methods); further arguments (torch's
    `out`) are taken and not used."""

    input: Any
    dim: Any = None
    keepdim: bool = False
    dtype: Any = None

    @classmethod
    def of(cls, x, dim=None, keepdim: bool = False, *_rest, dtype=None, **_unused) -> ReduceArgs:
        return cls(x, dim, keepdim, dtype)


def softmax(imp: TorchEmitter, x: T, dim=None, dtype=None, **_):
    x = imp.cast(x, dtype_of(dtype)) if dtype is not None else x
    return imp.op("softmax", [x.v], {"axis": axis(-1 if dim is None else dim, x.type.rank)})


def gelu(imp: TorchEmitter, x: T, approximate: str = "none"):
    return imp.op("gelu", [x.v], {"approximate": approximate})


def matmul(imp: TorchEmitter, a, b):
    return imp.op("matmul", [imp.tensor(a), imp.tensor(b)])


def unary(name: str):
    """An elementwise function; integer operands go to float where torch would."""
    def handler(imp: TorchEmitter, x, *args, **kwargs):
        x = imp.t(x)
        if imp.out_dtype is not None:
            x = imp.cast(x, imp.out_dtype)
        elif not x.type.dtype.is_float and name not in ("neg", "abs", "relu"):
            x = imp.cast(x, DType.F32)
        return imp.op(name, [x.v])
    return handler


def binary(name: str, reverse: bool = False):
    def handler(imp: TorchEmitter, a, b, *rest, alpha=1, **kwargs):
        if rest or alpha != 1:
            raise Fail("the alpha argument is not supported")
        return imp.binary(name, b, a) if reverse else imp.binary(name, a, b)
    return handler


def rsqrt(imp: TorchEmitter, x: T):
    return imp.op("reciprocal", [imp.op("sqrt", [x.v]).v])


def _spread(args: tuple[Any, ...], kinds: tuple[type[Sequence[Any]], ...]) -> Sequence[Any]:
    """Dims or sizes given as one sequence, f(x, (a, b)), or spread out, f(x, a, b)."""
    return args[0] if len(args) == 1 and isinstance(args[0], kinds) else args


def permute(imp: TorchEmitter, x, *args):
    dims = _spread(args, (tuple, list))
    if isinstance(x, Param) and len(dims) == 2 and x.tensor.dim() == 2 and tuple(dims) in ((1, 0), (-1, -2), (1, -2),
                                                                                          (-1, 0)):
        return imp.param(x.tensor, x.name, layout="linear")  # a matrix read transposed: stored transposed
    x = imp.t(x)
    perm = tuple(axis(int(d), x.type.rank) for d in dims)
    return x if perm == tuple(range(x.type.rank)) else imp.op("transpose", [x.v], {"perm": perm})


def transpose(imp: TorchEmitter, x, d0: int, d1: int):
    rank = x.tensor.dim() if isinstance(x, Param) else x.type.rank
    perm = list(range(rank))
    a, b = axis(d0, rank), axis(d1, rank)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(imp, x, *perm)


def view(imp: TorchEmitter, x, *shape):
    return imp.reshape(imp.t(x), shape)


def unsqueeze(imp: TorchEmitter, x: T, dim: int):
    d = axis(dim, x.type.rank + 1)
    return imp.reshape(x, x.type.shape[:d] + (1,) + x.type.shape[d:])


def squeeze(imp: TorchEmitter, x: T, dim=None):
    if dim is None:
        dims = {i for i, d in enumerate(x.type.shape) if d == 1}
    else:
        dims = {axis(d, x.type.rank) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        dims = {d for d in dims if x.type.shape[d] == 1}
    return imp.reshape(x, tuple(d for i, d in enumerate(x.type.shape) if i not in dims))


def flatten(imp: TorchEmitter, x: T, start_dim: int = 0, end_dim: int = -1):
    if x.type.rank == 0:
        return imp.reshape(x, (1,))
    s, e = axis(start_dim, x.type.rank), axis(end_dim, x.type.rank)
    shape = x.type.shape[:s] + (math.prod(x.type.shape[s:e + 1]),) + x.type.shape[e + 1:]
    return imp.reshape(x, shape)


def to(imp: TorchEmitter, x: T, *args, **kwargs):
    target = kwargs.get("dtype")
    for a in args:
        if isinstance(a, torch.dtype):
            target = a
        elif isinstance(a, torch.Tensor | T):
            target = TO_TORCH[a.type.dtype] if isinstance(a, T) else a.dtype
    return x if target is None else imp.cast(imp.t(x), dtype_of(target))


def size(imp: TorchEmitter, x: T, dim: int | None = None):
    shape = torch.Size(x.type.shape)
    return shape if dim is None else shape[axis(dim, x.type.rank)]


def getattr_(imp: TorchEmitter, x, attr: str):
    if isinstance(x, T):
        if attr == "shape":
            return torch.Size(x.type.shape)
        if attr == "dtype":
            return TO_TORCH[x.type.dtype]
        if attr == "device":
            return torch.device("cpu")
        if attr == "ndim":
            return x.type.rank
        if attr == "T" and x.type.rank == 2:
            return permute(imp, x, 1, 0)
        raise Fail(f"tensor attribute '{attr}' is not supported")
    return getattr(x, attr)


def getitem(imp: TorchEmitter, x, index):
    """Basic indexing (integers, slices, None, Ellipsis) as slice + reshape."""
    if not isinstance(x, (T, Param)):
        return operator.getitem(x, index)
    x = imp.t(x)
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (T, Param, torch.Tensor)) for i in index):
        raise Fail("indexing with tensors is not supported")
    if index.count(Ellipsis) > 1:
        raise Fail("more than one ellipsis")
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if used > x.type.rank:
        raise Fail(f"too many indices for a rank-{x.type.rank} tensor")
    if Ellipsis in index:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (x.type.rank - used) + index[k + 1:]
    else:
        index = index + (slice(None),) * (x.type.rank - used)
    starts, stops, steps, out_shape = [], [], [], []
    dim = 0
    for i in index:
        if i is None:
            out_shape.append(1)
            continue
        n = x.type.shape[dim]
        if isinstance(i, int):
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise Fail(f"index {i} out of range for a dimension of size {n}")
            starts.append(j)
            stops.append(j + 1)
            steps.append(1)
        elif isinstance(i, slice):
            s, e, st = i.indices(n)
            starts.append(s)
            stops.append(e)
            steps.append(st)
            out_shape.append(len(range(s, e, st)))
        else:
            raise Fail(f"index {i!r} is not supported")
        dim += 1
    y = x
    if any((s, e, st) != (0, d, 1) for s, e, st, d in zip(starts, stops, steps, x.type.shape)):
        y = imp.op("slice", [x.v], {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)})
    return imp.reshape(y, tuple(out_shape))


def linear(imp: TorchEmitter, x, weight, bias=None):
    if isinstance(weight, (nn.Parameter, Param)):
        w = imp.param(weight.tensor, weight.name, layout="linear") if isinstance(weight, Param) else \
            imp.param(weight, "linear.weight", layout="linear")
    else:
        w = permute(imp, imp.t(weight), 1, 0)
    args = [imp.tensor(x), w.v] + ([imp.tensor(bias)] if bias is not None else [])
    return imp.op("linear", args)


def embedding(imp: TorchEmitter, ids, weight, *args, **kwargs):
    table = imp.param(weight, "embedding.weight") if isinstance(weight, nn.Parameter) else imp.t(weight)
    return imp.op("embedding", [table.v, imp.tensor(ids)])


def layer_norm(imp: TorchEmitter, a: LayerNormArgs, name: str = "layer_norm"):
    """LayerNorm; parameters it reads are named `name`.weight and `name`.bias."""
    x, weight, bias = imp.t(a.input), a.weight, a.bias
    normalized_shape = a.normalized_shape
    axis_ = x.type.rank - len(normalized_shape)
    if weight is None:
        weight = torch.ones(tuple(normalized_shape), dtype=TO_TORCH[x.type.dtype])
    args = [x.v, imp.param(weight, f"{name}.weight").v if isinstance(weight, nn.Parameter) else imp.tensor(weight)]
    if bias is not None:
        args.append(imp.param(bias, f"{name}.bias").v if isinstance(bias, nn.Parameter) else imp.tensor(bias))
    return imp.op("layernorm", args, {"axis": axis_, "eps": float(a.eps)})


def where(imp: TorchEmitter, cond, a, b):
    return imp.op("where", [imp.tensor(cond), *_promoted(imp, a, b)])


def _promoted(imp: TorchEmitter, a, b):
    dtype = imp.out_dtype or promote(a, b)
    va = imp.cast(imp.t(a), dtype).v if isinstance(a, (T, Param)) else imp.tensor(as_dtype(a, dtype))
    vb = imp.cast(imp.t(b), dtype).v if isinstance(b, (T, Param)) else imp.tensor(as_dtype(b, dtype))
    return va, vb


def masked_fill(imp: TorchEmitter, x: T, mask, value):
    return where(imp, mask, T(imp.tensor(value, like=x)), x)


def cat(imp: TorchEmitter, tensors, dim: int = 0):
    values = [imp.tensor(t) for t in tensors]
    values = [v for v in values if v.type.rank != 1 or v.type.shape[0] != 0] or values[:1]  # torch skips empty 1-D
    if len(values) == 1:
        return T(values[0])
    return imp.op("concat", values, {"axis": axis(dim, values[0].type.rank)})


def expand(imp: TorchEmitter, x, *args):
    x = imp.t(x)
    sizes = _spread(args, (tuple, list, torch.Size))
    pad = len(sizes) - x.type.rank
    if pad < 0:
        raise Fail(f"cannot expand {x.type} to {list(sizes)}")
    shape = tuple(x.type.shape[i - pad] if s == -1 else int(s) for i, s in enumerate(sizes))
    return x if shape == x.type.shape else imp.op("broadcast", [x.v], {"shape": shape})


def identity(imp: TorchEmitter, x, *args, **kwargs):
    return x


def reduce(name: str):
    def handler(imp: TorchEmitter, a: ReduceArgs):
        x, dim, keepdim = imp.t(a.input), a.dim, a.keepdim
        want = dtype_of(a.dtype) if a.dtype is not None else imp.out_dtype
        if want is None and x.type.dtype in (DType.BOOL, DType.U8, DType.I8, DType.I16, DType.I32) \
                and name == "reduce_sum":
            want = DType.I64  # torch sums booleans and small integers in int64
        if want is not None:
            x = imp.cast(x, want)
        return imp.op(name, [x.v], {"axes": reduce_axes(x.type.rank, dim), "keepdims": bool(keepdim)})
    return parsed(ReduceArgs, handler)


def reduce_axes(rank: int, dim) -> tuple[int, ...]:
    """torch's `dim` argument of a reduction (None or empty: all) as sorted axes."""
    dims = range(rank) if dim is None or dim == [] else (dim if isinstance(dim, (tuple, list)) else (dim,))
    return tuple(sorted({axis(d, rank) for d in dims}))
