"""The IR verifier: checks the invariants every pass must preserve.

- every op is registered, with an allowed number of operands and exactly
  its declared attributes, each of the declared kind;
- SSA: every operand is defined earlier in the same graph, every name once;
- every result type equals the op's inferred type;
- every `weight` node names a weight of the pool, with the pool's type;
- every fact a pass recorded (role, encoding, placement, arena) fits its
  schema (`ir.facts`);
- weight data, when present, has the type its encoding stores;
- an active copy's merge sources exist and make it (`ir.switch`);
- each task's graphs follow the phase convention (`ir.phases`), and a state
  buffer is written with the type it is read with (`ir.state`).

Errors name the graph and node (and the text position for parsed IR).
"""

from __future__ import annotations

from aalbert.errors import IRVerifyError
from aalbert.ir import switch
from aalbert.ir.facts import FactError, check_record
from aalbert.ir.graph import Graph, Node
from aalbert.ir.module import Module
from aalbert.ir.phases import PhaseError, check_phases, tasks
from aalbert.ir.registry import InferContext, InferError, get_op, infer_types
from aalbert.ir.state import StateError, state_pairs
from aalbert.ir.types import TensorType


def _fail(graph: Graph, node: Node | None, message: str) -> IRVerifyError:
    if node is None:
        return IRVerifyError(f"graph @{graph.name}: {message}")
    where = f"graph @{graph.name}, node '{node!r}'"
    return IRVerifyError(f"{where}: {message}", node.loc)


def verify(module: Module) -> None:
    try:
        check_phases(module.graphs)
    except PhaseError as e:
        raise IRVerifyError(e.message) from None
    task_names = set(tasks(module.graphs))
    for w in module.weights.values():
        for record in (w.role, w.encoding, w.placement):
            if record is not None:
                try:
                    check_record(record)
                except FactError as e:
                    raise IRVerifyError(f"weight @{w.name}: {e}") from None
        if w.data is not None and TensorType.of(w.data) != w.code_type:
            raise IRVerifyError(f"weight @{w.name}: data is {TensorType.of(w.data)}, its encoding "
                                f"{w.encoding.label} stores {w.code_type}")
        if w.role is not None and not set(w.role.tasks) <= task_names:
            raise IRVerifyError(f"weight @{w.name}: role names tasks that are not in the module")
        wrong = switch.check(module, w)
        if wrong is not None:
            raise IRVerifyError(f"weight @{w.name}: {wrong}")
    for graph in module.graphs.values():
        if graph.arena is not None:
            try:
                check_record(graph.arena)
            except FactError as e:
                raise IRVerifyError(f"graph @{graph.name}: arena: {e}") from None
        verify_graph(graph, module)


def verify_graph(graph: Graph, module: Module) -> None:
    def weight_type(sym: str) -> TensorType:
        if sym not in module.weights:
            raise InferError(f"unknown weight @{sym}")
        return module.weights[sym].type

    ctx = InferContext(weight_type)
    defined: set[int] = set()
    names: set[str] = set()
    for v in graph.inputs:
        if v.name in names:
            raise _fail(graph, None, f"input %{v.name} defined twice")
        names.add(v.name)
        defined.add(id(v))
    for node in graph.nodes:
        try:
            opdef = get_op(node.op)
        except KeyError:
            raise _fail(graph, node, f"unknown op '{node.op}'") from None
        _check_signature(graph, node, opdef, defined)
        try:
            inferred = infer_types(opdef, [v.type for v in node.inputs], node.attrs, ctx)
        except InferError as e:
            raise _fail(graph, node, str(e)) from None
        declared = [v.type for v in node.outputs]
        if len(inferred) != len(declared):
            raise _fail(graph, node, f"{node.op} has {len(inferred)} results, {len(declared)} declared")
        for out, want in zip(node.outputs, inferred):
            if out.type != want:
                raise _fail(graph, node, f"result %{out.name} is declared {out.type} but {node.op} gives {want}")
            if out.name in names:
                raise _fail(graph, node, f"%{out.name} defined twice")
            names.add(out.name)
            defined.add(id(out))
    for name, v in graph.outputs:
        if id(v) not in defined:
            raise _fail(graph, None, f"output {name!r} reads %{v.name}, which is not defined")
    try:
        state_pairs(graph)
    except StateError as e:
        raise IRVerifyError(e.message) from None
    _check_uses(graph)


def _check_signature(graph: Graph, node: Node, opdef, defined: set[int]) -> None:
    """The node's operands (as many as the op takes, each defined before it) and attributes (exactly the op's,
    each of its kind)."""
    lo, hi = opdef.operands
    n = len(node.inputs)
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi if hi is not None else 'any'}"
        raise _fail(graph, node, f"{node.op} takes {want} operands, got {n}")
    for v in node.inputs:
        if id(v) not in defined:
            raise _fail(graph, node, f"operand %{v.name} is not defined before this node")
    if node.attrs.keys() != opdef.attrs.keys():  # compared without building sets: the common case
        extra = set(node.attrs) - set(opdef.attrs)
        if extra:
            raise _fail(graph, node, f"unknown attribute '{sorted(extra)[0]}' for {node.op}")
    for key, kind in opdef.attrs.items():
        if key not in node.attrs:
            raise _fail(graph, node, f"missing attribute '{key}' ({kind.value})")
        if not kind.accepts(node.attrs[key]):
            raise _fail(graph, node, f"attribute '{key}' must be {kind.value}")


def _check_uses(graph: Graph) -> None:
    """The graph's use lists say what its nodes read: every node is in the graph, a value's list holds as many
    reads as its readers make and only nodes that read it (a pass that changed the node list behind the
    graph's back breaks this)."""
    reads: dict[int, int] = {}
    for node in graph.nodes:
        if node.graph is not graph:
            raise _fail(graph, node, "node is in the node list but not in the graph (use append or insert)")
        for v in node.inputs:
            reads[id(v)] = reads.get(id(v), 0) + 1
    for v, readers in graph._uses.items():
        if len(readers) != reads.pop(id(v), 0) or any(v not in n.inputs for n in readers):
            raise _fail(graph, None, f"the use list of %{v.name} does not match the nodes that read it")
    if reads:
        raise _fail(graph, None, "a node's read is missing from the graph's use lists")
