"""ONNX operators that move data or compute shapes: reshapes, transposes, slices, gathers, concatenation,
and the shape arithmetic (Shape, Range, ConstantOfShape, ...) that folds away once dimensions are fixed."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aalbert.ir.builder import const_value
from aalbert.ir.graph import Value
from aalbert.mapper.frontends.onnx_context import HandlerError, NodeContext, _axis, _ints, handler_table

HANDLERS, handles = handler_table()


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


def _unless_identity(c: NodeContext, x: Value, identity: bool, op: str, attrs: dict) -> list[Value]:
    """x itself when the operator would change nothing, else the op."""
    return [x] if identity else [c.op(op, [x], attrs)]


@handles("Transpose")
def _transpose(c: NodeContext):
    x = c.input(0)
    perm = c.attr("perm") or list(reversed(range(x.type.rank)))
    perm = tuple(int(p) for p in perm)
    return _unless_identity(c, x, perm == tuple(range(x.type.rank)), "transpose", {"perm": perm})


@handles("Expand")
def _expand(c: NodeContext):
    x = c.input(0)
    target = _ints(c.const(1, "shape"))
    try:
        shape = tuple(int(d) for d in np.broadcast_shapes(x.type.shape, target))
    except ValueError:
        raise HandlerError(f"{x.type} does not broadcast with {list(target)}") from None
    return _unless_identity(c, x, shape == x.type.shape, "broadcast", {"shape": shape})


@handles("Tile")
def _tile(c: NodeContext):
    x = c.input(0)
    reps = _ints(c.const(1, "repeats"))
    return _unless_identity(c, x, all(r == 1 for r in reps) and len(reps) == x.type.rank, "tile", {"repeats": reps})


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
    steps: Sequence[int]
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


@handles("ScatterElements")
def _scatter_elements(c: NodeContext):
    """An index copy as exporters write it (torch's `index_copy`, a static KV cache's update): the indices
    name one position per slice along the axis, the same across every other axis."""
    x, idx, updates = c.input(0), c.input(1), c.input(2)
    axis = _axis(c.attr("axis", 0), x.type.rank)
    if c.attr("reduction", "none") != "none":
        raise HandlerError("ScatterElements with a reduction is not supported")
    index = _positions(c, idx, axis)
    if index is None:
        raise HandlerError(f"ScatterElements is supported as an index copy: indices that vary along axis {axis} "
                           "only")
    n = x.type.shape[axis]
    known = const_value(index)
    if known is not None and known.size and (known.min() < -n or known.max() >= n):
        raise HandlerError(f"index {int(known.max())} is out of range for axis {axis} of size {n}")
    return [c.op("index_copy", [x, index, updates], {"axis": axis})]


def _positions(c: NodeContext, idx: Value, axis: int) -> Value | None:
    """The 1-D positions that `idx` spreads over every axis but `axis`, or None when it is not that."""
    known = const_value(idx)
    if known is not None:
        first = known[tuple(slice(None) if i == axis else slice(0, 1) for i in range(known.ndim))]
        if not np.array_equal(np.broadcast_to(first, known.shape), known):
            return None
        return c.b.constant(np.ascontiguousarray(first.reshape(-1)))
    src = idx.producer.inputs[0] if idx.producer is not None and idx.producer.op == "broadcast" else idx
    shape = src.type.shape
    pad = idx.type.rank - len(shape)
    if pad < 0 or any(d != 1 for i, d in enumerate((1,) * pad + shape) if i != axis):
        return None
    return _reshape_to(c, src, (idx.type.shape[axis],))


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
