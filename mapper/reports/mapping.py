"""The per-layer mapping table: how each matrix product of a task runs, and what it costs.

One row per distinct product of the task (ALBERT's twelve applications of its
layer are one row, with how many times it runs): its shape, its mapping
(`aalbert.ir.mapping.Mapping`'s one-line form, or `fixed` for the fixed
column chunks), and the cost model's cycles, dynamic energy and DRAM bytes.
As text for the compile report, and as JSON (`mapping_json`) for
`--report-json`.
"""

from __future__ import annotations

from aalbert.ir.module import Module
from aalbert.mapper.reports.summary import table
from aalbert.passes.allocation.record import Allocation
from aalbert.targets.hardware.spec import Target


def _shape(module: Module, task: str, index: int) -> str:
    node = module.graphs[task].nodes[index]
    out = node.output.type.shape
    k = node.inputs[0].type.shape[-1]
    rows = 1
    for d in (out[:-1] if node.op == "linear" else out[-2:-1]):
        rows *= d
    batch = 1
    for d in (out[:-2] if node.op != "linear" else ()):
        batch *= d
    return (f"{batch}x" if batch > 1 else "") + f"{rows}x{k}x{out[-1]}"


def mapping_rows(module: Module, a: Allocation, task: str, target: Target) -> list[dict]:
    """Distinct products of `task` in program order, with how many times each runs."""
    rows: dict[tuple, dict] = {}
    off_chip = {m.name for m in target.memories if m.off_chip}
    for (t, i), cost in sorted(a.layers.items(), key=lambda kv: kv[0][1]):
        if t != task:
            continue
        node = module.graphs[task].nodes[i]
        text = cost.mapping.text() if cost.mapping is not None else "fixed"
        dram = sum(v for lvl, v in list(cost.reads.items()) + list(cost.writes.items()) if lvl in off_chip)
        key = (node.op, _shape(module, task, i), text)
        if key in rows:
            rows[key]["times"] += 1
            continue
        rows[key] = {"layer": f"{node.op} %{node.outputs[0].name}", "op": node.op, "shape": key[1], "mapping": text,
                     "times": 1, "cycles": cost.cycles, "energy_pj": cost.dynamic_pj, "dram_bytes": dram}
    return list(rows.values())


def mapping_lines(module: Module, a: Allocation | None, task: str, target: Target) -> list[str]:
    if a is None or not a.layers:
        return []
    how = f"searched, objective {a.objective}" if a.mapping == "search" else "fixed column chunks"
    lines = [f"mapping of the products of '{task}' ({how}; product [batch x] rows x reduction x columns; cycles, "
             "energy and DRAM bytes of one application)"]
    rows = [[f"{r['op']} {r['shape']}", str(r["times"]), r["mapping"], f"{r['cycles']:,.0f}",
             f"{r['energy_pj'] / 1e6:.2f} uJ", f"{r['dram_bytes']:,.0f}"]
            for r in mapping_rows(module, a, task, target)]
    lines += table(["product", "times", "mapping", "cycles", "energy", "DRAM bytes"], rows, "lrlrrr")
    return lines


def mapping_json(module: Module, a: Allocation, target: Target) -> dict:
    return {"policy": a.mapping, "objective": a.objective, "rounds": a.rounds,
            "tasks": {task: mapping_rows(module, a, task, target) for task in module.graphs}}
