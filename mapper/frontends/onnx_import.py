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

A graph output cannot bear an input's name in ONNX, so a decoder's KV cache
comes in as `past_key_values.<l>.key` / `.value` and goes out as
`present.<l>.key` / `.value` (Optimum's names): where both of a pair are
there, with one type, they are the state `cache.key.<l>` / `cache.value.<l>`
(`ir/state.py`), an input and an output of that name.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from aalbert.errors import AalbertError, FrontendError, UnsupportedOpError
from aalbert.ir.builder import Builder
from aalbert.ir.fileio import read_regular
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module
from aalbert.ir.registry import InferError
from aalbert.ir.types import DType, TensorType
from aalbert.limits import check_bytes, open_regular
from aalbert.mapper.frontends import onnx_layout, onnx_ops
from aalbert.mapper.frontends.dims import DimSpec
from aalbert.mapper.frontends.onnx_context import HandlerError, NodeContext, _attr_value, onnx_dtype
from aalbert.outputs import note_read
from aalbert.passes.layout import fold_weight_transposes
from aalbert.passes.positions import merge_copies

HANDLERS = {**onnx_ops.HANDLERS, **onnx_layout.HANDLERS}  # every operator the importer translates

_DEFAULT_DOMAINS = ("", "ai.onnx")


# What a model file takes once parsed, per byte of it, at most: the bytes read and the parsed message, whose
# initializers are decoded into arrays one at a time (a 47 MB ALBERT-base file peaks 95 MB above the start)
ONNX_BYTES_PER_BYTE = 3
# external data: the arrays read, and the weights made from them (a transposed copy, at most)
EXTERNAL_BYTES_PER_BYTE = 2
# element types whose little-endian bytes numpy reads as they are; others are decoded by onnx
_PLAIN: dict[int, str] = {
    onnx.TensorProto.FLOAT: "<f4", onnx.TensorProto.DOUBLE: "<f8", onnx.TensorProto.FLOAT16: "<f2",
    onnx.TensorProto.INT8: "i1", onnx.TensorProto.UINT8: "u1", onnx.TensorProto.INT16: "<i2",
    onnx.TensorProto.UINT16: "<u2", onnx.TensorProto.INT32: "<i4", onnx.TensorProto.UINT32: "<u4",
    onnx.TensorProto.INT64: "<i8", onnx.TensorProto.UINT64: "<u8", onnx.TensorProto.BOOL: "?"}


def load_model(path: str | os.PathLike) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """Read an ONNX file, or fail with one clear line; with the arrays of its initializers held in external
    data files, by name (read here, not by onnx: their declared sizes are checked against the memory budget
    before any is read)."""
    p = Path(path)
    if not p.exists():
        raise FrontendError(f"{path}: no such file")
    if p.is_dir():
        raise FrontendError(f"{path}: is a directory, expected an .onnx file")
    note_read(p)
    data = read_regular(p, "an ONNX model", ONNX_BYTES_PER_BYTE, "parsed")
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf reports corrupt bytes in several ways
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FrontendError(f"{path}: not a readable ONNX model ({reason})") from None
    del data
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise FrontendError(f"{path}: not an ONNX model (no graph with outputs; truncated or another format?)")
    initializers = [t for t in model.graph.initializer if external_data_helper.uses_external_data(t)]
    external = initializers + [t for t in _node_tensors(model.graph) if external_data_helper.uses_external_data(t)]
    places = [_external_place(p, t) for t in external]
    check_bytes(EXTERNAL_BYTES_PER_BYTE * sum(length for _, _, length in places),
                f"{path}'s external weight data ({len(places)} tensor{'s' if len(places) != 1 else ''})")
    arrays = {}
    for i, (t, (file, offset, length)) in enumerate(zip(external, places)):
        array = _read_external(p, t, file, offset, length)
        if array is not None and i < len(initializers):
            arrays[t.name] = array
        else:  # a tensor attribute, or an element type onnx decodes: onnx reads it from the bytes
            t.raw_data = array.tobytes() if array is not None else _read_bytes(p, t, file, offset, length)
            del t.external_data[:]
            t.data_location = onnx.TensorProto.DEFAULT
    return model, arrays


def _external_place(model_path: Path, t: onnx.TensorProto) -> tuple[Path, int, int]:
    """(file, offset, length) of a tensor's external data, checked against the file's size and the tensor's
    type; the location must be a regular file inside the model's folder."""
    info = {e.key: e.value for e in t.external_data}
    where = f"{model_path}: tensor '{t.name}'"
    location = info.get("location", "")
    if not location or "\0" in location or os.path.isabs(location) or ".." in Path(location).parts:
        raise FrontendError(f"{where}: external data location {location!r} is not a file name inside the "
                            "model's folder")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise FrontendError(f"{where}: external data offset or length is not a number") from None
    file = model_path.parent / location
    note_read(file)
    try:
        with open_regular(file, "external weight data") as f:
            size = os.fstat(f.fileno()).st_size
    except FrontendError:
        raise
    except AalbertError as e:
        raise FrontendError(f"{where}: its external weight data: {e.message}") from None
    if length is None:
        length = size - offset
    if offset < 0 or length < 0 or offset + length > size:
        raise FrontendError(f"{where}: external data at bytes {offset:,}..{offset + (length or 0):,} of {location}, "
                            f"which holds {size:,} bytes")
    if t.data_type in _PLAIN:
        if any(d < 0 for d in t.dims):
            raise FrontendError(f"{where}: negative dimension in {list(t.dims)}")
        need = math.prod(t.dims) * np.dtype(_PLAIN[t.data_type]).itemsize
        if need != length:
            raise FrontendError(f"{where}: its external data holds {length:,} bytes, its type {list(t.dims)} of "
                                f"{onnx.TensorProto.DataType.Name(t.data_type)} needs {need:,}")
    return file, offset, length


def _read_bytes(model_path: Path, t: onnx.TensorProto, file: Path, offset: int, length: int) -> bytes:
    with open_regular(file, "external weight data") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise FrontendError(f"{model_path}: tensor '{t.name}': external data file {file.name} ended early")
    return data


def _read_external(model_path: Path, t: onnx.TensorProto, file: Path, offset: int, length: int) -> np.ndarray | None:
    """A plain tensor's array, read straight from its file (None for element types onnx decodes)."""
    if t.data_type not in _PLAIN:
        return None
    array = np.empty(length, dtype=np.uint8)
    with open_regular(file, "external weight data") as f:
        f.seek(offset)
        got = f.readinto(array.data)
    if got != length:
        raise FrontendError(f"{model_path}: tensor '{t.name}': external data file {file.name} ended early")
    return array.view(np.dtype(_PLAIN[t.data_type])).reshape(tuple(t.dims)).astype(
        np.dtype(_PLAIN[t.data_type]).newbyteorder("="), copy=False)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: its initializers and its nodes' tensor attributes, subgraphs' included."""
    yield from graph.initializer
    yield from _node_tensors(graph)


def _node_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """The tensors of a graph's nodes' attributes, subgraphs' initializers included."""
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
                dims: DimSpec | None = None,
                input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Import `path` as task `task` (default: the file's stem) into `module`."""
    dims = DimSpec() if dims is None else dims  # a fresh one: a DimSpec records the names it met
    model, external = load_model(path)
    graph = _Importer(str(path), model, external, module, dims, input_shapes or {}).run(task or Path(path).stem)
    module.add_graph(graph)
    module.remove_unused_weights()  # e.g. a weight superseded by its transposed layout
    return graph


_PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")


def state_names(g: onnx.GraphProto) -> dict[str, str]:
    """ONNX input and output names -> the state names they stand for: the cache's pairs of one type."""
    outputs = {o.name: o.type for o in g.output}
    names = {}
    for i in g.input:
        m = _PAST.fullmatch(i.name)
        present = f"present.{m.group(1)}.{m.group(2)}" if m else None
        if present is not None and present in outputs and outputs[present] == i.type:
            names[i.name] = names[present] = f"cache.{m.group(2)}.{m.group(1)}"
    return names


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
    def __init__(self, where: str, model: onnx.ModelProto, external: dict[str, np.ndarray], module: Module,
                 dims: DimSpec, input_shapes: dict[str, tuple[int, ...]]):
        self.where = where
        self.model = model
        self.external = external
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
        if len(self.initializers) != len(g.initializer):
            raise self.fail(f"initializer '{_twice(t.name for t in g.initializer)}' is defined twice")
        self.env: dict[str, Value] = {}
        self.taken: set[str] = set()  # the pool's weights this file's initializers and constants became
        self.graph_inputs = {i.name for i in g.input}
        if len(self.graph_inputs) != len(g.input):
            raise self.fail(f"input '{_twice(i.name for i in g.input)}' is declared twice")
        self._inputs(g)
        for node in g.node:
            self._node(node)
        outputs = []
        for o in g.output:
            if o.name not in self.env and o.name not in self.initializers:
                raise self.fail(f"graph output '{o.name}' is not computed by any node")
            outputs.append((self.state.get(o.name, o.name), self._value(o.name)))
        self.graph.set_outputs(outputs)
        self.graph.remove_dead()
        fold_weight_transposes(self.module, self.graph)
        merge_copies(self.module, self.graph)  # a parameter the exporter wrote once per use is one weight
        self.graph.renumber()
        return self.graph

    def _inputs(self, g: onnx.GraphProto) -> None:
        seen: dict[str, int] = {}
        self.state = state_names(g)
        unknown = set(self.input_shapes) - {self.state.get(i.name, i.name) for i in g.input}
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
            name = self.state.get(inp.name, inp.name)
            if name in self.input_shapes:
                given = tuple(self.input_shapes[name])
                if len(given) != len(dims) or any(v and v != s for (v, _), s in zip(dims, given)):
                    want = [v or p or "?" for v, p in dims]
                    raise self.fail(f"input '{inp.name}' has shape {list(given)}, the model expects {want}")
                for (_, p), s in zip(dims, given):
                    if p and seen.setdefault(p, s) != s:
                        raise self.fail(f"input '{inp.name}': dimension '{p}' is {s} here but "
                                        f"{seen[p]} in another input")
                shape = given
            else:
                shape = self.dims.resolve(self.where, name, dims, seen)
            self.env[inp.name] = self.b.input(name, TensorType(shape, dtype))

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
                array = self.external[name] if name in self.external else numpy_helper.to_array(self.initializers[name])
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
        inputs: list[Value | None] = []
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


def _twice(names) -> str:
    seen = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return ""


def _label(node: onnx.NodeProto) -> str:
    """How an error names a node: by its name, or by its op when it has none."""
    return f"node '{node.name}' ({node.op_type})" if node.name else f"a {node.op_type} node"
