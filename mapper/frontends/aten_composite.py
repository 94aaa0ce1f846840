"""Composite ATen operators, as torch.export records them before decomposition and a saved program keeps them.

A program whose operators are all in the table is walked as recorded,
without torch's decomposition to Core ATen (a re-trace of the whole
program). So each handler here builds exactly what the Core ATen operators
it decomposes into build (`layer_norm` what `native_layer_norm` does,
`softmax.int` what `_softmax`, `reshape` what `view`...): a program walked
as recorded and its decomposition import as one graph, weights included.
"""

from __future__ import annotations

import torch

from aalbert.ir.types import DType
from aalbert.mapper.frontends import torch_ops as ops
from aalbert.mapper.frontends.aten_table import ATEN_OPS, aten
from aalbert.mapper.frontends.torch_common import Fail, Param, T, TorchEmitter, axis, dtype_of


@aten("layer_norm.default")
def _layer_norm(imp: TorchEmitter, x, shape, weight=None, bias=None, eps=1e-5, *_, **__):
    return ops.layer_norm(imp, ops.LayerNormArgs(x, shape, weight, bias, eps))


@aten("softmax.int", "log_softmax.int", note="dtype: the result's")
def _softmax(imp: TorchEmitter, x, dim, dtype=None):
    return ATEN_OPS[f"_{imp.node_target}.default"](imp, x, dim)


aten("reshape.default", "_unsafe_view.default")(lambda imp, x, shape: ops.view(imp, x, shape))
aten("flatten.using_ints")(lambda imp, x, start_dim=0, end_dim=-1: ops.flatten(imp, imp.t(x), start_dim, end_dim))
aten("transpose.int")(lambda imp, x, dim0, dim1: ops.transpose(imp, x, dim0, dim1))
aten("expand_as.default")(lambda imp, x, other: ops.expand(imp, x, imp.t(other).type.shape))
aten("contiguous.default")(ops.identity)


@aten("split.Tensor", note="equal parts, the last one shorter")
def _split(imp: TorchEmitter, x, split_size: int, dim: int = 0):
    x = imp.t(x)
    n = x.type.shape[axis(dim, x.type.rank)]
    sizes = [min(split_size, n - start) for start in range(0, n, split_size)] if split_size > 0 else [n]
    return ATEN_OPS["split_with_sizes.default"](imp, x, sizes, dim)


@aten("t.default")
def _t(imp: TorchEmitter, x):
    return ops.transpose(imp, x, 0, 1) if _rank(x) == 2 else x


@aten("dropout.default", note="inference (train false or p 0)")
def _dropout(imp: TorchEmitter, x, p, train):
    if train and p:
        raise Fail("dropout in training mode is not supported; call model.eval() before exporting")
    return x


@aten("to.dtype", "type_as.default", note="dtype conversion")
def _to(imp: TorchEmitter, x, dtype, *args, **kwargs):
    want = _dtype(dtype) if imp.node_target == "type_as" else dtype_of(dtype)
    if isinstance(x, Param) and dtype_of(x.tensor.dtype) is want:
        return x  # no conversion: the parameter stays unread, for its reader to lay out
    return imp.cast(imp.t(x), want)


@aten("rsub.Scalar")
def _rsub(imp: TorchEmitter, x, other, alpha=1):
    if alpha != 1:
        x = imp.binary("mul", x, alpha, imp.out_dtype)
    return imp.binary("sub", other, x, imp.out_dtype)


@aten("masked_fill.Scalar", "masked_fill.Tensor")
def _masked_fill(imp: TorchEmitter, x, mask, value):
    return ops.masked_fill(imp, imp.t(x), mask, value)


def _rank(x) -> int:
    """A tensor's rank, read without making a parameter a weight."""
    return x.tensor.dim() if isinstance(x, Param) else x.type.rank if isinstance(x, T) else torch.as_tensor(x).dim()


def _dtype(x) -> DType:
    """A tensor's element type, read without making a parameter a weight."""
    return x.type.dtype if isinstance(x, T) else dtype_of((x.tensor if isinstance(x, Param) else x).dtype)
