"""Weights by what they are: labels for messages, and why the allocator put a weight where it is.

An exporter names weights as it likes (`@onnx_MatMul_1346`); a user knows
them by kind, layer and task. `weight_label` says that much: the kind the
`share` pass found from the graph's structure, the layers that read the
weight, and its tasks. Layers are counted by attention: layer k of an encoder
is its k-th softmax, with the products that feed the scores (q, k, v) and
everything after that softmax up to the next layer's q, k, v; what comes
before the first softmax (embeddings) has no layer, nor have the
projection and the head. `labelled` adds the
label to every weight an error message names (`@sym [ffn, layer 2, task
cola]`), and `weights_named` does so for the errors a compile raises.

`--explain WEIGHT` (`explain_lines`) answers "why is this weight here" from
the allocator's own prices (`Allocation.options`, pJ per inference expected
over the workload): where it is, what every other place would cost, the
next-best place and by how much it loses, and the places ruled out.
A weight is found by its symbol (with or without `@`), by words of its
label ("ffn layer 2 cola": a kind, `layer N`, a task), or by a part of its
symbol.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
from collections.abc import Callable, Iterator

from aalbert.errors import AalbertError, OptionError
from aalbert.ir.encoding import KINDS
from aalbert.ir.graph import Graph, Node
from aalbert.ir.module import Module, Weight
from aalbert.ir.registry import OpKind, get_op
from aalbert.mapper.reports.summary import count

SYMBOL = re.compile(r"(?<!graph )@([A-Za-z0-9_.:/\-]+)")
MAX_MATCHES = 12


def _layout(op: str) -> bool:
    return get_op(op).kind is OpKind.LAYOUT


def _readers(v, users: dict) -> list[Node]:
    """The nodes that read `v`, looking through layout ops."""
    found, stack = [], [v]
    while stack:
        for u in users.get(stack.pop(), []):
            if _layout(u.op):
                stack.extend(u.outputs)
            else:
                found.append(u)
    return found


def _graph_layers(graph: Graph) -> dict[str, set[int]]:
    """Weight symbol -> the layers of this graph that read it (0: before the first softmax)."""
    users = graph.users()
    softmaxes: dict[int, int] = {}  # value -> softmaxes on the longest path to it
    for node in graph.nodes:
        c = max((softmaxes.get(id(v), 0) for v in node.inputs), default=0) + (node.op == "softmax")
        for v in node.outputs:
            softmaxes[id(v)] = c
    layers: dict[str, set[int]] = {}
    for node in graph.nodes:
        if node.op != "weight":
            continue
        found = layers.setdefault(node.attrs["name"].name, set())
        for reader in _readers(node.outputs[0], users):
            k = max((softmaxes.get(id(v), 0) for v in reader.inputs), default=0)
            # q, k and v belong to the layer whose scores they feed
            if any(u.op == "matmul" for out in reader.outputs for u in _readers(out, users)):
                k += 1
            found.add(k)
    return layers


def weight_layers(module: Module) -> dict[str, dict[str, set[int]]]:
    """Weight symbol -> {task: layers reading it}."""
    result: dict[str, dict[str, set[int]]] = {}
    for task, graph in module.graphs.items():
        for name, layers in _graph_layers(graph).items():
            result.setdefault(name, {})[task] = layers
    return result


def _span(layers: set[int]) -> str:
    ks = sorted(k for k in layers if k > 0)
    if not ks:
        return ""
    if len(ks) == 1:
        return f"layer {ks[0]}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"layers {ks[0]}-{ks[-1]}"
    return "layers " + ", ".join(map(str, ks))


def _kind(module: Module, w: Weight) -> str | None:
    if w.role is not None:
        return w.role.kind
    try:
        from aalbert.passes.weight_kinds import classify
    except ImportError:  # pragma: no cover
        return None
    for graph in module.graphs.values():
        try:
            kind = classify(graph).get(w.name)
        except Exception:  # noqa: BLE001 (a label is a courtesy: a graph it cannot read gets none)
            return None
        if kind is not None:
            return kind
    return None


def weight_label(module: Module, name: str, layers: dict[str, dict[str, set[int]]] | None = None) -> str:
    """'ffn, layer 2, task cola', 'attention, layers 1-12, shared by 8 tasks'."""
    w = module.weights[name]
    by_task = (layers if layers is not None else weight_layers(module)).get(name, {})
    parts = []
    kind = _kind(module, w)
    if kind is not None:
        parts.append(kind)
    # embeddings, the projection and the head sit outside the layers (the head reads the last one)
    span = "" if kind in ("embedding", "projection", "head") else \
        _span(set().union(*by_task.values()) if by_task else set())
    if span:
        parts.append(span)
    tasks = list(w.role.tasks) if w.role is not None and not w.role.shared else list(by_task)
    if w.role is not None and w.role.shared and len(module.graphs) > 1:
        parts.append(f"shared by {count(len(module.graphs), 'task')}")
    elif len(tasks) == 1:
        parts.append(f"task {tasks[0]}")
    elif tasks:
        parts.append(f"tasks {', '.join(tasks)}")
    return ", ".join(parts)


def labelled(module: Module, text: str) -> str:
    """`text` with every weight it names (`@sym`) followed by its label, once per weight."""
    layers: dict | None = None
    done: set[str] = set()

    def label(m: re.Match) -> str:
        nonlocal layers
        sym = m.group(1)
        while sym and sym not in module.weights and sym[-1] in ".:-/":
            sym = sym[:-1]
        if sym not in module.weights or sym in done:
            return m.group(0)
        done.add(sym)
        if layers is None:
            layers = weight_layers(module)
        text = weight_label(module, sym, layers)
        return f"@{sym} [{text}]{m.group(1)[len(sym):]}" if text else m.group(0)
    return SYMBOL.sub(label, text)


@contextlib.contextmanager
def weights_named(current: Callable[[], Module | None]) -> Iterator[None]:
    """Errors raised inside name the weights of `current()` by kind, layer and task too."""
    try:
        yield
    except AalbertError as e:
        module = current()
        if module is not None and "@" in str(e):
            try:
                text = labelled(module, str(e))
            except Exception:  # noqa: BLE001 (the error as it was beats none)
                raise e from None
            e.args = (text,)
        raise


# --- finding weights ---------------------------------------------------------------------------------------
def find_weights(module: Module, query: str) -> list[str]:
    """The weights `query` names: a symbol, words of a label, or a part of a symbol."""
    q = query.strip()
    sym = q[1:] if q.startswith("@") else q
    if sym in module.weights:
        return [sym]
    layers = weight_layers(module)
    words = q.replace(",", " ").split()
    kinds = [x for x in words if x in KINDS]
    tasks = [x for x in words if x in module.graphs]
    wanted_layers, rest, i = [], [], 0
    while i < len(words):
        x = words[i]
        if x in ("layer", "layers") and i + 1 < len(words) and words[i + 1].isdigit():
            wanted_layers.append(int(words[i + 1]))
            i += 2
            continue
        if x not in kinds and x not in tasks and x not in ("shared", "task", "of", "in", "the", "weight"):
            rest.append(x)
        i += 1
    if (kinds or tasks or wanted_layers) and not rest:
        found = []
        for name, w in module.weights.items():
            by_task = layers.get(name, {})
            if kinds and _kind(module, w) not in kinds:
                continue
            if tasks and not any(t in by_task for t in tasks):
                continue
            if "shared" in words and not (w.role is not None and w.role.shared):
                continue
            if wanted_layers and not all(any(k in ls for ls in by_task.values()) for k in wanted_layers):
                continue
            found.append(name)
        return found
    return [name for name in module.weights if sym.lower() in name.lower()]


def resolve_queries(module: Module, queries: list[str]) -> list[str]:
    """Every weight the queries name, in pool order; a query that names none, or too many, is an error."""
    chosen: list[str] = []
    for q in queries:
        found = find_weights(module, q)
        if not found:
            near = difflib.get_close_matches(q.lstrip("@"), list(module.weights), n=1, cutoff=0.5)
            hint = f"; did you mean @{near[0]}?" if near else " (name it by symbol, as --dump-ir prints, or by " \
                "kind, layer and task, e.g. 'ffn layer 2 cola')"
            raise OptionError(f"--explain {q}: no weight of the module is named so{hint}")
        if len(found) > MAX_MATCHES:
            raise OptionError(f"--explain {q}: {len(found)} weights match (@{found[0]}, @{found[1]}, ...); "
                              f"name at most {MAX_MATCHES}")
        chosen += [n for n in found if n not in chosen]
    order = {n: i for i, n in enumerate(module.weights)}
    return sorted(chosen, key=order.__getitem__)


# --- why a weight is where it is ----------------------------------------------------------------------------
def _energy(pj: float) -> str:
    for unit, scale in (("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3f} {unit}"
    return f"{pj:.1f} pJ"


def _place(o) -> str:
    if o.kind == "staged":
        return f"staged in {o.level} from {o.home}"
    if o.kind == "streamed":
        return f"streamed from {o.level}"
    return f"resident in {o.level}"


def explain_lines(module: Module, allocation, queries: list[str]) -> list[str]:
    """For each weight the queries name: kind, layers, tasks, place, and what every other place would cost."""
    names = resolve_queries(module, queries)
    layers = weight_layers(module)
    lines = [f"why {'this weight is' if len(names) == 1 else 'these weights are'} where "
             f"{'it is' if len(names) == 1 else 'they are'} on {allocation.target} (the allocator's price of each "
             "place: the energy per inference of the layers that read the weight when it lives there, their "
             "leakage included, expected over the workload)"]
    for name in names:
        w = module.weights[name]
        p = w.placement
        reads = f", {count(w.role.uses, 'read')} per inference" if w.role is not None else ""
        lines += ["", f"@{name}: {weight_label(module, name, layers)}{reads}; {w.nbytes:,} bytes as "
                      f"{w.encoding.label if w.encoding is not None else 'f32'}"]
        where = f"{p.residency} in {p.level} at byte {p.offset:,}" + (
            f" (kept in {p.home} at byte {p.home_offset:,})" if p.residency == "staged" else "")
        lines.append(f"  placed: {where}")
        options = sorted(allocation.options.get(name, ()), key=lambda o: o.cost)
        chosen = allocation.solution.choice.get(name)
        if chosen is None or not options:
            lines.append("  no prices: the allocator did not choose its place")
            continue
        for o in options:
            mark = "  (chosen)" if o == chosen else f"  ({'+' if o.cost >= chosen.cost else '-'}" \
                f"{_energy(abs(o.cost - chosen.cost))})"
            lines.append(f"  {_place(o):<28} {_energy(o.cost):>12}{mark}")
        others = [o for o in options if o != chosen and o.level != chosen.level]
        if others:
            best = others[0]
            if best.cost >= chosen.cost:
                times = best.cost / chosen.cost if chosen.cost > 0 else math.inf
                rel = "" if not math.isfinite(times) else f" ({100 * (times - 1):.0f} % more)" if times < 2 else \
                    f" ({times:.1f}x as much)"
                lines.append(f"  next best: {_place(best)}, {_energy(best.cost - chosen.cost)} more per "
                             f"inference{rel}")
            else:
                full = [b for b in allocation.binding if b.startswith(f"capacity of {best.level}:")]
                why = full[0] if full else "the capacity the other weights take there"
                lines.append(f"  cheaper for this weight alone: {_place(best)}, {_energy(chosen.cost - best.cost)} "
                             f"less, but not chosen: {why}")
        else:
            lines.append("  no other level may hold it")
        ruled = sorted({x[len(name) + 2:] for x in allocation.excluded if x.startswith(f"@{name} ")})
        for reason in ruled:
            lines.append(f"  ruled out: {reason}")
    return lines
