"""The search: the best mapping of a product under an objective, exact over the (pruned) space, cached.

Objectives (`--objective`):

- `energy`: the least energy of the product, dynamic plus the chip's leakage
  over its cycles (the chip leaks while it runs);
- `latency`: the fewest cycles;
- `edp`: the least energy x cycles;
- `balanced` (the default): the least energy among the mappings within
  `LATENCY_TOLERANCE` (2 %) of the fewest cycles, so saving energy never costs
  more than that in latency.

The search is exact: branch and bound over the pruned space (`_bounded`),
which evaluates candidates exactly in batches, in order of a cheap lower
bound, until no candidate left can win. When no candidate of whole array
tiles fits, it searches the space of narrower blocks (`space(fine=True)`).
Ties go to the first candidate in the space's order, so results are
deterministic. Results are cached per product signature (shape, bytes,
homes, density, format), architecture (every number a cost depends on,
`Arch.identity`, and the bytes free where its operands pass) and objective:
ALBERT's twelve reads of one layer, many tasks with equal layers, and every
configuration of a study on one chip cost one search; so does the cost of a
chosen mapping that the lowering asks for (`cost_of`).
`exhaustive` searches the whole space without pruning (the tests' oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.mapping import Mapping
from aalbert.targets.mapping.cost import Costs, evaluate
from aalbert.targets.mapping.problem import Arch, Gemm
from aalbert.targets.mapping.space import columns_of, mapping_at, space

OBJECTIVES = ("balanced", "energy", "latency", "edp")
LATENCY_TOLERANCE = 0.02


class MappingError(AalbertError):
    """No mapping fits: the message says which level is short and what would fix it."""


@dataclass(frozen=True)
class GemmCost:
    """The model's figures for one mapped product."""

    mapping: Mapping
    energy: dict[str, float]           # component -> pJ (dynamic)
    reads: dict[str, float]            # storage -> bytes
    writes: dict[str, float]
    cycles: float
    staged_bytes: float
    stage_level: str | None
    acc_accesses: float = 0.0
    reg_fills: float = 0.0
    noc_bytes: float = 0.0

    @property
    def dynamic_pj(self) -> float:
        return sum(self.energy.values())


def _one(costs: Costs, i: int, mapping: Mapping) -> GemmCost:
    return GemmCost(mapping, {k: float(np.broadcast_to(v, costs.feasible.shape)[i]) for k, v in costs.energy.items()},
                    {k: float(np.broadcast_to(v, costs.feasible.shape)[i]) for k, v in costs.reads.items()},
                    {k: float(np.broadcast_to(v, costs.feasible.shape)[i]) for k, v in costs.writes.items()},
                    float(costs.cycles[i]), float(costs.staged_bytes[i]), costs.stage_level,
                    float(np.broadcast_to(costs.acc_accesses, costs.feasible.shape)[i]),
                    float(np.broadcast_to(costs.reg_fills, costs.feasible.shape)[i]),
                    float(np.broadcast_to(costs.noc_bytes, costs.feasible.shape)[i]))


_COSTS: dict[tuple, GemmCost] = {}


def cost_of(g: Gemm, arch: Arch, mapping: Mapping) -> GemmCost:
    """The model's figures for `mapping` (whether or not it fits), computed once per product signature,
    architecture and mapping: the lowering asks for every application of a layer (ALBERT's twelve, every
    task's), which the free bytes do not change."""
    key = (g.key, arch.identity, mapping)
    cost = _COSTS.get(key)
    if cost is None:
        cost = _COSTS[key] = _one(evaluate(g, arch, columns_of(g, [mapping])), 0, mapping)
    return cost


def fits(g: Gemm, arch: Arch, mapping: Mapping) -> bool:
    return bool(evaluate(g, arch, columns_of(g, [mapping])).feasible[0])


def _pick(costs: Costs, objective: str, leak_pj_per_cycle: float) -> int:
    ok = costs.feasible
    if not ok.any():
        return -1
    energy = costs.total_pj + leak_pj_per_cycle * costs.cycles
    cycles = costs.cycles
    inf = np.inf
    if objective == "latency":
        key, tie = np.where(ok, cycles, inf), energy
    elif objective == "energy":
        key, tie = np.where(ok, energy, inf), cycles
    elif objective == "edp":
        key, tie = np.where(ok, energy * cycles, inf), cycles
    else:
        best = cycles[ok].min()
        within = ok & (cycles <= best * (1 + LATENCY_TOLERANCE))
        key, tie = np.where(within, energy, inf), cycles
    low = key.min()
    close = np.flatnonzero(key <= low * (1 + 1e-12) + 1e-9)
    return int(close[np.argmin(tie[close])])


BATCH = 1024


def _keys(costs: Costs, objective: str, leak: float) -> np.ndarray:
    energy = costs.total_pj + leak * costs.cycles
    return {"latency": costs.cycles, "edp": energy * costs.cycles}.get(objective, energy)


def _bounded(g: Gemm, arch: Arch, c: dict, objective: str, leak: float) -> tuple[dict, Costs] | None:
    """Branch and bound: the exact costs of every candidate that could be the best, and only those.

    The model's energy is exact and cheap; its cycles have a cheap lower bound. Candidates are evaluated
    exactly in order of their objective's bound until the best exact objective is below every bound left; for
    `balanced`, first the fewest cycles, then the least energy among the candidates that may be within the
    tolerance. What is left out provably cannot win, so the result is that of evaluating everything. A space
    of one batch or less is evaluated exactly at once (bounding it would cost more than it saves)."""
    if len(c["df"]) <= BATCH:
        costs = evaluate(g, arch, c)
        return (c, costs) if costs.feasible.any() else None
    cheap = evaluate(g, arch, c, exact=False)
    ok = np.flatnonzero(cheap.feasible)
    if not len(ok):
        return None
    margin = 0.99  # the bound's slack against the step model's averaging

    done: list[tuple[np.ndarray, Costs]] = []  # (rows of a batch, their exact costs)

    def run(lb: np.ndarray, idx: np.ndarray, key_of, accept=None) -> float:
        """The best exact key among `idx`, evaluating batches in order of their bound until none can win."""
        order = idx[np.argsort(lb[idx], kind="stable")]
        best, i = np.inf, 0
        while i < len(order):
            batch = np.sort(order[i:i + BATCH])
            costs = evaluate(g, arch, {f: v[batch] for f, v in c.items()})
            done.append((batch, costs))
            keys = key_of(costs)
            good = np.ones(len(batch), dtype=bool) if accept is None else accept(costs)
            if good.any():
                best = min(best, keys[good].min())
            i += BATCH
            if i < len(order) and lb[order[i]] * margin > best * (1 + 1e-9) + 1e-9:
                break
        return best

    cycles_lb = cheap.cycles
    energy_lb = cheap.total_pj + leak * cycles_lb
    lb = {"latency": cycles_lb, "edp": energy_lb * cycles_lb}.get(objective, energy_lb)
    if objective == "balanced":
        window = run(cycles_lb, ok, lambda cs: cs.cycles) * (1 + LATENCY_TOLERANCE)
        inside = ok[cycles_lb[ok] * margin <= window * (1 + 1e-12)]
        run(energy_lb, inside, lambda cs: cs.total_pj + leak * cs.cycles, lambda cs: cs.cycles <= window * (1 + 1e-12))
    else:
        run(lb, ok, lambda cs: _keys(cs, objective, leak))
    idx, where = np.unique(np.concatenate([b for b, _ in done]), return_index=True)
    sub = {f: v[idx] for f, v in c.items()}
    return sub, _rows(_joined([cs for _, cs in done]), where)


def _joined(parts: list[Costs]) -> Costs:
    """Costs of several batches as one (scalars spread over their batch)."""
    sizes = [len(p.cycles) for p in parts]

    def cat(values) -> np.ndarray:
        return np.concatenate([np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v, n in zip(values, sizes)])

    def cat_dict(dicts) -> dict:
        keys = sorted({k for d in dicts for k in d})
        return {k: cat([d.get(k, 0.0) for d in dicts]) for k in keys}

    first = parts[0]
    return Costs(np.concatenate([p.feasible for p in parts]), cat_dict([p.energy for p in parts]),
                 cat_dict([p.reads for p in parts]), cat_dict([p.writes for p in parts]),
                 cat([p.acc_accesses for p in parts]), cat([p.reg_fills for p in parts]),
                 cat([p.noc_bytes for p in parts]), cat([p.cycles for p in parts]),
                 cat([p.staged_bytes for p in parts]), first.stage_level)


def _rows(costs: Costs, idx: np.ndarray) -> Costs:
    pick = {k: v[idx] for k, v in costs.energy.items()}
    return Costs(costs.feasible[idx], pick, {k: v[idx] for k, v in costs.reads.items()},
                 {k: v[idx] for k, v in costs.writes.items()}, costs.acc_accesses[idx], costs.reg_fills[idx],
                 costs.noc_bytes[idx], costs.cycles[idx], costs.staged_bytes[idx], costs.stage_level)


_CACHE: dict[tuple, GemmCost | None] = {}


def search(g: Gemm, arch: Arch, objective: str = "balanced", leak_pj_per_cycle: float = 0.0) -> GemmCost | None:
    """The best mapping of `g` on `arch`, or None when none fits (cached)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    key = (g.key, arch.key_for(g), objective, leak_pj_per_cycle)
    if key not in _CACHE:
        found = _bounded(g, arch, space(g, arch, prune=True), objective, leak_pj_per_cycle)
        if found is None:  # no whole array tile fits: narrower blocks
            found = _bounded(g, arch, space(g, arch, prune=True, fine=True), objective, leak_pj_per_cycle)
        if found is None:
            _CACHE[key] = None
        else:
            c, costs = found
            i = _pick(costs, objective, leak_pj_per_cycle)
            _CACHE[key] = None if i < 0 else _one(costs, i, mapping_at(c, i))
    return _CACHE[key]


def exhaustive(g: Gemm, arch: Arch, objective: str = "balanced", leak_pj_per_cycle: float = 0.0) -> GemmCost | None:
    """The same search over the whole space, nothing pruned (for tests)."""
    c = space(g, arch, prune=False)
    costs = evaluate(g, arch, c)
    if not costs.feasible.any():
        c = space(g, arch, prune=False, fine=True)
        costs = evaluate(g, arch, c)
    i = _pick(costs, objective, leak_pj_per_cycle)
    return None if i < 0 else _one(costs, i, mapping_at(c, i))


def objective_value(cost: GemmCost, objective: str, leak_pj_per_cycle: float = 0.0) -> float:
    energy = cost.dynamic_pj + leak_pj_per_cycle * cost.cycles
    return {"latency": cost.cycles, "edp": energy * cost.cycles}.get(objective, energy)


def clear_cache() -> None:
    _CACHE.clear()
    _COSTS.clear()
