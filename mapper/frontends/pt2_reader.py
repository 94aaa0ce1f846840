"""A checked `.pt2` archive read into a `Program`, without torch.export.load.

torch.export.load rebuilds a whole `ExportedProgram`: it imports torch's
compiler (dynamo), turns every shape expression into sympy and makes a fake
tensor for every value, seconds of work that a walk over the graph does not
need. `read_program` reads what the walk needs from an archive that
`pt2_archive.check_archive` has accepted: the graph as torch.fx nodes calling
the ATen operators (and size arithmetic) it names, with their arguments
placed as the operator's schema places them; each value's dtype and shape
(a dynamic dimension is its symbol's name); the signature; the weights and
constants as tensors over the archive's bytes (one storage per record, as
torch shares them); the outputs' structure and the dimensions' ranges.

It reads the common form only. For anything else (another archive or schema
version, big-endian data, an operator that writes to its arguments, effects
or mutations in the signature other than of its own buffers (state), subgraphs, script objects, an argument or
output of a kind it does not know) or any entry it cannot read, it returns
None, and torch.export.load reads the file, as before.
"""

from __future__ import annotations

import json
import keyword
import math
import operator
import re
import sys
import zipfile
from typing import Any, BinaryIO

import torch
import torch.fx
import torch.utils._pytree as pytree
from torch._C._export import pt2_archive_constants
from torch._export.serde.schema import SCHEMA_VERSION
from torch.export.graph_signature import InputKind, InputSpec, OutputKind, OutputSpec, TensorArgument

from aalbert.mapper.frontends.program import Program, TensorMeta
from aalbert.mapper.frontends.pt2_archive import allowed_target

# members of torch._export.serde.schema's ScalarType, MemoryFormat and Layout
_DTYPES = {1: torch.uint8, 2: torch.int8, 3: torch.int16, 4: torch.int32, 5: torch.int64, 6: torch.float16,
           7: torch.float32, 8: torch.float64, 12: torch.bool, 13: torch.bfloat16}
_MEMORY_FORMATS = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d,
                   4: torch.preserve_format}
_LAYOUTS = {7: torch.strided}
_FUNCTION_MODULES = {"_operator": operator, "math": math, "torch": torch}  # size arithmetic (names checked)
_SYMBOL = re.compile(r"Symbol\('([A-Za-z_][A-Za-z0-9_]*)'(?:, [a-z_]+=(?:True|False))*\)")
_POSITIONAL, _KEYWORD = 1, 2  # schema.ArgumentKind
_SCALARS: dict[str, Any] = {"as_int": int, "as_float": float, "as_bool": bool, "as_string": str}
_NON_FINITE = ("Infinity", "-Infinity", "NaN")  # torch.export.save's spelling of these floats


class _Declined(Exception):
    """A form the reader leaves to torch.export.load."""


def read_program(f: BinaryIO) -> Program | None:
    """The program of the checked archive `f` (left at its start), or None where torch must read it."""
    try:
        with zipfile.ZipFile(f) as z:
            return _Reader(z).program()
    except Exception:  # a form it does not read, or a damaged entry: torch reads the file and says what is wrong
        return None
    finally:
        f.seek(0)


def _one(arg: Any) -> tuple[str, Any]:
    """The (kind, value) of a one-member union, as the schema writes them: {"as_tensor": {...}}."""
    if not isinstance(arg, dict) or len(arg) != 1:
        raise _Declined
    return next(iter(arg.items()))


def _only(arg: Any, kind: str) -> Any:
    got, value = _one(arg)
    if got != kind:
        raise _Declined
    return value


def _typed(value: Any, kind: str) -> Any:
    """A number, boolean or string of the kind named; a float may be written as an integer, or as torch writes
    the ones JSON has no numbers for."""
    want = _SCALARS[kind]
    if want is float and value in _NON_FINITE:
        return float(value)
    allowed = (int, float) if want is float else (want,)
    if not isinstance(value, allowed) or isinstance(value, bool) != (want is bool):
        raise _Declined
    return want(value)


def _target(text: Any):
    """The callable a node names: an ATen or prims overload, or size arithmetic (as the check allows)."""
    if not allowed_target(text):
        raise _Declined
    if text.startswith("torch.ops."):
        _, _, namespace, packet, overload = text.split(".")
        target = getattr(getattr(getattr(torch.ops, namespace), packet), overload)
        if not isinstance(target, torch._ops.OpOverload) or target._schema.is_mutable:
            raise _Declined
        return target
    module, _, name = text.partition(".")
    return getattr(_FUNCTION_MODULES[module], name)


def _dim(d: Any) -> int | str:
    kind, value = _one(d)
    if kind == "as_int":
        return _typed(value, "as_int")
    if kind == "as_expr":
        text = value["expr_str"]
        m = _SYMBOL.fullmatch(text)
        return m.group(1) if m else text
    raise _Declined


def _tensor_meta(v: dict) -> TensorMeta:
    return TensorMeta(_DTYPES[v["dtype"]], tuple(_dim(d) for d in v["sizes"]))


def _input_spec(spec: Any) -> InputSpec:
    kind, v = _one(spec)
    if kind == "user_input":
        return InputSpec(InputKind.USER_INPUT, TensorArgument(_only(v["arg"], "as_tensor")["name"]), None)
    if kind == "parameter":
        return InputSpec(InputKind.PARAMETER, TensorArgument(v["arg"]["name"]), v["parameter_name"])
    if kind == "buffer":
        return InputSpec(InputKind.BUFFER, TensorArgument(v["arg"]["name"]), v["buffer_name"],
                         persistent=bool(v["persistent"]))
    if kind == "tensor_constant":
        return InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(v["arg"]["name"]), v["tensor_constant_name"])
    raise _Declined


def _output_spec(spec: Any) -> OutputSpec:
    kind, v = _one(spec)
    if kind == "buffer_mutation":  # state: the walk makes the buffer an input and an output of its name
        return OutputSpec(OutputKind.BUFFER_MUTATION, TensorArgument(v["arg"]["name"]), v["buffer_name"])
    return OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(_only(_only(spec, "user_output")["arg"],
                                                                   "as_tensor")["name"]), None)


class _Reader:
    def __init__(self, z: zipfile.ZipFile):
        self.zip = z
        self.root = z.namelist()[0].split("/", 1)[0]
        self.nodes: dict[str, torch.fx.Node] = {}  # every value of the graph by its name
        self.metas: dict[str, TensorMeta] = {}

    def read(self, name: str) -> bytes:
        return self.zip.read(f"{self.root}/{name}")

    def record(self, name: str) -> bytearray:
        """A tensor record's bytes, read in pieces into the buffer the tensor keeps (no whole second copy)."""
        info = self.zip.getinfo(f"{self.root}/{name}")
        data = bytearray(info.file_size)
        done = 0
        with self.zip.open(info) as f:
            while done < len(data) and (chunk := f.read(min(1 << 20, len(data) - done))):
                data[done:done + len(chunk)] = chunk
                done += len(chunk)
        if done != len(data):
            raise _Declined
        return data

    def program(self) -> Program:
        if self.read("archive_version").decode() != pt2_archive_constants.ARCHIVE_VERSION_VALUE or \
                sys.byteorder != "little" or f"{self.root}/byteorder" in self.zip.namelist() and \
                self.read("byteorder") != b"little":
            raise _Declined
        doc = json.loads(self.read("models/model.json"))
        if doc["schema_version"]["major"] != SCHEMA_VERSION[0]:
            raise _Declined
        gm = doc["graph_module"]
        if gm.get("treespec_namedtuple_fields"):
            raise _Declined
        inputs = [_input_spec(s) for s in gm["signature"]["input_specs"]]
        outputs = [_output_spec(s) for s in gm["signature"]["output_specs"]]
        graph = self.graph(gm["graph"])
        if [n.name for n in graph.nodes if n.op == "placeholder"] != [s.arg.name for s in inputs]:
            raise _Declined
        (entry,) = (e for e in gm["module_call_graph"] if e["fqn"] == "")
        ranges = {str(k): (self.bound(v["min_val"]), self.bound(v["max_val"]))
                  for k, v in doc["range_constraints"].items()}
        return Program(graph, inputs, outputs, self.tensors("weights"), self.tensors("constants"),
                       pytree.treespec_loads(entry["signature"]["out_spec"]), ranges)

    @staticmethod
    def bound(v: Any) -> int | None:
        return None if v is None else _typed(v, "as_int")

    def graph(self, g: dict) -> torch.fx.Graph:
        if g.get("is_single_tensor_return") or g.get("custom_obj_values"):
            raise _Declined
        self.metas = {name: _tensor_meta(v) for name, v in g["tensor_values"].items()}
        graph = torch.fx.Graph()
        for arg in g["inputs"]:
            name = _only(arg, "as_tensor")["name"]
            meta = self.metas[name]
            if not all(isinstance(d, int) or d.isidentifier() for d in meta.shape):
                raise _Declined  # an input sized by an expression: torch prints it its own way
            self.define(name, graph.placeholder(name), meta)
        for node in g["nodes"]:
            self.node(graph, node)
        graph.output(tuple(self.nodes[_only(arg, "as_tensor")["name"]] for arg in g["outputs"]))
        return graph

    def define(self, name: str, node: torch.fx.Node, meta: TensorMeta | None) -> None:
        if not isinstance(name, str) or name in self.nodes:
            raise _Declined
        node.name = name  # as torch.export.load names it
        node.meta["val"] = meta
        self.nodes[name] = node

    def node(self, graph: torch.fx.Graph, node: dict) -> None:
        target = _target(node["target"])
        if isinstance(target, torch._ops.OpOverload):
            args, kwargs = self.bind(target._schema, node["inputs"])
        else:  # size arithmetic takes its arguments by position
            args, kwargs = tuple(self.value(i["arg"]) for i in node["inputs"]), {}
        fx = graph.create_node("call_function", target, args, kwargs)
        trace = (node.get("metadata") or {}).get("stack_trace")
        if isinstance(trace, str):
            fx.meta["stack_trace"] = trace
        outputs = node["outputs"]
        if len(outputs) == 1:
            kind, value = _one(outputs[0])
            if kind == "as_tensor":
                return self.define(value["name"], fx, self.metas[value["name"]])
            if kind in ("as_sym_int", "as_sym_bool", "as_sym_float"):
                return self.define(_only(value, "as_name"), fx, None)
            if kind == "as_none":
                return None
            if kind != "as_tensors":
                raise _Declined
            outputs = [{"as_tensor": t} for t in value]
        for i, out in enumerate(outputs):  # several results, each taken out by a getitem node, as torch does
            kind, value = _one(out)
            if kind == "as_tensor":
                item = graph.create_node("call_function", operator.getitem, (fx, i))
                item.meta.update(fx.meta)
                self.define(value["name"], item, self.metas[value["name"]])
            elif kind != "as_none":
                raise _Declined
        return None

    def bind(self, schema: torch.FunctionSchema, inputs: list) -> tuple[tuple, dict]:
        """The call's arguments, placed as `schema` places them: positional ones first, in order, then keywords."""
        given = {i["name"]: (i["kind"], self.value(i["arg"])) for i in inputs}
        if len(given) != len(inputs) or not set(given) <= {a.name for a in schema.arguments}:
            raise _Declined
        args: list = []
        kwargs: dict[str, Any] = {}
        skipped = False
        for a in schema.arguments:
            if a.name not in given:
                if not a.kwarg_only and not a.has_default_value():
                    raise _Declined
                skipped = True
                continue
            kind, value = given[a.name]
            if kind == _POSITIONAL and not kwargs and not skipped and not a.kwarg_only:
                args.append(value)
            elif kind == _KEYWORD and not keyword.iskeyword(a.name):
                kwargs[a.name] = value
            else:
                raise _Declined
        return tuple(args), kwargs

    def value(self, arg: Any) -> Any:
        kind, v = _one(arg)
        if kind == "as_none":
            return None
        if kind == "as_tensor":
            return self.nodes[v["name"]]
        if kind == "as_tensors":
            return [self.nodes[t["name"]] for t in v]
        if kind == "as_optional_tensors":
            return [None if _one(t)[0] == "as_none" else self.nodes[_only(t, "as_tensor")["name"]] for t in v]
        if kind in _SCALARS:
            return _typed(v, kind)
        if kind in ("as_ints", "as_floats", "as_bools", "as_strings"):
            return [_typed(x, kind[:-1]) for x in v]
        if kind in ("as_sym_int", "as_sym_bool", "as_sym_float"):
            return self.symbolic(v)
        if kind in ("as_sym_ints", "as_sym_bools", "as_sym_floats"):
            return [self.symbolic(x) for x in v]
        if kind == "as_scalar_type":
            return _DTYPES[v]
        if kind == "as_memory_format":
            return _MEMORY_FORMATS[v]
        if kind == "as_layout":
            return _LAYOUTS[v]
        if kind == "as_device":
            return torch.device(v["type"]) if v.get("index") is None else torch.device(v["type"], v["index"])
        raise _Declined

    def symbolic(self, v: Any) -> Any:
        """A size: a number, or the node that computes it."""
        kind, value = _one(v)
        if kind == "as_name":
            return self.nodes[value]
        if kind not in ("as_int", "as_float", "as_bool"):
            raise _Declined
        return _typed(value, kind)

    def tensors(self, folder: str) -> dict[str, torch.Tensor]:
        """The weights or constants: each record one flat tensor, each entry a view of its record."""
        table = json.loads(self.read(f"data/{folder}/model_{folder}_config.json"))["config"]
        records: dict[str, torch.Tensor] = {}
        out = {}
        for fqn, entry in table.items():
            tm = entry["tensor_meta"]
            if entry["use_pickle"] is not False or tm["device"]["type"] != "cpu" or tm["layout"] != 7:
                raise _Declined
            dtype = _DTYPES[tm["dtype"]]
            sizes = [_typed(_only(d, "as_int"), "as_int") for d in tm["sizes"]]
            strides = [_typed(_only(d, "as_int"), "as_int") for d in tm["strides"]]
            path = entry["path_name"]
            if path not in records:
                data = self.record(f"data/{folder}/{path}")
                records[path] = torch.frombuffer(data, dtype=dtype) if data else torch.zeros(sizes, dtype=dtype)
            t = torch.as_strided(records[path], sizes, strides, _typed(_only(tm["storage_offset"], "as_int"), "as_int"))
            out[fqn] = torch.nn.Parameter(t, requires_grad=False) if entry.get("is_param") is True else t  # as torch
        return out
