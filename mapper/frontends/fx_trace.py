"""The fast path: `torch.fx.symbolic_trace` of a module, walked at the level the model was written.

Symbolic tracing records `nn.Module` calls, torch functions and tensor
methods without running torch's dispatcher, so a traceable model (the
project's own ALBERT modules) imports in a fraction of the time
`torch.export` takes. Hugging Face models are not traceable this way (their
forward passes branch on the inputs); `torch_import` then falls back to the
ATen path. Tables below map modules, functions and methods to IR.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from aalbert.errors import FrontendError, UnsupportedOpError
from aalbert.ir.registry import InferError
from aalbert.ir.types import DType, TensorType
from aalbert.mapper.frontends import torch_ops as ops
from aalbert.mapper.frontends.torch_common import Fail, T, TorchEmitter, describe, dtype_of, has_ir, load, name_outputs


class FxWalker(TorchEmitter):
    """Walks a symbolic trace; every placeholder needs an example input."""

    def run(self, gm: torch.fx.GraphModule, inputs: Mapping[str, torch.Tensor],
            output_names: Sequence[str] | None) -> None:
        self.gm = gm
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        missing = [n.target for n in placeholders if n.target not in inputs]
        if missing:
            raise FrontendError(f"task {self.task!r}: no example input for {', '.join(missing)}")
        env: dict[torch.fx.Node, Any] = {}
        for n in placeholders:
            x = inputs[n.target]
            env[n] = T(self.b.input(n.target, TensorType(tuple(x.shape), dtype_of(x.dtype))))
        for node in gm.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                pairs = name_outputs(load(node.args[0], env), output_names, self.task)
                self.b.graph.set_outputs((n, self.tensor(r)) for n, r in pairs)
                continue
            args, kwargs = load(node.args, env), load(node.kwargs, env)
            try:
                env[node] = self.eval(node, args, kwargs)
            except (Fail, InferError, ValueError) as e:
                raise FrontendError(f"task {self.task!r}: fx node '{node.name}' ({describe(node)}): {e}") from None

    def eval(self, node: torch.fx.Node, args, kwargs):
        # torch.fx: get_attr, call_module and call_method name their target (a str); call_function holds it
        name = cast(str, node.target)
        if node.op == "get_attr":
            obj = self.gm
            for part in name.split("."):
                obj = getattr(obj, part)
            return self.param(obj, name) if isinstance(obj, torch.Tensor) else obj
        if node.op == "call_module":
            sub = self.gm.get_submodule(name)
            handler = MODULES.get(type(sub))
            if handler is None:
                raise UnsupportedOpError(f"task {self.task!r}: module {type(sub).__name__} ('{name}') "
                                         "is not supported; supported: "
                                         f"{', '.join(sorted(t.__name__ for t in MODULES))}")
            args = [T(self.tensor(a)) if isinstance(a, torch.Tensor) else a for a in args]
            return handler(self, sub, name, *args, **kwargs)
        if node.op == "call_method":
            if not has_ir(args, kwargs):
                return getattr(args[0], name)(*args[1:], **kwargs)
            handler = METHODS.get(name)
            if handler is None:
                raise UnsupportedOpError(f"task {self.task!r}: tensor method '{name}' is not supported")
            return handler(self, *args, **kwargs)
        function = cast(Callable[..., Any], node.target)
        if not has_ir(args, kwargs):
            return function(*args, **kwargs)
        handler = FUNCTIONS.get(function)
        if handler is None:
            label = getattr(function, "__name__", str(function))
            raise UnsupportedOpError(f"task {self.task!r}: function '{label}' is not supported")
        return handler(self, *args, **kwargs)


# -- modules ----------------------------------------------------------------------------
def _linear(imp: FxWalker, m: nn.Linear, name: str, x: T) -> T:
    w = imp.param(m.weight, f"{name}.weight", layout="linear")
    args = [x.v, w.v] + ([imp.param(m.bias, f"{name}.bias").v] if m.bias is not None else [])
    return imp.op("linear", args)


def _embedding(imp: FxWalker, m: nn.Embedding, name: str, ids: T) -> T:
    return imp.op("embedding", [imp.param(m.weight, f"{name}.weight").v, ids.v])


def _layer_norm(imp: FxWalker, m: nn.LayerNorm, name: str, x: T) -> T:
    return ops.layer_norm(imp, ops.LayerNormArgs(x, m.normalized_shape, m.weight, m.bias, m.eps), name)


MODULES: dict[type, Callable] = {
    nn.Linear: _linear, nn.Embedding: _embedding, nn.LayerNorm: _layer_norm,
    nn.Dropout: lambda imp, m, name, x, *a, **k: x, nn.Identity: lambda imp, m, name, x, *a, **k: x,
    nn.GELU: lambda imp, m, name, x: ops.gelu(imp, x, m.approximate),
    nn.Softmax: lambda imp, m, name, x: ops.softmax(imp, x, m.dim),
    nn.ReLU: lambda imp, m, name, x: imp.op("relu", [x.v]),
    nn.Tanh: lambda imp, m, name, x: imp.op("tanh", [x.v]),
    nn.Sigmoid: lambda imp, m, name, x: imp.op("sigmoid", [x.v]),
}

# -- functions and methods ----------------------------------------------------------------
_unary, _bin, _reduce = ops.unary, ops.binary, ops.reduce

FUNCTIONS: dict[Callable, Callable] = {
    operator.add: _bin("add"), operator.sub: _bin("sub"), operator.mul: _bin("mul"),
    operator.truediv: _bin("div"), operator.pow: _bin("pow"), operator.matmul: ops.matmul,
    operator.neg: _unary("neg"), operator.getitem: ops.getitem, getattr: ops.getattr_,
    torch.add: _bin("add"), torch.sub: _bin("sub"), torch.mul: _bin("mul"), torch.div: _bin("div"),
    torch.pow: _bin("pow"), torch.rsub: _bin("sub", reverse=True), torch.maximum: _bin("max"),
    torch.minimum: _bin("min"), torch.eq: _bin("equal"), torch.lt: _bin("less"), torch.gt: _bin("greater"),
    torch.matmul: ops.matmul, torch.bmm: ops.matmul,
    torch.tanh: _unary("tanh"), torch.relu: _unary("relu"), torch.exp: _unary("exp"),
    torch.sqrt: _unary("sqrt"), torch.rsqrt: ops.rsqrt, torch.erf: _unary("erf"),
    torch.sigmoid: _unary("sigmoid"), torch.neg: _unary("neg"), torch.abs: _unary("abs"),
    torch.softmax: ops.softmax, F.softmax: ops.softmax, F.gelu: ops.gelu, F.relu: _unary("relu"),
    F.linear: ops.linear, F.embedding: ops.embedding,
    F.layer_norm: ops.parsed(ops.LayerNormArgs, ops.layer_norm), F.dropout: ops.identity, torch.where: ops.where,
    torch.cat: ops.cat, torch.concat: ops.cat,
    torch.reshape: ops.view, torch.permute: ops.permute, torch.transpose: ops.transpose,
    torch.unsqueeze: ops.unsqueeze, torch.squeeze: ops.squeeze, torch.flatten: ops.flatten,
    torch.mean: _reduce("reduce_mean"), torch.sum: _reduce("reduce_sum"),
}

METHODS: dict[str, Callable] = {
    "view": ops.view, "reshape": ops.view, "permute": ops.permute, "transpose": ops.transpose,
    "contiguous": ops.identity, "size": ops.size, "to": ops.to, "type_as": lambda imp, x, o: ops.to(imp, x, o),
    "float": lambda imp, x: imp.cast(x, DType.F32), "long": lambda imp, x: imp.cast(x, DType.I64),
    "bool": lambda imp, x: imp.cast(x, DType.BOOL),
    "softmax": ops.softmax, "unsqueeze": ops.unsqueeze, "squeeze": ops.squeeze, "flatten": ops.flatten,
    "expand": ops.expand, "masked_fill": ops.masked_fill, "matmul": ops.matmul,
    "add": _bin("add"), "sub": _bin("sub"), "mul": _bin("mul"), "div": _bin("div"),
    "tanh": _unary("tanh"), "relu": _unary("relu"), "exp": _unary("exp"), "sqrt": _unary("sqrt"),
    "mean": _reduce("reduce_mean"), "sum": _reduce("reduce_sum"),
    "__getitem__": ops.getitem,
}
