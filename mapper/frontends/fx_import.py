"""The torch.fx frontend: an `nn.Module` plus example inputs into a module's graph.

The module is traced with `torch.fx.symbolic_trace` and the trace is walked
node by node. Every value is either an IR tensor (it depends on the model's
inputs or weights) or a concrete Python/torch object (sizes, dtypes, index
ranges) evaluated on the spot; shapes are those of the example inputs, so
size arithmetic folds away. Every distinct `nn.Parameter` (and float buffer)
is one weight, however often it is used; `nn.Linear` weights are stored in
the canonical [in, out] layout, as the ONNX frontend stores them.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from aalbert.ir.builder import Builder
from aalbert.ir.errors import FrontendError, UnsupportedOpError
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module
from aalbert.ir.registry import InferError
from aalbert.ir.types import DType, TensorType
from aalbert.passes.layout import fold_weight_transposes

_TORCH_DTYPES = {torch.float32: DType.F32, torch.float16: DType.F16, torch.float64: DType.F64,
                 torch.int64: DType.I64, torch.int32: DType.I32, torch.int16: DType.I16,
                 torch.int8: DType.I8, torch.uint8: DType.U8, torch.bool: DType.BOOL}
_TO_TORCH = {v: k for k, v in _TORCH_DTYPES.items()}


class T:
    """An IR tensor flowing through the trace (as opposed to a concrete object)."""

    __slots__ = ("v",)

    def __init__(self, v: Value):
        self.v = v

    @property
    def type(self) -> TensorType:
        return self.v.type


class _Fail(Exception):
    pass


def import_torch(model: nn.Module, example_inputs: Mapping[str, torch.Tensor], module: Module,
                 task: str, output_names: Sequence[str] = ("output",), tracer: str = "auto",
                 seen: dict | None = None) -> Graph:
    """Trace `model` called with `example_inputs` (keyword arguments) into task `task`.

    tracer "symbolic" uses `torch.fx.symbolic_trace` (fast; the module must be
    traceable), "export" uses `torch.export` (handles Hugging Face models;
    ATen-level graph), "auto" tries symbolic first. `seen`, a dict the caller
    passes to several imports into the same module, remembers which weight
    each parameter became, so a parameter shared by several task models (a
    frozen backbone) is copied and hashed once rather than once per task.
    """
    if tracer not in ("auto", "symbolic", "export"):
        raise ValueError(f"unknown tracer {tracer!r}")
    graph = Graph(task)
    gm = None
    if tracer in ("auto", "symbolic"):
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as e:
            if tracer == "symbolic":
                raise FrontendError(f"task {task!r}: torch.fx cannot trace {type(model).__name__} "
                                    f"({type(e).__name__}: {_first_line(e)})") from None
    if gm is not None:
        _FxImporter(gm, module, graph, task, seen).run(example_inputs, output_names)
    else:
        try:
            ep = torch.export.export(model, (), dict(example_inputs), strict=False)
        except Exception as e:
            raise FrontendError(f"task {task!r}: torch.fx cannot trace {type(model).__name__}, nor torch.export "
                                f"({type(e).__name__}: {_first_line(e)})") from None
        _FxImporter(ep.graph_module, module, graph, task, seen).run_exported(ep, example_inputs, output_names)
    graph.remove_dead()
    fold_weight_transposes(module, graph)  # torch.export reads linear weights through a transpose
    graph.renumber()
    module.add_graph(graph)
    module.remove_unused_weights()
    return graph


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else ""


class _FxImporter:
    def __init__(self, gm: torch.fx.GraphModule, module: Module, graph: Graph, task: str, seen: dict | None = None):
        self.gm = gm
        self.module = module
        self.b = Builder(module, graph)
        self.task = task
        self._params: dict[tuple[int, str], Value] = {}
        self._seen = seen if seen is not None else {}

    # -- driver -----------------------------------------------------------------------
    def run(self, inputs: Mapping[str, torch.Tensor], output_names: Sequence[str]) -> None:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        missing = [n.target for n in placeholders if n.target not in inputs]
        if missing:
            raise FrontendError(f"task {self.task!r}: no example input for {', '.join(missing)}")
        bound = {n: self._input(n.target, inputs[n.target]) for n in placeholders}
        self._walk(bound, output_names)

    def run_exported(self, ep, inputs: Mapping[str, torch.Tensor], output_names: Sequence[str]) -> None:
        """Walk a `torch.export` program: lifted parameters, buffers and constants become data."""
        from torch.export.graph_signature import InputKind

        placeholders = {n.name: n for n in self.gm.graph.nodes if n.op == "placeholder"}
        bound = {}
        for spec in ep.graph_signature.input_specs:
            node = placeholders[spec.arg.name]
            if spec.kind == InputKind.USER_INPUT:
                if spec.arg.name not in inputs:
                    raise FrontendError(f"task {self.task!r}: no example input for {spec.arg.name}")
                bound[node] = self._input(spec.arg.name, inputs[spec.arg.name])
            elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
                tensor = ep.state_dict.get(spec.target)
                if tensor is None:  # non-persistent buffers live in `constants`
                    tensor = ep.constants[spec.target]
                bound[node] = self.param(tensor, spec.target) if tensor.is_floating_point() else tensor
            elif spec.kind == InputKind.CONSTANT_TENSOR:
                bound[node] = ep.constants[spec.target]
            else:
                raise FrontendError(f"task {self.task!r}: exported input {spec.arg.name} of kind "
                                    f"{spec.kind.name} is not supported")
        self._walk(bound, output_names)

    def _input(self, name: str, x: torch.Tensor) -> T:
        return T(self.b.input(name, TensorType(tuple(x.shape), _dtype(x.dtype))))

    def _walk(self, bound: dict, output_names: Sequence[str]) -> None:
        env: dict[torch.fx.Node, Any] = dict(bound)
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                result = _load(node.args[0], env)
                results = list(result) if isinstance(result, (tuple, list)) else [result]
                if len(results) != len(output_names):
                    raise FrontendError(f"task {self.task!r}: the model returns {len(results)} values, "
                                        f"{len(output_names)} output names were given")
                self.b.graph.set_outputs((n, self.tensor(r)) for n, r in zip(output_names, results))
                continue
            args, kwargs = _load(node.args, env), _load(node.kwargs, env)
            try:
                env[node] = self.eval(node, args, kwargs)
            except (_Fail, InferError, ValueError) as e:
                raise FrontendError(f"task {self.task!r}: fx node '{node.name}' ({_describe(node)}): {e}") from None

    def eval(self, node: torch.fx.Node, args, kwargs):
        if node.op == "get_attr":
            obj = self.gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            return self.param(obj, node.target) if isinstance(obj, torch.Tensor) else obj
        if node.op == "call_module":
            sub = self.gm.get_submodule(node.target)
            handler = _MODULES.get(type(sub))
            if handler is None:
                raise UnsupportedOpError(f"task {self.task!r}: module {type(sub).__name__} ('{node.target}') "
                                         f"is not supported; supported: {', '.join(sorted(t.__name__ for t in _MODULES))}")
            args = [T(self.tensor(a)) if isinstance(a, torch.Tensor) else a for a in args]
            return handler(self, sub, node.target, *args, **kwargs)
        if node.op == "call_method":
            if not _has_tensor(args, kwargs):
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            handler = _METHODS.get(node.target)
            if handler is None:
                raise UnsupportedOpError(f"task {self.task!r}: tensor method '{node.target}' is not supported")
            return handler(self, *args, **kwargs)
        # call_function
        if not _has_tensor(args, kwargs):
            return node.target(*args, **kwargs)
        if isinstance(node.target, torch._ops.OpOverload):
            name = node.target._schema.name.split("::")[-1]
            handler = _ATEN.get(name)
            if handler is None:
                raise UnsupportedOpError(f"task {self.task!r}: ATen op {name}.{node.target._overloadname} "
                                         f"is not supported; supported: {', '.join(sorted(_ATEN))}")
            return handler(self, *args, **kwargs)
        handler = _FUNCTIONS.get(node.target)
        if handler is None:
            name = getattr(node.target, "__name__", str(node.target))
            raise UnsupportedOpError(f"task {self.task!r}: function '{name}' is not supported")
        return handler(self, *args, **kwargs)

    # -- values -----------------------------------------------------------------------
    def param(self, tensor: torch.Tensor, name: str, layout: str = "as_is") -> T:
        """An IR value for a parameter or buffer (weights stored once, by content)."""
        key = (id(tensor), layout)
        v = self._params.get(key)
        if v is None:
            known = self._seen.get(key)  # (tensor, its version, weight name, hash) from an earlier import
            if known is not None and known[0] is tensor and known[1] == tensor._version and \
                    known[2] in self.module.weights and self.module.weights[known[2]].hash == known[3]:
                v = self.b.weight(self.module.weights[known[2]])
            else:
                data = tensor.detach().cpu()
                if layout == "linear":
                    data = data.t()
                # torch's blocked, threaded copy transposes several times faster than numpy's
                dense = data.contiguous()
                array = dense.numpy()
                if dense.data_ptr() == tensor.data_ptr():  # no copy was made: the weight must own its data
                    array = array.copy()
                if array.dtype.kind == "f" and array.ndim >= 1:
                    w = self.module.add_weight(array, name, scope=self.task)
                    self._seen[key] = (tensor, tensor._version, w.name, w.hash)
                    v = self.b.weight(w)
                else:
                    v = self.b.constant(array)
            self._params[key] = v
        return T(v)

    def tensor(self, x, like: T | None = None) -> Value:
        """An IR value for x: an IR tensor, a concrete tensor or a Python number."""
        if isinstance(x, T):
            return x.v
        if isinstance(x, torch.Tensor):
            if isinstance(x, nn.Parameter):
                return self.param(x, "param").v
            return self.b.constant(x.detach().cpu().numpy())
        if isinstance(x, np.ndarray):
            return self.b.constant(x)
        if isinstance(x, (bool, int, float)):
            dtype = like.type.dtype if like is not None else _python_dtype(x)
            return self.b.constant(np.array(x, dtype=dtype.np))
        raise _Fail(f"expected a tensor, got {type(x).__name__}")

    def op(self, name: str, inputs: Sequence[Value], attrs=None) -> T:
        return T(self.b.op1(name, inputs, attrs))

    def cast(self, x: T, dtype: DType) -> T:
        return x if x.type.dtype == dtype else self.op("cast", [x.v], {"to": dtype.value})

    def binary(self, name: str, a, b) -> T:
        """A torch binary op with torch's type promotion."""
        dtype = _promote(a, b)
        ta = a if isinstance(a, T) else None
        tb = b if isinstance(b, T) else None
        va = self.cast(ta, dtype).v if ta else self.tensor(_as_dtype(a, dtype))
        vb = self.cast(tb, dtype).v if tb else self.tensor(_as_dtype(b, dtype))
        return self.op(name, [va, vb])

    def reshape(self, x: T, shape: Sequence[int]) -> T:
        shape = _resolve_shape(x.type, shape)
        return x if shape == x.type.shape else self.op("reshape", [x.v], {"shape": shape})


# -- helpers --------------------------------------------------------------------------
def _dtype(t: torch.dtype) -> DType:
    try:
        return _TORCH_DTYPES[t]
    except KeyError:
        raise _Fail(f"element type {t} is not supported") from None


def _python_dtype(x) -> DType:
    return DType.BOOL if isinstance(x, bool) else DType.I64 if isinstance(x, int) else DType.F32


def _as_dtype(x, dtype: DType):
    if isinstance(x, torch.Tensor):
        return x.to(_TO_TORCH[dtype])
    return np.array(x, dtype=dtype.np)


def _promote(a, b) -> DType:
    def probe(x):
        if isinstance(x, T):
            return torch.empty(1, dtype=_TO_TORCH[x.type.dtype])
        return x
    return _dtype(torch.result_type(probe(a), probe(b)))


def _load(arg, env):
    return torch.fx.node.map_arg(arg, lambda n: env[n])


def _has_tensor(args, kwargs) -> bool:
    found = False

    def visit(x):
        nonlocal found
        if isinstance(x, T):
            found = True
        return x
    torch.fx.node.map_aggregate((args, kwargs), visit)
    return found


def _describe(node: torch.fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {target}"


def _axis(axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise _Fail(f"dimension {axis} out of range for rank {rank}")
    return a


def _resolve_shape(t: TensorType, shape: Sequence[int]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = shape[0]
    shape = [int(d) for d in shape]
    if shape.count(-1) == 1:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or t.numel % known:
            raise _Fail(f"cannot view {t} as {shape}")
        shape[shape.index(-1)] = t.numel // known
    if math.prod(shape) != t.numel or any(d < 0 for d in shape):
        raise _Fail(f"cannot view {t} as {shape}")
    return tuple(shape)


# -- modules ----------------------------------------------------------------------------
def _linear(imp: _FxImporter, m: nn.Linear, name: str, x: T) -> T:
    w = imp.param(m.weight, f"{name}.weight", layout="linear")
    args = [x.v, w.v] + ([imp.param(m.bias, f"{name}.bias").v] if m.bias is not None else [])
    return imp.op("linear", args)


def _embedding(imp: _FxImporter, m: nn.Embedding, name: str, ids: T) -> T:
    return imp.op("embedding", [imp.param(m.weight, f"{name}.weight").v, ids.v])


def _layer_norm_args(imp, x: T, shape, weight, bias, eps, name) -> T:
    axis = x.type.rank - len(shape)
    if weight is None:
        weight = torch.ones(tuple(shape), dtype=_TO_TORCH[x.type.dtype])
    args = [x.v, imp.tensor(weight) if not isinstance(weight, nn.Parameter) else imp.param(weight, f"{name}.weight").v]
    if bias is not None:
        args.append(imp.tensor(bias) if not isinstance(bias, nn.Parameter) else imp.param(bias, f"{name}.bias").v)
    return imp.op("layernorm", args, {"axis": axis, "eps": float(eps)})


def _layernorm_module(imp: _FxImporter, m: nn.LayerNorm, name: str, x: T) -> T:
    return _layer_norm_args(imp, x, m.normalized_shape, m.weight, m.bias, m.eps, name)


def _passthrough(imp, m, name, x, *args, **kwargs):
    return x


def _gelu_module(imp, m: nn.GELU, name, x: T) -> T:
    return imp.op("gelu", [x.v], {"approximate": m.approximate})


def _softmax_module(imp, m: nn.Softmax, name, x: T) -> T:
    return _softmax(imp, x, m.dim)


_MODULES: dict[type, Callable] = {
    nn.Linear: _linear, nn.Embedding: _embedding, nn.LayerNorm: _layernorm_module,
    nn.Dropout: _passthrough, nn.Identity: _passthrough, nn.GELU: _gelu_module,
    nn.Softmax: _softmax_module,
    nn.ReLU: lambda imp, m, name, x: imp.op("relu", [x.v]),
    nn.Tanh: lambda imp, m, name, x: imp.op("tanh", [x.v]),
    nn.Sigmoid: lambda imp, m, name, x: imp.op("sigmoid", [x.v]),
}


# -- functions and methods ----------------------------------------------------------------
def _softmax(imp, x: T, dim=None, dtype=None, **_):
    return imp.op("softmax", [x.v], {"axis": _axis(-1 if dim is None else dim, x.type.rank)})


def _gelu(imp, x: T, approximate: str = "none"):
    return imp.op("gelu", [x.v], {"approximate": approximate})


def _matmul(imp, a, b):
    return imp.op("matmul", [imp.tensor(a), imp.tensor(b)])


def _unary(name: str):
    def handler(imp, x: T, *args, **kwargs):
        if isinstance(x, T) and not x.type.dtype.is_float and name not in ("neg", "abs", "relu"):
            x = imp.cast(x, DType.F32)
        return imp.op(name, [x.v])
    return handler


def _bin(name: str, reverse: bool = False):
    def handler(imp, a, b, *rest, **kwargs):
        if rest or kwargs.get("alpha", 1) != 1:
            raise _Fail("the alpha argument is not supported")
        return imp.binary(name, b, a) if reverse else imp.binary(name, a, b)
    return handler


def _rsqrt(imp, x: T):
    return imp.op("reciprocal", [imp.op("sqrt", [x.v]).v])


def _permute(imp, x: T, *dims):
    dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    perm = tuple(_axis(int(d), x.type.rank) for d in dims)
    return x if perm == tuple(range(x.type.rank)) else imp.op("transpose", [x.v], {"perm": perm})


def _transpose(imp, x: T, d0: int, d1: int):
    perm = list(range(x.type.rank))
    a, b = _axis(d0, x.type.rank), _axis(d1, x.type.rank)
    perm[a], perm[b] = perm[b], perm[a]
    return _permute(imp, x, *perm)


def _view(imp, x: T, *shape):
    return imp.reshape(x, shape)


def _unsqueeze(imp, x: T, dim: int):
    d = _axis(dim, x.type.rank + 1)
    return imp.reshape(x, x.type.shape[:d] + (1,) + x.type.shape[d:])


def _squeeze(imp, x: T, dim=None):
    if dim is None:
        dims = {i for i, d in enumerate(x.type.shape) if d == 1}
    else:
        dims = {_axis(d, x.type.rank) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        dims = {d for d in dims if x.type.shape[d] == 1}
    return imp.reshape(x, tuple(d for i, d in enumerate(x.type.shape) if i not in dims))


def _flatten(imp, x: T, start_dim: int = 0, end_dim: int = -1):
    if x.type.rank == 0:
        return imp.reshape(x, (1,))
    s, e = _axis(start_dim, x.type.rank), _axis(end_dim, x.type.rank)
    shape = x.type.shape[:s] + (math.prod(x.type.shape[s:e + 1]),) + x.type.shape[e + 1:]
    return imp.reshape(x, shape)


def _to(imp, x: T, *args, **kwargs):
    target = kwargs.get("dtype")
    for a in args:
        if isinstance(a, torch.dtype):
            target = a
        elif isinstance(a, torch.Tensor | T):
            target = _TO_TORCH[a.type.dtype] if isinstance(a, T) else a.dtype
    return x if target is None else imp.cast(x, _dtype(target))


def _size(imp, x: T, dim: int | None = None):
    shape = torch.Size(x.type.shape)
    return shape if dim is None else shape[_axis(dim, x.type.rank)]


def _getattr(imp, x, attr: str):
    if isinstance(x, T):
        if attr == "shape":
            return torch.Size(x.type.shape)
        if attr == "dtype":
            return _TO_TORCH[x.type.dtype]
        if attr == "device":
            return torch.device("cpu")
        if attr == "ndim":
            return x.type.rank
        if attr == "T" and x.type.rank == 2:
            return _permute(imp, x, 1, 0)
        raise _Fail(f"tensor attribute '{attr}' is not supported")
    return getattr(x, attr)


def _getitem(imp, x, index):
    if not isinstance(x, T):
        return operator.getitem(x, index)
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (T, torch.Tensor)) for i in index):
        raise _Fail("indexing with tensors is not supported")
    if index.count(Ellipsis) > 1:
        raise _Fail("more than one ellipsis")
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    if used > x.type.rank:
        raise _Fail(f"too many indices for a rank-{x.type.rank} tensor")
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
        size = x.type.shape[dim]
        if isinstance(i, int):
            j = i + size if i < 0 else i
            if not 0 <= j < size:
                raise _Fail(f"index {i} out of range for a dimension of size {size}")
            starts.append(j), stops.append(j + 1), steps.append(1)
        elif isinstance(i, slice):
            s, e, st = i.indices(size)
            starts.append(s), stops.append(e), steps.append(st)
            out_shape.append(len(range(s, e, st)))
        else:
            raise _Fail(f"index {i!r} is not supported")
        dim += 1
    y = x
    if any((s, e, st) != (0, d, 1) for s, e, st, d in zip(starts, stops, steps, x.type.shape)):
        y = imp.op("slice", [x.v], {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)})
    return imp.reshape(y, tuple(out_shape))


def _linear_fn(imp, x: T, weight, bias=None):
    w = imp.param(weight, "linear.weight", layout="linear") if isinstance(weight, nn.Parameter) else \
        _permute(imp, T(imp.tensor(weight)), 1, 0)
    args = [x.v, w.v] + ([imp.tensor(bias)] if bias is not None else [])
    return imp.op("linear", args)


def _embedding_fn(imp, ids: T, weight, *args, **kwargs):
    table = imp.param(weight, "embedding.weight") if isinstance(weight, nn.Parameter) else T(imp.tensor(weight))
    return imp.op("embedding", [table.v, imp.tensor(ids)])


def _layer_norm_fn(imp, x: T, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _layer_norm_args(imp, x, normalized_shape, weight, bias, eps, "layer_norm")


def _where(imp, cond, a, b):
    dtype = _promote(a, b)
    va = imp.cast(a, dtype).v if isinstance(a, T) else imp.tensor(_as_dtype(a, dtype))
    vb = imp.cast(b, dtype).v if isinstance(b, T) else imp.tensor(_as_dtype(b, dtype))
    return imp.op("where", [imp.tensor(cond), va, vb])


def _masked_fill(imp, x: T, mask, value):
    return _where(imp, mask, T(imp.tensor(value, like=x)), x)


def _cat(imp, tensors, dim: int = 0):
    values = [imp.tensor(t) for t in tensors]
    if len(values) == 1:
        return T(values[0])
    return imp.op("concat", values, {"axis": _axis(dim, values[0].type.rank)})


def _expand(imp, x: T, *sizes):
    sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list, torch.Size)) else sizes
    pad = len(sizes) - x.type.rank
    shape = tuple(x.type.shape[i - pad] if s == -1 else int(s) for i, s in enumerate(sizes))
    return x if shape == x.type.shape else imp.op("broadcast", [x.v], {"shape": shape})


def _contiguous(imp, x: T, *args, **kwargs):
    return x


def _reduce(name: str):
    def handler(imp, x: T, dim=None, keepdim: bool = False, **kwargs):
        dims = range(x.type.rank) if dim is None else (dim if isinstance(dim, (tuple, list)) else (dim,))
        axes = tuple(sorted({_axis(d, x.type.rank) for d in dims}))
        return imp.op(name, [x.v], {"axes": axes, "keepdims": bool(keepdim)})
    return handler


_FUNCTIONS: dict[Callable, Callable] = {
    operator.add: _bin("add"), operator.sub: _bin("sub"), operator.mul: _bin("mul"),
    operator.truediv: _bin("div"), operator.pow: _bin("pow"), operator.matmul: _matmul,
    operator.neg: _unary("neg"), operator.getitem: _getitem, getattr: _getattr,
    torch.add: _bin("add"), torch.sub: _bin("sub"), torch.mul: _bin("mul"), torch.div: _bin("div"),
    torch.pow: _bin("pow"), torch.rsub: _bin("sub", reverse=True), torch.maximum: _bin("max"),
    torch.minimum: _bin("min"), torch.eq: _bin("equal"), torch.lt: _bin("less"), torch.gt: _bin("greater"),
    torch.matmul: _matmul, torch.bmm: _matmul,
    torch.tanh: _unary("tanh"), torch.relu: _unary("relu"), torch.exp: _unary("exp"),
    torch.sqrt: _unary("sqrt"), torch.rsqrt: _rsqrt, torch.erf: _unary("erf"),
    torch.sigmoid: _unary("sigmoid"), torch.neg: _unary("neg"), torch.abs: _unary("abs"),
    torch.softmax: _softmax, F.softmax: _softmax, F.gelu: _gelu, F.relu: _unary("relu"),
    F.linear: _linear_fn, F.embedding: _embedding_fn, F.layer_norm: _layer_norm_fn,
    F.dropout: lambda imp, x, *a, **k: x, torch.where: _where, torch.cat: _cat, torch.concat: _cat,
    torch.reshape: _view, torch.permute: _permute, torch.transpose: _transpose,
    torch.unsqueeze: _unsqueeze, torch.squeeze: _squeeze, torch.flatten: _flatten,
    torch.mean: _reduce("reduce_mean"), torch.sum: _reduce("reduce_sum"),
}

_METHODS: dict[str, Callable] = {
    "view": _view, "reshape": _view, "permute": _permute, "transpose": _transpose,
    "contiguous": _contiguous, "size": _size, "to": _to, "type_as": lambda imp, x, o: _to(imp, x, o),
    "float": lambda imp, x: imp.cast(x, DType.F32), "long": lambda imp, x: imp.cast(x, DType.I64),
    "bool": lambda imp, x: imp.cast(x, DType.BOOL),
    "softmax": _softmax, "unsqueeze": _unsqueeze, "squeeze": _squeeze, "flatten": _flatten,
    "expand": _expand, "masked_fill": _masked_fill, "matmul": _matmul,
    "add": _bin("add"), "sub": _bin("sub"), "mul": _bin("mul"), "div": _bin("div"),
    "tanh": _unary("tanh"), "relu": _unary("relu"), "exp": _unary("exp"), "sqrt": _unary("sqrt"),
    "mean": _reduce("reduce_mean"), "sum": _reduce("reduce_sum"),
    "__getitem__": _getitem,
}


# -- ATen ops (graphs from torch.export) -----------------------------------------------------------
def _aten_embedding(imp, weight, ids, *args, **kwargs):
    return _embedding_fn(imp, ids, weight)


def _aten_layer_norm(imp, x, shape, weight=None, bias=None, eps=1e-5, *rest):
    return _layer_norm_fn(imp, x, shape, weight, bias, eps)


def _aten_slice(imp, x: T, dim: int = 0, start=None, end=None, step: int = 1):
    index = [slice(None)] * x.type.rank
    index[_axis(dim, x.type.rank)] = slice(start, end, step)
    return _getitem(imp, x, tuple(index))


def _aten_select(imp, x: T, dim: int, i: int):
    index = [slice(None)] * x.type.rank
    index[_axis(dim, x.type.rank)] = i
    return _getitem(imp, x, tuple(index))


def _aten_to(imp, x, *args, **kwargs):
    dtype = kwargs.get("dtype")
    for a in args:
        if isinstance(a, torch.dtype):
            dtype = a
    return x if dtype is None else imp.cast(x, _dtype(dtype))


def _aten_new_ones(imp, x: T, size, dtype=None, **kwargs):
    dt = dtype or _TO_TORCH[x.type.dtype]
    return torch.ones(tuple(size), dtype=dt)


def _aten_index(imp, x: T, indices):
    if any(i is None for i in indices) or not all(isinstance(i, torch.Tensor) for i in indices):
        raise _Fail("indexing with tensors computed by the model (or with gaps) is not supported")
    idx = [i.numpy().astype(np.int64) for i in indices]
    shape = np.broadcast_shapes(*(i.shape for i in idx))
    stacked = np.stack([np.broadcast_to(i, shape) for i in idx], axis=-1)
    return imp.op("gather_nd", [x.v, imp.tensor(stacked)], {"batch_dims": 0})


def _aten_where(imp, cond, a, b):
    return _where(imp, cond, a, b)


def _aten_sdpa(imp, q: T, k: T, v: T, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    if is_causal:
        raise _Fail("causal attention is not supported")
    d = q.type.shape[-1]
    kt = _transpose(imp, k, -1, -2)
    scores = _matmul(imp, q, kt)
    scores = imp.binary("mul", scores, float(scale) if scale is not None else 1.0 / math.sqrt(d))
    if attn_mask is not None:
        mask = attn_mask if isinstance(attn_mask, T) else T(imp.tensor(attn_mask))
        if mask.type.dtype is DType.BOOL:
            zero, neg = T(imp.tensor(0.0, like=scores)), T(imp.tensor(-math.inf, like=scores))
            mask = _where(imp, mask, zero, neg)
        scores = imp.binary("add", scores, mask)
    return _matmul(imp, _softmax(imp, scores, -1), v)


def _aten_reduce(name):
    inner = _reduce(name)

    def handler(imp, x, dim=None, keepdim=False, *rest, **kwargs):
        return inner(imp, x, dim, keepdim)
    return handler


def _aten_unary(name):
    inner = _unary(name)

    def handler(imp, x, *rest, **kwargs):
        return inner(imp, x)
    return handler


def _aten_rsub(imp, x, other, alpha=1):
    if alpha != 1:
        raise _Fail("the alpha argument is not supported")
    return imp.binary("sub", other, x)


def _aten_pow(imp, x, exponent):
    return imp.binary("pow", x, exponent)


def _aten_passthrough(imp, x, *args, **kwargs):
    return x


_ATEN: dict[str, Callable] = {
    "linear": lambda imp, x, w, b=None: _linear_fn(imp, x, w, b),
    "embedding": _aten_embedding, "layer_norm": _aten_layer_norm,
    "gelu": lambda imp, x, approximate="none": _gelu(imp, x, approximate),
    "softmax": lambda imp, x, dim, *rest, **kw: _softmax(imp, x, dim),
    "_softmax": lambda imp, x, dim, *rest, **kw: _softmax(imp, x, dim),
    "add": _bin("add"), "sub": _bin("sub"), "mul": _bin("mul"), "div": _bin("div"), "rsub": _aten_rsub,
    "pow": _aten_pow, "maximum": _bin("max"), "minimum": _bin("min"),
    "eq": _bin("equal"), "lt": _bin("less"), "le": _bin("less_equal"), "gt": _bin("greater"),
    "ge": _bin("greater_equal"), "__and__": _bin("and"), "bitwise_and": _bin("and"),
    "logical_and": _bin("and"), "__or__": _bin("or"), "bitwise_or": _bin("or"),
    "matmul": lambda imp, a, b: _matmul(imp, a, b), "bmm": lambda imp, a, b: _matmul(imp, a, b),
    "mm": lambda imp, a, b: _matmul(imp, a, b),
    "view": lambda imp, x, shape: _view(imp, x, shape), "reshape": lambda imp, x, shape: _view(imp, x, shape),
    "_unsafe_view": lambda imp, x, shape: _view(imp, x, shape),
    "permute": lambda imp, x, dims: _permute(imp, x, *dims), "transpose": _transpose,
    "t": lambda imp, x: _permute(imp, x, 1, 0), "unsqueeze": _unsqueeze,
    "squeeze": lambda imp, x, dim=None: _squeeze(imp, x, dim), "expand": lambda imp, x, sizes, **kw: _expand(imp, x, sizes),
    "flatten": _flatten, "cat": _cat, "concat": _cat,
    "slice": _aten_slice, "select": _aten_select, "index": _aten_index,
    "to": _aten_to, "_to_copy": _aten_to, "type_as": lambda imp, x, o: _to(imp, x, o),
    "new_ones": _aten_new_ones, "where": _aten_where, "masked_fill": lambda imp, x, m, v: _masked_fill(imp, x, m, v),
    "scaled_dot_product_attention": _aten_sdpa,
    "tanh": _aten_unary("tanh"), "relu": _aten_unary("relu"), "exp": _aten_unary("exp"),
    "sqrt": _aten_unary("sqrt"), "rsqrt": lambda imp, x: _rsqrt(imp, x), "erf": _aten_unary("erf"),
    "sigmoid": _aten_unary("sigmoid"), "neg": _aten_unary("neg"), "abs": _aten_unary("abs"),
    "mean": _aten_reduce("reduce_mean"), "sum": _aten_reduce("reduce_sum"),
    "contiguous": _aten_passthrough, "clone": _aten_passthrough, "alias": _aten_passthrough,
    "detach": _aten_passthrough, "lift_fresh_copy": _aten_passthrough,
    "dropout": _aten_passthrough, "_assert_tensor_metadata": lambda imp, *a, **k: None,
}
