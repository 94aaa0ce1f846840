"""The compile summary: tasks, ops, weights, parameters, bytes, MACs and, once
`share` has run, what is shared and what each task owns."""

from __future__ import annotations

import math
from collections import Counter

from aalbert.ir.builder import node_kind
from aalbert.ir.encoding import KINDS
from aalbert.ir.module import Module
from aalbert.ir.phases import task_of
from aalbert.ir.registry import OpKind, Work, get_op


def graph_work(module: Module, task: str) -> Work:
    """The task's work, each kind of node (op, types, attributes) reckoned once and multiplied out."""
    kinds: dict[tuple, list] = {}
    total = Work()
    for node in module.graphs[task].nodes:
        opdef = get_op(node.op)
        if opdef.kind is OpKind.SOURCE:  # weights and constants: a constant's attribute is its data, not a key
            total += opdef.work([], [v.type for v in node.outputs], node.attrs)
            continue
        key = node_kind(node)
        found = kinds.get(key)
        if found is None:
            kinds[key] = [node, 1]
        else:
            found[1] += 1
    for node, times in kinds.values():
        total += get_op(node.op).work([v.type for v in node.inputs], [v.type for v in node.outputs], node.attrs) * times
    return total


def si(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} "


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 task', '8 tasks'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Plain text columns; align has one 'l' or 'r' per column."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return "  ".join(f"{c:<{w}}" if a == "l" else f"{c:>{w}}" for c, w, a in zip(cells, widths, align)).rstrip()
    return [line(header)] + [line(r) for r in rows]


def shapes_compiled(module: Module) -> str:
    """'batch 1, sequence 128': the sizes the graphs' inputs were compiled at, by the frontends' convention
    (dimension 0 is the batch, dimension 1 the sequence); several sizes are listed ('sequence 64 and 128')."""
    batch = sorted({v.type.shape[0] for g in module.graphs.values() for v in g.inputs if v.type.rank >= 1})
    seq = sorted({v.type.shape[1] for g in module.graphs.values() for v in g.inputs if v.type.rank >= 2})
    parts = [f"{name} {' and '.join(map(str, sizes))}" for name, sizes in (("batch", batch), ("sequence", seq))
             if sizes]
    return ", ".join(parts) or "no tensor inputs"


def summary_text(module: Module, title: str) -> str:
    lines = [title, ""]
    params = sum(w.numel for w in module.weights.values())
    nbytes = sum(w.nbytes for w in module.weights.values())
    lines.append(f"weights: {len(module.weights)} tensors, {params:,} parameters, {megabytes(nbytes)} as stored")
    lines.append(f"tasks:   {len(module.graphs)}")
    lines.append("")
    rows = []
    for task, graph in module.graphs.items():
        used = module.used_weights(task)
        work = graph_work(module, task)
        rows.append([task, str(len(graph.nodes)), str(len(used)), f"{sum(w.numel for w in used):,}",
                     si(work.macs) + "MAC"])
    lines += table(["task", "nodes", "weights", "parameters", "MACs/inference"], rows, "lrrrr")
    if all(w.role is not None for w in module.weights.values()) and module.weights:
        lines.append("")
        lines += sharing_lines(module)
    ops = Counter(n.op for g in module.graphs.values() for n in g.nodes)
    lines.append("")
    lines.append("ops over all tasks: " + ", ".join(
        f"{op} {n}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
    return "\n".join(lines) + "\n"


def sharing_lines(module: Module) -> list[str]:
    """Shared vs task-specific parameters and bytes, per task, in total and per kind."""
    weights = list(module.weights.values())
    shared = [w for w in weights if w.role.shared]
    own = [w for w in weights if not w.role.shared]
    n = len(module.graphs)
    label = ("shared by the one task:" if n == 1 else f"shared by all {n} tasks:", "task-specific:")
    width = max(len(s) for s in label) + 1
    lines = [f"{label[0]:<{width}}{sum(w.numel for w in shared):,} parameters, "
             f"{megabytes(sum(w.nbytes for w in shared))} (stored once)",
             f"{label[1]:<{width}}{sum(w.numel for w in own):,} parameters, "
             f"{megabytes(sum(w.nbytes for w in own))}", ""]
    rows = []
    for task in module.graphs:
        mine = [w for w in own if task_of(task) in w.role.tasks]  # a decoder's phases are its task's
        rows.append([task, f"{sum(w.numel for w in shared):,}", f"{sum(w.numel for w in mine):,}",
                     megabytes(sum(w.nbytes for w in shared)), megabytes(sum(w.nbytes for w in mine))])
    lines += table(["task", "shared params", "own params", "shared bytes", "own bytes"], rows, "lrrrr")
    lines.append("")
    rows = []
    for kind in KINDS:
        s = sum(w.numel for w in shared if w.role.kind == kind)
        t = sum(w.numel for w in own if w.role.kind == kind)
        if s or t:
            reads = max((w.role.uses for w in weights if w.role.kind == kind), default=0)
            rows.append([kind, f"{s:,}", f"{t:,}", str(reads)])
    lines += table(["kind", "shared params", "task-specific params", "reads/inference"], rows, "lrrr")
    return lines


def num(x: float) -> str:
    """Three significant digits without exponents: 93.7, 13.39 -> 13.4, 0.00123."""
    if x == 0 or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{max(2 - int(math.floor(math.log10(abs(x)))), 0)}f}"
