"""aalbert's intermediate representation.

A `Module` is a content-hashed pool of `Weight`s plus one SSA `Graph` per
task. Ops are declared once in `ir.registry` (type inference, numpy
semantics, work). The text form is printed by `ir.printer` and parsed by
`ir.parser` (grammar `ir/ir.lark`); weight data travels in a sidecar `.npz`
(`ir.fileio`). `ir.verifier` checks invariants, `ir.interpreter` executes,
`ir.analysis` offers a networkx view.

Importing this package registers every op (`ir/ops/`). It depends on
nothing else of aalbert.
"""

from aalbert.errors import AalbertError, FrontendError, InterpreterError, IRParseError, IRVerifyError, Loc
from aalbert.ir import ops  # noqa: F401  (declares and registers every op)
from aalbert.ir.builder import Builder
from aalbert.ir.graph import Graph, Node, Sym, Value
from aalbert.ir.module import Module, Weight, content_hash
from aalbert.ir.registry import OpDef, Work, all_ops, get_op
from aalbert.ir.types import DType, TensorType

__all__ = [
    "AalbertError", "Builder", "DType", "FrontendError", "Graph", "IRParseError", "IRVerifyError",
    "InterpreterError", "Loc", "Module", "Node", "OpDef", "Sym", "TensorType", "Value", "Weight",
    "Work", "all_ops", "content_hash", "get_op",
]
