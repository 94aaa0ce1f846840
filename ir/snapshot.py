"""A module as flat data, for caches: quick to write and to read back, and nothing in it executes.

The text form (`printer`, `parser`) is for people and tools; parsing thousands
of nodes through the grammar takes seconds. A snapshot holds the same module
as one JSON document of flat lists (values numbered in definition order,
nodes by op, operand numbers, attributes and result types) plus an `.npz` of
every array (weight data, per-channel scales, dense constants), and rebuilds
it with the graph's own methods. Facts travel as the records' attributes
(`facts.fact_attrs` / `fact_record`), mappings in their text form. Node
locations are not kept. `load_snapshot` verifies the result, checks every
weight's hash, and refuses a snapshot of another format version.

    save_snapshot(module, "m.json")   # m.json + m.npz
    module = load_snapshot("m.json")
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.encoding import Encoding, Role
from aalbert.ir.facts import FactError, fact_attrs, fact_record
from aalbert.ir.fileio import open_npz, write_npz
from aalbert.ir.graph import Graph, Sym, Value
from aalbert.ir.mapping import Mapping
from aalbert.ir.module import Module, Weight
from aalbert.ir.placement import Arena, Placement
from aalbert.ir.types import parse_tensor_type
from aalbert.ir.verifier import verify
from aalbert.outputs import atomic_writer

VERSION = 1
_type = functools.lru_cache(maxsize=None)(parse_tensor_type)


def save_snapshot(module: Module, path: str | os.PathLike, durable: bool = False) -> None:
    """Write `module` as `path` (JSON) and its arrays beside it (`.npz`, first: the JSON's presence says both
    are whole); `durable` writes at once, not when the command commits its outputs."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    doc = {"version": VERSION, "weights": [_weight_doc(w, arrays) for w in module.weights.values()],
           "graphs": [_graph_doc(g, arrays) for g in module.graphs.values()]}
    write_npz(path.with_suffix(".npz"), arrays, durable)
    with atomic_writer(path, durable=durable) as f:
        f.write(json.dumps(doc, separators=(",", ":")).encode())


def load_snapshot(path: str | os.PathLike) -> Module:
    """The module `save_snapshot` wrote, verified; AalbertError if it is not one (or of another version)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("version") != VERSION:
            raise AalbertError(f"{path}: a snapshot of format {doc.get('version')!r}, not {VERSION}")
        with open_npz(path.with_suffix(".npz"), "snapshot arrays") as npz:
            arrays = {k: npz[k] for k in npz.files}
        module = Module()
        for w in doc["weights"]:
            module.insert_weight(_weight(w, arrays))
        for g in doc["graphs"]:
            module.add_graph(_graph(g, arrays))
    except (ValueError, KeyError, TypeError, IndexError, FactError, OSError) as e:
        raise AalbertError(f"{path}: not a readable snapshot ({type(e).__name__}: {e})") from None
    for w in module.weights.values():
        if w.data is not None and w.expected_hash() != w.hash:
            raise AalbertError(f"{path}: weight @{w.name} does not match its hash {w.hash}")
    verify(module)
    return module


def _weight_doc(w: Weight, arrays: dict[str, np.ndarray]) -> dict:
    doc: dict[str, Any] = {"name": w.name, "type": str(w.type), "hash": w.hash,
                           "encoding": _listed(fact_attrs(w.encoding))}
    for key, record in (("role", w.role), ("placement", w.placement)):
        if record is not None:
            doc[key] = _listed(fact_attrs(record))
    if w.data is not None:
        arrays[f"w{len(arrays)}"] = w.data
        doc["data"] = f"w{len(arrays) - 1}"
    if w.scales is not None:
        arrays[f"w{len(arrays)}"] = w.scales
        doc["scales"] = f"w{len(arrays) - 1}"
    return doc


def _weight(doc: dict, arrays: dict[str, np.ndarray]) -> Weight:
    ttype = _type(doc["type"])
    encoding = fact_record(Encoding, _tupled(doc["encoding"]), Encoding.plain(ttype.dtype))
    role = fact_record(Role, _tupled(doc["role"])) if "role" in doc else None
    placement = fact_record(Placement, _tupled(doc["placement"])) if "placement" in doc else None
    data = arrays[doc["data"]] if "data" in doc else None
    scales = arrays[doc["scales"]] if "scales" in doc else None
    return Weight(doc["name"], ttype, doc["hash"], data, role, encoding, scales, placement)


def _graph_doc(g: Graph, arrays: dict[str, np.ndarray]) -> dict:
    number: dict[int, int] = {}
    inputs = []
    for v in g.inputs:
        number[id(v)] = len(number)
        inputs.append([v.name, str(v.type), v.offset])
    nodes = []
    for n in g.nodes:
        operands = [number[id(v)] for v in n.inputs]
        results = []
        for v in n.outputs:
            number[id(v)] = len(number)
            results.append([v.name, str(v.type), v.offset])
        attrs = {k: _attr_doc(a, arrays) for k, a in n.attrs.items()}
        nodes.append([n.op, operands, attrs, results, n.mapping.text() if n.mapping is not None else None])
    return {"name": g.name, "inputs": inputs, "nodes": nodes,
            "outputs": [[name, number[id(v)]] for name, v in g.outputs],
            "arena": _listed(fact_attrs(g.arena)) if g.arena is not None else None, "counter": g._counter}


def _graph(doc: dict, arrays: dict[str, np.ndarray]) -> Graph:
    g = Graph(doc["name"])
    values: list[Value] = []
    for name, text, offset in doc["inputs"]:
        v = g.add_input(name, _type(text))
        v.offset = offset
        values.append(v)
    for op, operands, attrs, results, mapping in doc["nodes"]:
        node = g.create_node(op, [values[i] for i in operands], {k: _attr(a, arrays) for k, a in attrs.items()},
                             [_type(t) for _, t, _ in results], [name for name, _, _ in results])
        for v, (_, _, offset) in zip(node.outputs, results):
            v.offset = offset
        node.mapping = Mapping.parse(mapping) if mapping is not None else None
        values.extend(g.append(node).outputs)
    g.set_outputs((name, values[i]) for name, i in doc["outputs"])
    if doc["arena"] is not None:
        g.arena = fact_record(Arena, _tupled(doc["arena"]))
    g._counter = doc["counter"]  # where fresh value names continue, as in the graph saved
    return g


def _attr_doc(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """An attribute as JSON: numbers, strings and booleans as they are; the rest tagged."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Sym):
        return {"sym": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_attr_doc(v, arrays) for v in value]}
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    raise TypeError(f"cannot snapshot attribute {value!r}")


def _attr(doc: Any, arrays: dict[str, np.ndarray]) -> Any:
    if not isinstance(doc, dict):
        return doc
    if "sym" in doc:
        return Sym(doc["sym"])
    if "tuple" in doc:
        return tuple(_attr(v, arrays) for v in doc["tuple"])
    array = np.array(arrays[doc["array"]], copy=True, order="C")
    array.setflags(write=False)
    return array


def _listed(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def _tupled(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()}

