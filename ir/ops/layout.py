"""Ops that move or select data without arithmetic: `reshape`, `transpose`,
`broadcast`, `tile`, `slice`, `concat`, `split`, `gather`, `gather_nd`, `index_copy`.

Shapes are static, so every shape-like attribute is stored fully resolved:
`reshape` holds the exact result shape, `slice` holds start/stop/step for
every axis with the selected indices being `range(start, stop, step)`.
"""

from __future__ import annotations

import math

import numpy as np

from aalbert.ir.affine import Affine
from aalbert.ir.registry import AttrKind, OpDef, OpKind, Trait, Work, register, require
from aalbert.ir.types import DType, TensorType


def _moved(ins, outs) -> Work:
    return Work(bytes_read=sum(t.nbytes for t in ins), bytes_written=sum(t.nbytes for t in outs))


REINDEX = frozenset({Trait.INDEX_MAP})


class _Layout(OpDef):
    kind = OpKind.LAYOUT

    def work(self, ins, outs, attrs):
        return _moved(ins, outs)


@register
class ReshapeOp(_Layout):
    name = "reshape"
    traits = frozenset({Trait.INDEX_MAP, Trait.VIEW})
    attrs = {"shape": AttrKind.INTS}
    doc = "Same elements, new static shape (a view: no data moves)."

    def infer(self, types, attrs, ctx):
        (t,) = types
        shape = attrs["shape"]
        require(all(d >= 0 for d in shape), f"reshape: negative dimension in {list(shape)}")
        require(math.prod(shape) == t.numel,
                f"reshape: {t} has {t.numel} elements, shape {list(shape)} has {math.prod(shape)}")
        return [TensorType(tuple(shape), t.dtype)]

    def eval(self, args, attrs):
        return [args[0].reshape(attrs["shape"])]

    def reindex(self, view, attrs, index):
        return view.reshape(tuple(attrs["shape"]))

    def work(self, ins, outs, attrs):
        return Work()


@register
class TransposeOp(_Layout):
    name = "transpose"
    traits = REINDEX
    attrs = {"perm": AttrKind.INTS}
    doc = "Permute axes: result axis i is operand axis perm[i]."

    def infer(self, types, attrs, ctx):
        (t,) = types
        perm = attrs["perm"]
        require(sorted(perm) == list(range(t.rank)),
                f"transpose: perm {list(perm)} is not a permutation of rank {t.rank}")
        return [TensorType(tuple(t.shape[p] for p in perm), t.dtype)]

    def eval(self, args, attrs):
        return [np.ascontiguousarray(np.transpose(args[0], attrs["perm"]))]

    def reindex(self, view, attrs, index):
        return view.transpose(tuple(attrs["perm"]))


@register
class BroadcastOp(_Layout):
    name = "broadcast"
    traits = REINDEX
    attrs = {"shape": AttrKind.INTS}
    doc = "Broadcast (numpy rules) to exactly the given shape."

    def infer(self, types, attrs, ctx):
        (t,) = types
        shape = tuple(attrs["shape"])
        try:
            ok = np.broadcast_shapes(t.shape, shape) == shape
        except ValueError:
            ok = False
        require(ok, f"broadcast: {t} does not broadcast to {list(shape)}")
        return [TensorType(shape, t.dtype)]

    def eval(self, args, attrs):
        return [np.ascontiguousarray(np.broadcast_to(args[0], attrs["shape"]))]

    def reindex(self, view, attrs, index):
        return view.broadcast(tuple(attrs["shape"]))


@register
class TileOp(_Layout):
    name = "tile"
    traits = REINDEX
    attrs = {"repeats": AttrKind.INTS}
    doc = "Repeat along each axis."

    def infer(self, types, attrs, ctx):
        (t,) = types
        reps = attrs["repeats"]
        require(len(reps) == t.rank and all(r >= 0 for r in reps),
                f"tile: repeats {list(reps)} must be {t.rank} non-negative counts")
        return [TensorType(tuple(d * r for d, r in zip(t.shape, reps)), t.dtype)]

    def eval(self, args, attrs):
        return [np.tile(args[0], attrs["repeats"])]

    def reindex(self, view, attrs, index):
        return view.tile(tuple(attrs["repeats"]))


@register
class SliceOp(_Layout):
    name = "slice"
    traits = REINDEX
    attrs = {"starts": AttrKind.INTS, "stops": AttrKind.INTS, "steps": AttrKind.INTS}
    doc = "Select range(start, stop, step) on every axis (normalized indices)."

    def infer(self, types, attrs, ctx):
        (t,) = types
        starts, stops, steps = attrs["starts"], attrs["stops"], attrs["steps"]
        require(len(starts) == len(stops) == len(steps) == t.rank,
                f"slice: starts/stops/steps need {t.rank} entries each")
        shape = []
        for dim, s, e, st in zip(t.shape, starts, stops, steps):
            require(st != 0, "slice: step 0")
            r = range(s, e, st)
            require(len(r) == 0 or (0 <= r[0] < dim and 0 <= r[-1] < dim),
                    f"slice: range({s}, {e}, {st}) leaves an axis of size {dim}")
            shape.append(len(r))
        return [TensorType(tuple(shape), t.dtype)]

    def eval(self, args, attrs):
        x = args[0]
        index = []
        for s, e, st in zip(attrs["starts"], attrs["stops"], attrs["steps"]):
            r = range(s, e, st)
            index.append(slice(s, e, st) if st > 0 else (np.array(r, dtype=np.int64) if len(r) else slice(0, 0)))
        out = x
        for axis, ix in enumerate(index):  # one axis at a time keeps numpy's basic/advanced indexing apart
            if isinstance(ix, slice):
                out = out[(slice(None),) * axis + (ix,)]
            else:
                out = np.take(out, ix, axis=axis)
        return [np.ascontiguousarray(out)]

    def reindex(self, view, attrs, index):
        for axis, (s, e, st) in enumerate(zip(attrs["starts"], attrs["stops"], attrs["steps"])):
            r = range(s, e, st)
            if len(r) == view.shape[axis] and st == 1:
                continue
            view = view.take(axis, Affine((len(r),), (((len(r), st),),), r[0] if len(r) else 0))
            if view is None:
                return None
        return view


@register
class ConcatOp(_Layout):
    name = "concat"
    operands = (1, None)
    attrs = {"axis": AttrKind.INT}
    doc = "Join operands along an axis."

    def infer(self, types, attrs, ctx):
        t0 = types[0]
        axis = attrs["axis"]
        require(0 <= axis < t0.rank, f"concat: axis {axis} out of range for rank {t0.rank}")
        for t in types[1:]:
            require(t.dtype == t0.dtype and t.rank == t0.rank and all(
                a == b for i, (a, b) in enumerate(zip(t.shape, t0.shape)) if i != axis),
                f"concat: {t} does not match {t0} outside axis {axis}")
        shape = list(t0.shape)
        shape[axis] = sum(t.shape[axis] for t in types)
        return [TensorType(tuple(shape), t0.dtype)]

    def eval(self, args, attrs):
        return [np.concatenate(args, axis=attrs["axis"])]


@register
class SplitOp(_Layout):
    name = "split"
    attrs = {"axis": AttrKind.INT, "sizes": AttrKind.INTS}
    doc = "Cut along an axis into pieces of the given sizes (one result each)."

    def infer(self, types, attrs, ctx):
        (t,) = types
        axis, sizes = attrs["axis"], attrs["sizes"]
        require(0 <= axis < t.rank, f"split: axis {axis} out of range for rank {t.rank}")
        require(len(sizes) >= 1 and all(s >= 0 for s in sizes) and sum(sizes) == t.shape[axis],
                f"split: sizes {list(sizes)} do not add up to {t.shape[axis]}")
        return [t.with_shape(t.shape[:axis] + (s,) + t.shape[axis + 1:]) for s in sizes]

    def eval(self, args, attrs):
        cuts = np.cumsum(attrs["sizes"])[:-1]
        return [np.ascontiguousarray(p) for p in np.split(args[0], cuts, axis=attrs["axis"])]


def _check_indices(t: TensorType, op: str) -> None:
    require(t.dtype in (DType.I64, DType.I32), f"{op}: indices must be i64 or i32, got {t.dtype}")


@register
class GatherOp(_Layout):
    name = "gather"
    traits = frozenset({Trait.INDEX_MAP, Trait.GATHERS_ROWS})
    operands = (2, 2)
    attrs = {"axis": AttrKind.INT}
    doc = "Take entries of the first operand along an axis (negative indices count from the end)."

    def infer(self, types, attrs, ctx):
        data, idx = types
        _check_indices(idx, "gather")
        axis = attrs["axis"]
        require(0 <= axis < data.rank, f"gather: axis {axis} out of range for rank {data.rank}")
        return [TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)]

    def eval(self, args, attrs):
        data, idx = args
        axis = attrs["axis"]
        n = data.shape[axis]
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = int(idx.max() if idx.max() >= n else idx.min())
            raise IndexError(f"index {bad} out of range for an axis of size {n}")
        return [np.take(data, idx, axis=axis)]

    def reindex(self, view, attrs, index):
        n = view.shape[attrs["axis"]]
        if index is None or index.size == 0 or index.min() < -n or index.max() >= n:
            return None
        positions = Affine.from_map(np.where(index < 0, index + n, index).astype(np.int64))
        return None if positions is None else view.take(attrs["axis"], positions)

    def work(self, ins, outs, attrs):
        # only the gathered entries are read, not the whole table
        return Work(bytes_read=outs[0].nbytes + ins[1].nbytes, bytes_written=outs[0].nbytes)


@register
class GatherNdOp(_Layout):
    name = "gather_nd"
    traits = REINDEX
    operands = (2, 2)
    attrs = {"batch_dims": AttrKind.INT}
    doc = "ONNX GatherND: index tuples in the last axis of the indices."

    def infer(self, types, attrs, ctx):
        data, idx = types
        _check_indices(idx, "gather_nd")
        b = attrs["batch_dims"]
        require(idx.rank >= 1 and 0 <= b < min(data.rank, idx.rank), f"gather_nd: bad batch_dims {b}")
        k = idx.shape[-1]
        require(data.shape[:b] == idx.shape[:b], "gather_nd: batch dimensions differ")
        require(b + k <= data.rank, f"gather_nd: index tuples of length {k} exceed rank {data.rank}")
        return [TensorType(idx.shape[:-1] + data.shape[b + k:], data.dtype)]

    def eval(self, args, attrs):
        data, idx = args
        b = attrs["batch_dims"]
        k = idx.shape[-1]
        nb = int(np.prod(data.shape[:b], dtype=np.int64)) if b else 1
        d = data.reshape((nb,) + data.shape[b:])
        ix = idx.reshape(nb, -1, k).astype(np.int64)
        for j in range(k):
            dim = d.shape[1 + j]
            if ix.size and (ix[..., j].min() < -dim or ix[..., j].max() >= dim):
                raise IndexError(f"gather_nd index out of range for an axis of size {dim}")
        rows = np.arange(nb)[:, None]
        out = d[(rows,) + tuple(ix[..., j] for j in range(k))]
        out_shape = idx.shape[:-1] + data.shape[b + k:]
        return [np.ascontiguousarray(out.reshape(out_shape))]

    def work(self, ins, outs, attrs):
        return Work(bytes_read=outs[0].nbytes + ins[1].nbytes, bytes_written=outs[0].nbytes)


@register
class IndexCopyOp(_Layout):
    name = "index_copy"
    operands = (3, 3)
    attrs = {"axis": AttrKind.INT}
    doc = "The first operand with its entries at `index` along an axis replaced by the third's, in order."

    def infer(self, types, attrs, ctx):
        data, idx, src = types
        _check_indices(idx, "index_copy")
        axis = attrs["axis"]
        require(0 <= axis < data.rank, f"index_copy: axis {axis} out of range for rank {data.rank}")
        require(idx.rank == 1, f"index_copy: index must be 1-D, got {idx}")
        want = data.shape[:axis] + idx.shape + data.shape[axis + 1:]
        require(src.dtype == data.dtype and src.shape == want,
                f"index_copy: source {src} must be {TensorType(want, data.dtype)}")
        return [data]

    def eval(self, args, attrs):
        data, idx, src = args
        axis = attrs["axis"]
        n = data.shape[axis]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx.max() if idx.max() >= n else idx.min())
            raise IndexError(f"index {bad} out of range for an axis of size {n}")
        out = np.array(data, copy=True)
        index = [slice(None)] * data.ndim
        index[axis] = idx
        out[tuple(index)] = src
        return [out]

    def work(self, ins, outs, attrs):
        # a state update in place: only the copied entries move, the rest stays where it is
        return Work(bytes_read=ins[2].nbytes + ins[1].nbytes, bytes_written=ins[2].nbytes)
