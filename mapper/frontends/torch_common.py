"""What both torch frontends share: values in flight, weights, dtypes and promotion.

A walk over a torch graph (a symbolic trace or an exported ATen program)
binds every fx node to either an IR tensor (`T`: it depends on the model's
inputs or weights), a `Param` (a parameter or buffer not read yet) or a
concrete Python/torch object (sizes, dtypes, index ranges) evaluated on the
spot; shapes are static, so size arithmetic folds away. `TorchEmitter` turns
those into IR values: every distinct parameter is one weight of the pool
(two parameters with equal bytes are two weights; one equal to a weight of
another task's import is stored once), and a weight read as a linear
layer's matrix is stored in the canonical [in, out] layout, as the ONNX
frontend stores it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.utils._pytree as pytree

from aalbert.errors import FrontendError
from aalbert.ir.builder import Builder
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module
from aalbert.ir.types import DType, TensorType

TORCH_DTYPES = {torch.float32: DType.F32, torch.float16: DType.F16, torch.float64: DType.F64,
                torch.int64: DType.I64, torch.int32: DType.I32, torch.int16: DType.I16,
                torch.int8: DType.I8, torch.uint8: DType.U8, torch.bool: DType.BOOL}
TO_TORCH = {v: k for k, v in TORCH_DTYPES.items()}


class Fail(Exception):
    """A node the frontend cannot translate; the walker adds where it is."""


class T:
    """An IR tensor flowing through the walk (as opposed to a concrete object)."""

    __slots__ = ("v",)

    def __init__(self, v: Value):
        self.v = v

    @property
    def type(self) -> TensorType:
        return self.v.type


class Param:
    """A parameter, buffer or lifted constant of an exported program, made a weight when first read."""

    __slots__ = ("tensor", "name")

    def __init__(self, tensor: torch.Tensor, name: str):
        self.tensor = tensor
        self.name = name


class TorchEmitter:
    """Builds IR for one task from torch values; the walkers subclass it."""

    def __init__(self, module: Module, graph: Graph, task: str, seen: dict | None = None):
        self.module = module
        self.b = Builder(module, graph)
        self.task = task
        self._params: dict[tuple[int, str], Value] = {}
        self._taken: set[str] = set()  # the pool's weights this task's parameters became
        self._seen = seen if seen is not None else {}
        self.out_dtype: DType | None = None  # the node's result type, when the graph records it
        self.node_target = ""  # the ATen operator being imported (`native_layer_norm`), for shared handlers

    def param(self, tensor: torch.Tensor, name: str, layout: str = "as_is") -> T:
        """An IR value for a parameter or buffer: one weight per tensor (and layout), stored once."""
        key = (id(tensor), layout)
        v = self._params.get(key)
        if v is None:
            known = self._seen.get(key)  # (tensor, its version, weight name, hash) from an earlier import
            if known is not None and not (known[0] is tensor and known[1] == tensor._version and
                                          known[2] in self.module.weights and
                                          self.module.weights[known[2]].hash == known[3]):
                known = None  # another tensor at that address now, or this one changed since
            if known is not None and known[2] not in self._taken:  # (another tensor of this task may hold it)
                self._taken.add(known[2])
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
                    w = self.module.add_weight(array, name, scope=self.task, taken=self._taken)
                    self._taken.add(w.name)
                    if known is None:
                        self._seen[key] = (tensor, tensor._version, w.name, w.hash)
                    v = self.b.weight(w)
                else:
                    v = self.b.constant(array)
            self._params[key] = v
        return T(v)

    def tensor(self, x, like: T | None = None) -> Value:
        """An IR value for x: an IR tensor, a parameter, a concrete tensor or a Python number."""
        if isinstance(x, T):
            return x.v
        if isinstance(x, Param):
            return self.param(x.tensor, x.name).v
        if isinstance(x, torch.Tensor):
            if isinstance(x, torch.nn.Parameter):
                return self.param(x, "param").v
            return self.b.constant(x.detach().cpu().numpy())
        if isinstance(x, np.ndarray):
            return self.b.constant(x)
        if isinstance(x, (bool, int, float)):
            dtype = like.type.dtype if like is not None else python_dtype(x)
            return self.b.constant(np.array(x, dtype=dtype.np))
        raise Fail(f"expected a tensor, got {type(x).__name__}")

    def t(self, x) -> T:
        return x if isinstance(x, T) else T(self.tensor(x))

    def op(self, name: str, inputs: Sequence[Value], attrs=None) -> T:
        return T(self.b.op1(name, inputs, attrs))

    def cast(self, x: T, dtype: DType) -> T:
        return x if x.type.dtype == dtype else self.op("cast", [x.v], {"to": dtype.value})

    def binary(self, name: str, a, b, dtype: DType | None = None) -> T:
        """A torch binary op computed in `dtype` (default: torch's promotion of a and b)."""
        dtype = dtype or promote(a, b)
        va = self.cast(a, dtype).v if isinstance(a, T) else self.tensor(as_dtype(self.concrete(a), dtype))
        vb = self.cast(b, dtype).v if isinstance(b, T) else self.tensor(as_dtype(self.concrete(b), dtype))
        return self.op(name, [va, vb])

    def concrete(self, x):
        """x as a torch object, IR values aside (a Param becomes its tensor)."""
        return x.tensor if isinstance(x, Param) else x

    def reshape(self, x: T, shape: Sequence[int]) -> T:
        shape = resolve_shape(x.type, shape)
        return x if shape == x.type.shape else self.op("reshape", [x.v], {"shape": shape})


BFLOAT16 = "bfloat16, which numpy cannot hold: convert the model to float16 or float32 before exporting it"


def dtype_of(t: torch.dtype) -> DType:
    try:
        return TORCH_DTYPES[t]
    except KeyError:
        if t == torch.bfloat16:
            raise Fail(f"element type {BFLOAT16}") from None
        raise Fail(f"element type {t} is not supported") from None


def python_dtype(x) -> DType:
    return DType.BOOL if isinstance(x, bool) else DType.I64 if isinstance(x, int) else DType.F32


def as_dtype(x, dtype: DType):
    if isinstance(x, torch.Tensor):
        return x.to(TO_TORCH[dtype])
    return np.array(x, dtype=dtype.np)


def promote(*xs) -> DType:
    """torch's result type of an op on these operands (tensors, Python numbers)."""
    def probe(x):
        if isinstance(x, T):
            return torch.empty(1 if x.type.rank else (), dtype=TO_TORCH[x.type.dtype])
        if isinstance(x, Param):
            return x.tensor
        return x
    out = probe(xs[0])
    if len(xs) == 1:
        return dtype_of(out.dtype if isinstance(out, torch.Tensor) else torch.tensor(out).dtype)
    result = torch.result_type(out, probe(xs[1]))
    for x in xs[2:]:
        result = torch.promote_types(result, torch.result_type(torch.empty((), dtype=result), probe(x)))
    return dtype_of(result)


def load(arg, env: dict):
    return torch.fx.node.map_arg(arg, lambda n: env[n])


def has_ir(args, kwargs) -> bool:
    """Whether any argument is an IR tensor or a parameter (else the call can run on the spot)."""
    found = False

    def visit(x):
        nonlocal found
        if isinstance(x, (T, Param)):
            found = True
        return x
    torch.fx.node.map_aggregate((args, kwargs), visit)
    return found


def axis(a: int, rank: int) -> int:
    i = a + rank if a < 0 else a
    if not 0 <= i < rank:
        raise Fail(f"dimension {a} out of range for rank {rank}")
    return i


def resolve_shape(t: TensorType, shape: Sequence[int]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = shape[0]
    shape = [int(d) for d in shape]
    if shape.count(-1) == 1:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or t.numel % known:
            raise Fail(f"cannot view {t} as {shape}")
        shape[shape.index(-1)] = t.numel // known
    if math.prod(shape) != t.numel or any(d < 0 for d in shape):
        raise Fail(f"cannot view {t} as {shape}")
    return tuple(shape)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def describe(node: torch.fx.Node) -> str:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {target}"


def source_line(node: torch.fx.Node) -> str | None:
    """'file:line (code)' of the model's Python line that made the node, from torch's stack trace."""
    trace = node.meta.get("stack_trace")
    if not trace:
        return None
    lines = [ln.strip() for ln in trace.strip().splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("File "):
            where = lines[i][len("File "):].replace('"', "").replace(", line ", ":").split(", in ")[0]
            code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
            return f"{where} ({code})" if code else where
    return None


def name_outputs(result: Any, output_names: Sequence[str] | None, task: str) -> list[tuple[str, Any]]:
    """(name, value) for every tensor a model returned, named by its structure or by `output_names`."""
    leaves, spec = pytree.tree_flatten(result, is_leaf=lambda x: isinstance(x, T))
    if output_names is not None:
        return list(zip(check_count(output_names, len(leaves), f"task {task!r}"), leaves))
    return list(zip(spec_names(spec, len(leaves)), leaves))


def spec_names(spec: pytree.TreeSpec | None, count: int) -> list[str]:
    """Names for the leaves of an output structure: keys joined by dots."""
    if spec is None:
        return [f"output_{i}" for i in range(count)] if count != 1 else ["output"]
    paths: list[tuple] = []

    def walk(s: pytree.TreeSpec, prefix: tuple) -> None:
        if s.is_leaf():
            paths.append(prefix)
            return
        children = s.children()
        keys = s.context if isinstance(s.context, (list, tuple)) and len(s.context) == len(children) else None
        if keys is None and hasattr(s.type, "_fields"):  # a namedtuple
            keys = s.type._fields
        for i, child in enumerate(children):
            walk(child, prefix + (keys[i] if keys is not None else i,))
    walk(spec, ())
    if len(paths) != count:
        return [f"output_{i}" for i in range(count)]
    names = []
    for path in paths:
        if not path:
            names.append("output")
            continue
        head = f"output_{path[0]}" if isinstance(path[0], int) else str(path[0])
        names.append(".".join([head] + [str(p) for p in path[1:]]))
    return names


def check_count(names: Sequence[str], count: int, where: str) -> list[str]:
    if len(names) != count:
        raise FrontendError(f"{where}: the model returns {count} values, {len(names)} output names were given")
    return list(names)
