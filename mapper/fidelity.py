"""What compression costs in output fidelity.

The reference interpreter runs every task on the uncompressed module and on
the compressed one (decoded codes, pruned weights; optionally activations
rounded to EdgeBERT's 16-bit fixed point) over the same seeded inputs, and
reports the cosine similarity of the outputs, their largest absolute error,
and how often the task head's top-1 class agrees. Outputs that hold NaN or
inf make every figure of their task NaN (or the error inf), printed as such,
and the row says where the first of them arose (`not_finite`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aalbert.ir.graph import Graph
from aalbert.ir.interpreter import not_finite_origin, peak_bytes, run, what_non_finite
from aalbert.ir.module import Module, Weight
from aalbert.limits import check_bytes
from aalbert.mapper.reports.summary import megabytes, table


@dataclass(frozen=True)
class FidelityRow:
    task: str
    samples: int
    cosine: float          # mean over samples of the outputs' cosine similarity
    max_abs_error: float   # over all samples and outputs
    top1: float | None     # agreement of the first output's argmax; None for 1-wide outputs
    not_finite: str | None = None  # where the first NaN or inf of the outputs arose (every figure is then nan)


def sample_inputs(graph: Graph, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Seeded inputs: ids within the table that reads them, masks with some padding, zeros otherwise."""
    rows: dict[str, int] = {}
    for node in graph.nodes:
        if node.op in ("embedding", "gather") and node.inputs[1] in graph.inputs:
            rows.setdefault(node.inputs[1].name, node.inputs[0].type.shape[0])
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        feeds = {}
        for v in graph.inputs:
            shape, dtype = v.type.shape, v.type.dtype.np
            if "mask" in v.name.lower() and len(shape) == 2:
                a = np.ones(shape, dtype=dtype)
                for row in a:
                    row[shape[1] - int(rng.integers(0, max(1, shape[1] // 4))):] = 0
            elif v.name in rows and "type" not in v.name.lower():
                a = rng.integers(0, rows[v.name], size=shape).astype(dtype)
            elif v.type.dtype.is_float:
                a = rng.standard_normal(shape).astype(dtype)
            else:
                a = np.zeros(shape, dtype=dtype)
            feeds[v.name] = a
        samples.append(feeds)
    return samples


def _decoded(module: Module) -> Callable[[Weight], np.ndarray]:
    cache: dict[str, np.ndarray] = {}

    def values(w: Weight) -> np.ndarray:
        if w.name not in cache:
            cache[w.name] = w.values()
        return cache[w.name]
    return values


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def reference_outputs(reference: Module, inputs: dict[str, list[dict[str, np.ndarray]]]):
    """The uncompressed model's outputs on the given inputs, to compare several compressions with."""
    values = _decoded(reference)
    return {task: [run(reference, task, f, values) for f in feeds] for task, feeds in inputs.items()}


@dataclass(frozen=True)
class Feeds:
    """What the models run on: `inputs` per task (else `samples` seeded samples each), and the reference's
    outputs on them when computed once (`expected`: `reference_outputs(reference, inputs)`)."""

    inputs: dict[str, list[dict[str, np.ndarray]]] | None = None
    expected: dict[str, list[dict[str, np.ndarray]]] | None = None
    samples: int = 8
    seed: int = 0


@dataclass(frozen=True)
class _Model:
    """One side of a comparison: what the row calls it, the module, its decoded weights, its activations."""

    label: str
    module: Module
    values: Callable[[Weight], np.ndarray]
    activations: Callable[[np.ndarray], np.ndarray] | None = None


def compare(reference: Module, compressed: Module, feeds: Feeds = Feeds(),
            activations: Callable[[np.ndarray], np.ndarray] | None = None) -> list[FidelityRow]:
    """Run both modules on the same inputs and compare outputs; `activations` rounds the compressed model's."""
    samples, seed, inputs = feeds.samples, feeds.seed, feeds.inputs
    if inputs is None:  # every sample's inputs and the reference's outputs are held together, and one run's values
        per_sample = sum(sum(v.type.nbytes for v in g.inputs) + sum(v.type.nbytes for _, v in g.outputs)
                         for g in reference.graphs.values())
        one_run = max(max(peak_bytes(m, g, activations is not None) for g in m.graphs.values())
                      for m in (reference, compressed))
        check_bytes(samples * per_sample + one_run, f"comparing the outputs of {samples:,} "
                    f"sample{'s' if samples != 1 else ''} per task")
    inputs = inputs or {t: sample_inputs(g, samples, seed) for t, g in reference.graphs.items()}
    values = _decoded(reference)
    expected = feeds.expected or reference_outputs(reference, inputs)
    new_values = _decoded(compressed)
    models = (_Model("the uncompressed model", reference, values),
              _Model("the compressed model", compressed, new_values, activations))
    rows = []
    for task in reference.graphs:
        cosines, worst, agree, total = [], 0.0, 0, 0
        width = None
        task_feeds = inputs[task]
        bad: str | None = None
        for f, want in zip(task_feeds, expected[task]):
            got = run(compressed, task, f, new_values, activations)
            # the reference's outputs: passes after its copy may add some (the early-exit tests' entropies)
            names = [name for name in want if name in got]
            flat_w = np.concatenate([want[name].reshape(-1) for name in names])
            flat_g = np.concatenate([got[name].reshape(-1) for name in names])
            if bad is None and (what_non_finite(flat_w) or what_non_finite(flat_g)):
                bad = _where(models, task, f, (want, got), names)
            if bad is not None:
                with np.errstate(invalid="ignore"):  # inf - inf
                    diff = np.abs(flat_w.astype(np.float64) - flat_g)
                worst = float("nan") if np.isnan(worst) or np.isnan(diff).any() else max(worst, float(np.max(diff)))
                cosines.append(float("nan"))
                continue
            cosines.append(cosine(flat_w, flat_g))
            worst = max(worst, float(np.max(np.abs(flat_w.astype(np.float64) - flat_g))))
            first_w, first_g = want[names[0]], got[names[0]]
            width = first_w.shape[-1] if first_w.ndim else 1
            if width > 1:
                aw = first_w.reshape(-1, width).argmax(axis=1)
                ag = first_g.reshape(-1, width).argmax(axis=1)
                agree += int((aw == ag).sum())
                total += aw.size
        top1 = float("nan") if bad is not None else agree / total if total else None
        rows.append(FidelityRow(task, len(task_feeds), float(np.mean(cosines)), worst, top1, bad))
    return rows


def _where(models: tuple[_Model, _Model], task: str, feeds, outputs: tuple[dict, dict], names) -> str:
    """Which model's output (of `outputs`, one per model) is not finite, and where that arose."""
    for model, outs in zip(models, outputs):
        held = {n: what_non_finite(outs[n]) for n in names}
        if any(held.values()):
            name = next(n for n in names if held[n])
            origin = not_finite_origin(model.module, task, feeds, model.values, model.activations)
            return f"task '{task}': {model.label}'s output '{name}' holds {held[name]}" + (
                f"; {origin.split(': ', 1)[1]}" if origin else "")
    return f"task '{task}': the outputs hold NaN or inf"


def fidelity_lines(rows: list[FidelityRow], bytes_before: int, bytes_after: int, note: str = "") -> list[str]:
    lines = [f"fidelity against the uncompressed model ({rows[0].samples if rows else 0} seeded inputs per task"
             + (f", {note}" if note else "") + ")"]
    body = [[r.task, f"{r.cosine:.6f}", f"{r.max_abs_error:.3g}",
             "-" if r.top1 is None else "nan" if np.isnan(r.top1) else f"{100 * r.top1:.1f} %"] for r in rows]
    lines += table(["task", "cosine", "max abs error", "top-1 agreement"], body, "lrrr")
    ratio = bytes_before / bytes_after if bytes_after else float("inf")
    lines.append(f"weights: {megabytes(bytes_before)} before, {megabytes(bytes_after)} after ({ratio:.2f}x smaller)")
    return lines


def storage_bytes(module: Module) -> int:
    return sum(w.nbytes for w in module.weights.values())
