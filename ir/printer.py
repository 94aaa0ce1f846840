"""The text form of a module (parsed back by `ir.parser`).

    module {
      weight @emb : tensor<100x16xf32> hash "0f3a..."
      graph @sst2(%input_ids: tensor<1x16xi64>) -> ("logits": tensor<1x2xf32>) {
        %0 = weight {name = @emb} : tensor<100x16xf32>
        %1 = embedding(%0, %input_ids) : tensor<1x16x16xf32>
        ...
        return %9
      }
    }

Weight data never appears here (it lives in a sidecar `.npz`); inline
`constant` data does. Printing is deterministic, and print -> parse -> print
is byte-identical.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from aalbert.ir.encoding import Encoding
from aalbert.ir.facts import fact_attrs
from aalbert.ir.graph import Attr, Graph, Node, Sym
from aalbert.ir.module import Module, Weight
from aalbert.ir.placement import Arena
from aalbert.ir.types import DType, TensorType

_BARE = re.compile(r"[A-Za-z0-9_.$/-]+\Z")


def name_text(name: str) -> str:
    """A value or symbol name: bare when simple, else a JSON string."""
    return name if _BARE.match(name) else json.dumps(name)


def format_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def _element_text(dtype: DType):
    if dtype is DType.BOOL:
        return lambda v: "true" if v else "false"
    if dtype.is_int:
        return lambda v: str(int(v))
    if dtype is DType.F64:
        return lambda v: format_float(float(v))
    scalar = dtype.np.type
    return lambda v: _short_float(scalar(v))


def _short_float(v) -> str:
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    text = str(v)  # numpy prints the shortest text that reads back exactly
    return text if any(c in text for c in ".e") else text + ".0"


def _splat(flat: np.ndarray) -> bool:
    """Every element has the first one's bits (so -0.0 is not 0.0, and a NaN payload counts)."""
    bits = flat.view(f"u{flat.dtype.itemsize}") if flat.dtype.itemsize in (1, 2, 4, 8) else flat
    return bool((bits == bits[0]).all())


def dense_text(array: np.ndarray) -> str:
    t = TensorType.of(array)
    fmt = _element_text(t.dtype)
    flat = array.reshape(-1)
    if flat.size >= 2 and _splat(flat):
        body = fmt(flat[0])
    elif flat.size == 1 and array.ndim > 0:
        body = f"[{fmt(flat[0])}]"
    elif array.ndim == 0:
        body = fmt(flat[0])
    else:
        body = "[" + ", ".join(fmt(v) for v in flat.tolist()) + "]"
    return f"dense<{body}> : {t}"


def attr_text(value: Attr) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sym):
        return "@" + name_text(value.name)
    if isinstance(value, tuple):
        return "[" + ", ".join(attr_text(v) for v in value) + "]"
    if isinstance(value, np.ndarray):
        return dense_text(value)
    raise TypeError(f"cannot print attribute {value!r}")


def node_text(node: Node) -> str:
    parts = []
    if node.outputs:
        parts.append(", ".join("%" + name_text(v.name) for v in node.outputs) + " = ")
    parts.append(node.op)
    if node.inputs:
        parts.append("(" + ", ".join("%" + name_text(v.name) for v in node.inputs) + ")")
    if node.attrs:
        items = ", ".join(f"{k} = {attr_text(node.attrs[k])}" for k in sorted(node.attrs))
        parts.append(" {" + items + "}")
    parts.append(" : " + ", ".join(typed_text(v) for v in node.outputs))
    if node.mapping is not None:
        parts.append(f" mapping {json.dumps(node.mapping.text())}")
    return "".join(parts)


def typed_text(v) -> str:
    """A value's type, and its arena offset once activations are planned."""
    return f"{v.type} at {v.offset}" if v.offset is not None else str(v.type)


def arena_text(arena: Arena) -> str:
    return "arena {" + ", ".join(f"{k} = {attr_text(v)}" for k, v in fact_attrs(arena).items()) + "}"


def weight_facts(w: Weight) -> dict[str, Attr]:
    """The facts passes added to a weight (role, encoding, placement), as attributes; defaults left out."""
    facts: dict[str, Attr] = {}
    if w.role is not None:
        facts |= fact_attrs(w.role)
    facts |= fact_attrs(w.encoding, Encoding.plain(w.type.dtype))
    if w.placement is not None:
        facts |= fact_attrs(w.placement)
    return facts


def weight_text(w: Weight) -> str:
    text = f"weight @{name_text(w.name)} : {w.type} hash {json.dumps(w.hash)}"
    facts = weight_facts(w)
    if facts:
        text += " {" + ", ".join(f"{k} = {attr_text(v)}" for k, v in facts.items()) + "}"
    return text


def graph_lines(graph: Graph, indent: str = "") -> list[str]:
    args = ", ".join(f"%{name_text(v.name)}: {typed_text(v)}" for v in graph.inputs)
    results = ", ".join(f"{json.dumps(n)}: {v.type}" for n, v in graph.outputs)
    lines = [f"{indent}graph @{name_text(graph.name)}({args}) -> ({results}) {{"]
    if graph.arena is not None:
        lines.append(f"{indent}  {arena_text(graph.arena)}")
    lines += [f"{indent}  {node_text(n)}" for n in graph.nodes]
    rets = ", ".join("%" + name_text(v.name) for _, v in graph.outputs)
    lines.append(f"{indent}  return {rets}")
    lines.append(f"{indent}}}")
    return lines


def print_module(module: Module) -> str:
    lines = ["module {"]
    lines += [f"  {weight_text(w)}" for w in module.weights.values()]
    for graph in module.graphs.values():
        lines.append("")
        lines += graph_lines(graph, "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_graph(graph: Graph) -> str:
    return "\n".join(graph_lines(graph)) + "\n"
