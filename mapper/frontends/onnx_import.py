"""The ONNX frontend: one `.onnx` file (one task) into a module's graph.

What real exporters produce for BERT/ALBERT-family encoders imports here:
torch.onnx's TorchScript and dynamo exporters (opsets 11-20), Hugging Face
models, external-data files. Dynamic dimensions are fixed at import
(`DimSpec`); shape arithmetic folds away. Floating-point initializers become
weights of the module's pool, one per initializer even where bytes are equal
(a weight another file brought already is stored once; copies of one
parameter that an exporter wrote once per use are one weight); integer
initializers, scalars and small Constant nodes become inline constants.
Weights that are only ever read transposed are stored transposed, so a weight
has one canonical layout and hash whichever exporter wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from aalbert.ir.builder import Builder
from aalbert.ir.errors import FrontendError, UnsupportedOpError
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module
from aalbert.ir.outputs import note_read
from aalbert.ir.registry import InferError
from aalbert.ir.types import DType, TensorType
from aalbert.passes.layout import fold_weight_transposes
from aalbert.passes.positions import merge_copies

from . import onnx_layout, onnx_ops
from .dims import DimSpec
from .onnx_context import HandlerError, NodeContext, _attr_value, onnx_dtype

HANDLERS = {**onnx_ops.HANDLERS, **onnx_layout.HANDLERS}  # every operator the importer translates

_DEFAULT_DOMAINS = ("", "ai.onnx")


def load_model(path: str | os.PathLike) -> onnx.ModelProto:
    """Read an ONNX file and its external data, or fail with one clear line."""
    p = Path(path)
    if not p.exists():
        raise FrontendError(f"{path}: no such file")
    if p.is_dir():
        raise FrontendError(f"{path}: is a directory, expected an .onnx file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # protobuf reports corrupt bytes in several ways
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FrontendError(f"{path}: not a readable ONNX model ({reason})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise FrontendError(f"{path}: not an ONNX model (no graph with outputs; truncated or another format?)")
    external = [t for t in _tensors(model.graph) if external_data_helper.uses_external_data(t)]
    note_read(p, *(p.parent / e.value for t in external for e in t.external_data if e.key == "location"))
    try:
        for t in external:
            external_data_helper.load_external_data_for_tensor(t, str(p.parent))
    except Exception as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FrontendError(f"{path}: cannot read its external weight data ({reason})") from None
    return model


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: its initializers and its nodes' tensor attributes, subgraphs' included.
    One walk finds the external files to read and to keep from being overwritten."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for sub in a.graphs:
                yield from _tensors(sub)


def import_onnx(path: str | os.PathLike, module: Module, task: str | None = None,
                dims: DimSpec = DimSpec(),
                input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Import `path` as task `task` (default: the file's stem) into `module`."""
    model = load_model(path)
    graph = _Importer(str(path), model, module, dims, input_shapes or {}).run(task or Path(path).stem)
    module.add_graph(graph)
    module.remove_unused_weights()  # e.g. a weight superseded by its transposed layout
    return graph


def _is_weight(array: np.ndarray, initializer: bool) -> bool:
    """Model data, as opposed to code constants (shapes, axes, scalars).

    Floating-point initializers of rank >= 1 are weights (a 1-label head's
    bias has one element); a Constant node is a weight only if it holds more
    than one number.
    """
    if array.dtype.kind != "f":
        return False
    return array.ndim >= 1 if initializer else array.size > 1


class _Importer:
    def __init__(self, where: str, model: onnx.ModelProto, module: Module, dims: DimSpec,
                 input_shapes: dict[str, tuple[int, ...]]):
        self.where = where
        self.model = model
        self.module = module
        self.dims = dims
        self.input_shapes = input_shapes
        self.opset = {imp.domain: imp.version for imp in model.opset_import}
        if not any(d in self.opset for d in _DEFAULT_DOMAINS):
            raise FrontendError(f"{where}: the model declares no opset for the default ONNX domain")
        self.version = self.opset.get("", self.opset.get("ai.onnx"))

    def fail(self, message: str) -> FrontendError:
        return FrontendError(f"{self.where}: {message}")

    def run(self, task: str) -> Graph:
        g = self.model.graph
        if len(g.sparse_initializer):
            raise self.fail("sparse initializers are not supported")
        self.graph = Graph(task)
        self.b = Builder(self.module, self.graph)
        self.initializers = {t.name: t for t in g.initializer}
        self.env: dict[str, Value] = {}
        self.taken: set[str] = set()  # the pool's weights this file's initializers and constants became
        self.graph_inputs = {i.name for i in g.input}
        self._inputs(g)
        for node in g.node:
            self._node(node)
        outputs = []
        for o in g.output:
            if o.name not in self.env and o.name not in self.initializers:
                raise self.fail(f"graph output '{o.name}' is not computed by any node")
            outputs.append((o.name, self._value(o.name)))
        self.graph.set_outputs(outputs)
        self.graph.remove_dead()
        fold_weight_transposes(self.module, self.graph)
        merge_copies(self.module, self.graph)  # a parameter the exporter wrote once per use is one weight
        self.graph.renumber()
        return self.graph

    def _inputs(self, g: onnx.GraphProto) -> None:
        seen: dict[str, int] = {}
        unknown = set(self.input_shapes) - {i.name for i in g.input}
        if unknown:
            raise self.fail(f"the model has no input named '{sorted(unknown)[0]}'")
        for inp in g.input:
            if inp.name in self.initializers:
                continue  # old exporters list initializers as inputs too
            tt = inp.type.tensor_type
            if not inp.type.HasField("tensor_type") or not tt.HasField("shape"):
                raise self.fail(f"input '{inp.name}' is not a tensor of known rank")
            try:
                dtype = onnx_dtype(tt.elem_type)
            except HandlerError as e:
                raise self.fail(f"input '{inp.name}': {e}") from None
            dims = [(d.dim_value if d.HasField("dim_value") else None,
                     d.dim_param if d.HasField("dim_param") else None) for d in tt.shape.dim]
            if inp.name in self.input_shapes:
                given = tuple(self.input_shapes[inp.name])
                if len(given) != len(dims) or any(v and v != s for (v, _), s in zip(dims, given)):
                    want = [v or p or "?" for v, p in dims]
                    raise self.fail(f"input '{inp.name}' has shape {list(given)}, the model expects {want}")
                for (_, p), s in zip(dims, given):
                    if p and seen.setdefault(p, s) != s:
                        raise self.fail(f"input '{inp.name}': dimension '{p}' is {s} here but "
                                        f"{seen[p]} in another input")
                shape = given
            else:
                shape = self.dims.resolve(self.where, inp.name, dims, seen)
            self.env[inp.name] = self.b.input(inp.name, TensorType(shape, dtype))

    def _define(self, name: str, node: onnx.NodeProto) -> None:
        """A node's result name must be new: onnxruntime refuses a graph that defines a value twice."""
        if name in self.env or name in self.initializers:
            what = "a graph input" if name in self.graph_inputs else "an initializer" if name in self.initializers \
                else "another node's result"
            raise self.fail(f"{_label(node)} defines '{name}', which is already {what} (each value is defined once)")

    def _data(self, name: str, array: np.ndarray, initializer: bool) -> Value:
        try:
            DType.from_numpy(array.dtype)
        except ValueError:
            raise self.fail(f"'{name}' has element type {array.dtype}, which is not supported") from None
        if _is_weight(array, initializer):
            w = self.module.add_weight(np.ascontiguousarray(array), name, scope=self.graph.name, taken=self.taken)
            self.taken.add(w.name)
            return self.b.weight(w)
        return self.b.constant(array)

    def _value(self, name: str) -> Value:
        v = self.env.get(name)
        if v is None and name in self.initializers:
            try:
                array = numpy_helper.to_array(self.initializers[name])
            except Exception as e:
                raise self.fail(f"initializer '{name}' is corrupt ({e})") from None
            v = self.env[name] = self._data(name, array, initializer=True)
        return v

    def _node(self, node: onnx.NodeProto) -> None:
        if node.domain not in _DEFAULT_DOMAINS:
            raise UnsupportedOpError(
                f"{self.where}: {_label(node)} is in domain '{node.domain}', which is not supported; "
                f"only standard ONNX ops are")
        if node.op_type == "Constant":
            self._constant(node, _label(node))
            return
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            supported = ", ".join(sorted(HANDLERS))
            raise UnsupportedOpError(
                f"{self.where}: {_label(node)} uses op {node.op_type} (opset {self.version}), which is not "
                f"supported; supported ops: {supported}")
        inputs = []
        for name in node.input:
            if not name:
                inputs.append(None)
                continue
            v = self._value(name)
            if v is None:
                raise self.fail(f"{_label(node)} reads '{name}', which nothing defines before it "
                                "(the graph is not topologically sorted or has a cycle)")
            inputs.append(v)
        try:
            outs = handler(NodeContext(self.b, node, inputs, self.version))
        except (HandlerError, InferError) as e:
            raise self.fail(f"{_label(node)}: {e}") from None
        except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as e:
            raise self.fail(f"{_label(node)}: cannot be imported ({type(e).__name__}: {e})") from None
        for name, v in zip(node.output, outs):
            if name:
                self._define(name, node)
                self.env[name] = v

    def _constant(self, node: onnx.NodeProto, label: str) -> None:
        if len(node.attribute) != 1:
            raise self.fail(f"{label}: needs exactly one value attribute")
        attr = node.attribute[0]
        try:
            value = _attr_value(attr)
        except HandlerError as e:
            raise self.fail(f"{label}: {e}") from None
        kinds = {"value_float": np.float32, "value_floats": np.float32,
                 "value_int": np.int64, "value_ints": np.int64}
        if attr.name == "value":
            array = value
        elif attr.name in kinds:
            array = np.array(value, dtype=kinds[attr.name])
        else:
            raise self.fail(f"{label}: attribute '{attr.name}' is not supported")
        if not isinstance(array, np.ndarray):
            raise self.fail(f"{label}: bad constant value")
        self._define(node.output[0], node)
        self.env[node.output[0]] = self._data(node.output[0], array, initializer=False)


def _label(node: onnx.NodeProto) -> str:
    """How an error names a node: by its name, or by its op when it has none."""
    return f"node '{node.name}' ({node.op_type})" if node.name else f"a {node.op_type} node"
