"""The reference interpreter: runs one task graph of a module on numpy.

Each op's meaning is its `eval` in the registry; the interpreter binds
weights and inputs, runs nodes in program order, frees values after their
last use, and checks every result against its declared type. Before it
runs anything, the memory the run will hold at its peak (`peak_bytes`, from
the values live at each node over the whole schedule) is checked against the
memory budget.

`not_finite_origin` runs a task again when its outputs hold NaN or inf and
says where the first of them arose: the node whose operands are finite but
whose result is not, or the weight or input that brought them in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from aalbert.errors import InterpreterError
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module, Weight
from aalbert.ir.registry import OpKind, get_op
from aalbert.ir.switch import active_data
from aalbert.ir.types import DType, TensorType
from aalbert.limits import check_bytes

WeightData = Callable[[Weight], np.ndarray]


def _weight_data(w: Weight) -> np.ndarray:
    if w.data is None:
        raise InterpreterError(f"weight @{w.name} has no data: load the module with its .npz sidecar")
    return w.values()


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Match inputs to the graph's by name, type and shape (integers may widen)."""
    names = [v.name for v in graph.inputs]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InterpreterError(f"task {graph.name!r}: missing input{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)} (the graph takes {', '.join(names)})")
    extra = sorted(set(inputs) - set(names))
    if extra:
        raise InterpreterError(f"task {graph.name!r}: unknown input{'s' if len(extra) > 1 else ''} "
                               f"{', '.join(extra)} (the graph takes {', '.join(names)})")
    bound = {}
    for v in graph.inputs:
        a = np.asarray(inputs[v.name])
        try:
            got = TensorType.of(a)
        except ValueError:
            raise InterpreterError(f"input {v.name!r}: unsupported element type {a.dtype}") from None
        if got.shape != v.type.shape:
            raise InterpreterError(f"input {v.name!r} has shape {list(got.shape)}, "
                                   f"the graph expects {list(v.type.shape)}")
        if got.dtype != v.type.dtype:
            if got.dtype.is_int and v.type.dtype.is_int and np.can_cast(a, v.type.dtype.np, "same_kind"):
                a = a.astype(v.type.dtype.np)
            else:
                raise InterpreterError(f"input {v.name!r} is {got.dtype}, the graph expects {v.type.dtype}")
        bound[v.name] = a
    return bound


def fixed_point(frac_bits: int = 10, bits: int = 16) -> Callable[[np.ndarray], np.ndarray]:
    """Round floats to signed fixed point (EdgeBERT's activations: 16 bits, 10 fractional)."""
    scale = float(2 ** frac_bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def quantize(x: np.ndarray) -> np.ndarray:
        return (np.clip(np.rint(x * scale), lo, hi) / scale).astype(x.dtype)
    return quantize


def run(module: Module, task: str, inputs: Mapping[str, np.ndarray],
        weight_data: WeightData = _weight_data,
        activations: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Execute `task` and return its outputs by name.

    `weight_data` supplies each weight's values (default: decoded from its
    codes); `activations`, if given, is applied to every floating-point
    result of a computing node (e.g. `fixed_point()`).
    """
    return _run(module, task, inputs, weight_data, activations)


def _run(module: Module, task: str, inputs: Mapping[str, np.ndarray], weight_data: WeightData,
         activations: Callable[[np.ndarray], np.ndarray] | None, not_finite: dict[Value, str] | None = None):
    """`run`; with `not_finite`, every value whose result holds NaN or inf is noted in it (with what it holds)."""
    if task not in module.graphs:
        raise InterpreterError(f"no task {task!r} (tasks: {', '.join(module.graphs)})")
    graph = module.graphs[task]
    bound = check_inputs(graph, inputs)
    if not_finite is not None:
        not_finite.update((v, what_non_finite(bound[v.name])) for v in graph.inputs if _holds_non_finite(bound[v.name]))
    env: dict[Value, np.ndarray] = {v: bound[v.name] for v in graph.inputs}
    last_use = _last_uses(graph)
    keep = {v for _, v in graph.outputs}
    check_bytes(peak_bytes(module, graph, activations is not None), f"running task {task!r} (its values at the "
                "busiest point of its schedule)")
    with np.errstate(all="ignore"):
        for i, node in enumerate(graph.nodes):
            if node.op == "weight":
                results = [active_data(module, task, module.weights[node.attrs["name"].name], weight_data)]
            else:
                try:
                    results = get_op(node.op).eval([env[v] for v in node.inputs], node.attrs)
                except (IndexError, ValueError) as e:
                    raise InterpreterError(f"task {task!r}, node '{node!r}' ({node.op}): {e}") from None
            if activations is not None and get_op(node.op).kind is not OpKind.SOURCE:
                results = [activations(r) if r.dtype.kind == "f" else r for r in results]
            for value, result in zip(node.outputs, results):
                _check_result(node, value, result)
                env[value] = result
                if not_finite is not None and _holds_non_finite(result):
                    not_finite[value] = what_non_finite(result)
            for v in node.inputs:
                if last_use.get(v) == i and v not in keep:
                    env.pop(v, None)
    return {name: env[v] for name, v in graph.outputs}


def _holds_non_finite(a: np.ndarray) -> bool:
    return a.dtype.kind in "fc" and not bool(np.isfinite(a).all())


def what_non_finite(a: np.ndarray) -> str:
    """'NaN', 'inf' or 'NaN and inf': what an array holds that is not a finite number ('' if nothing)."""
    if a.dtype.kind not in "fc":
        return ""
    nan, inf = bool(np.isnan(a).any()), bool(np.isinf(a).any())
    return "NaN and inf" if nan and inf else "NaN" if nan else "inf" if inf else ""


def not_finite_origin(module: Module, task: str, inputs: Mapping[str, np.ndarray],
                      weight_data: WeightData = _weight_data,
                      activations: Callable[[np.ndarray], np.ndarray] | None = None) -> str | None:
    """Where the first output of `task` that holds NaN or inf got it, followed back through the graph to the
    node whose operands are all finite (or the weight or input it came from); None if every output is
    finite. Runs the task again, noting which results are not finite."""
    bad: dict[Value, str] = {}
    _run(module, task, inputs, weight_data, activations, bad)
    graph = module.graphs[task]
    out = next(((name, v) for name, v in graph.outputs if v in bad), None)
    if out is None:
        return None
    name, v = out
    while True:
        node = v.producer
        if node is None:
            return f"output '{name}' of task '{task}': it comes from input '{v.name}', which holds {bad[v]}"
        if node.op == "weight":
            return f"output '{name}' of task '{task}': it comes from weight @{node.attrs['name'].name}, which " \
                   f"holds {bad[v]}"
        upstream = next((u for u in node.inputs if u in bad), None)
        if upstream is None:
            return f"output '{name}' of task '{task}': it arises at node '{node!r}' ({node.op}), whose result " \
                   f"holds {bad[v]} while its operands are finite"
        v = upstream


# numpy's temporaries while one op runs, in arrays as large as its largest result (a linear's product before
# its bias is added, softmax's and layernorm's intermediates; the activation rounding adds two more)
SCRATCH_RESULTS = 2


def peak_bytes(module: Module, graph: Graph, rounded: bool = False) -> int:
    """The most memory a run of `graph` holds at once beyond its inputs and the weights' stored codes: each
    value from the node that makes it to its last use (outputs to the end), and while a node runs, its results
    and numpy's scratch arrays. `rounded`: activations are rounded after every op (`fixed_point`)."""
    last_use = _last_uses(graph)
    keep = {v for _, v in graph.outputs}
    size: dict[Value, int] = {}
    live = peak = 0
    for i, node in enumerate(graph.nodes):
        if node.op == "weight":
            w = module.weights.get(node.attrs["name"].name)
            made = {node.outputs[0]: 0 if w is None or w.encoding.format == "plain" else w.type.nbytes}
            scratch = 0
        else:
            made = {v: v.type.nbytes for v in node.outputs}
            scratch = max(made.values(), default=0) * (SCRATCH_RESULTS + 2 * rounded)
        produced = sum(made.values())
        peak = max(peak, live + produced + scratch)
        live += produced
        size.update(made)
        for v in set(node.inputs):
            if last_use.get(v) == i and v not in keep:
                live -= size.pop(v, 0)
    return peak


def _check_result(node, value: Value, result: np.ndarray) -> None:
    if not isinstance(result, np.ndarray) or result.shape != value.type.shape \
            or DType.from_numpy(result.dtype) != value.type.dtype:
        got = TensorType.of(np.asarray(result))
        raise AssertionError(f"{node.op} produced {got} for %{value.name}: {value.type}")


def _last_uses(graph: Graph) -> dict[Value, int]:
    last: dict[Value, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[v] = i
    return last
