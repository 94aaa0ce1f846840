"""The compile summary: tasks, ops, weights, parameters, bytes and MACs."""

from __future__ import annotations

from collections import Counter

from ir.module import Module
from ir.registry import Work, get_op


def graph_work(module: Module, task: str) -> Work:
    total = Work()
    for node in module.graphs[task].nodes:
        total += get_op(node.op).work([v.type for v in node.inputs], [v.type for v in node.outputs], node.attrs)
    return total


def si(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} "


def megabytes(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def summary_text(module: Module, title: str) -> str:
    lines = [title, ""]
    params = sum(w.numel for w in module.weights.values())
    nbytes = sum(w.nbytes for w in module.weights.values())
    lines.append(f"weights: {len(module.weights)} tensors, {params:,} parameters, {megabytes(nbytes)} as stored")
    lines.append(f"tasks:   {len(module.graphs)}")
    lines.append("")
    width = max([4] + [len(t) for t in module.graphs])
    lines.append(f"{'task':<{width}}  {'nodes':>6}  {'weights':>7}  {'parameters':>12}  {'MACs/inference':>14}")
    for task, graph in module.graphs.items():
        used = module.used_weights(task)
        work = graph_work(module, task)
        lines.append(f"{task:<{width}}  {len(graph.nodes):>6}  {len(used):>7}  "
                     f"{sum(w.numel for w in used):>12,}  {si(work.macs) + 'MAC':>14}")
    ops = Counter(n.op for g in module.graphs.values() for n in g.nodes)
    lines.append("")
    lines.append("ops over all tasks: " + ", ".join(f"{op} {n}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))))
    return "\n".join(lines) + "\n"
