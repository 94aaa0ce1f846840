"""The search: the best mapping of a product under an objective, exact over the (pruned) space, cached.

Objectives (`--objective`):

- `energy`: the least energy of the product, dynamic plus the chip's leakage
  over its cycles (the chip leaks while it runs);
- `latency`: the fewest cycles;
- `edp`: the least energy x cycles;
- `balanced` (the default): the least energy among the mappings within
  `LATENCY_TOLERANCE` (2 %) of the fewest cycles, so saving energy never costs
  more than that in latency.

Ties go to the first candidate in the space's order, so results are
deterministic. Results are cached per product signature (shape, bytes,
homes, density, format), architecture and objective: ALBERT's twelve reads
of one layer, and many tasks with equal layers, cost one search.
`exhaustive` searches the whole space without pruning (the tests' oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.ir.errors import AalbertError
from aalbert.ir.schedule import Mapping

from .cost import Costs, evaluate
from .problem import Arch, Gemm
from .space import columns_of, mapping_at, space

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


def cost_of(g: Gemm, arch: Arch, mapping: Mapping) -> GemmCost:
    """The model's figures for `mapping` (whether or not it fits)."""
    costs = evaluate(g, arch, columns_of(g, [mapping]))
    return _one(costs, 0, mapping)


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


_CACHE: dict[tuple, GemmCost | None] = {}


def search(g: Gemm, arch: Arch, objective: str = "balanced", leak_pj_per_cycle: float = 0.0) -> GemmCost | None:
    """The best mapping of `g` on `arch`, or None when none fits (cached)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    key = (g.key, arch.key, objective, leak_pj_per_cycle)
    if key not in _CACHE:
        c = space(g, arch, prune=True)
        costs = evaluate(g, arch, c)
        i = _pick(costs, objective, leak_pj_per_cycle)
        _CACHE[key] = None if i < 0 else _one(costs, i, mapping_at(c, i))
    return _CACHE[key]


def exhaustive(g: Gemm, arch: Arch, objective: str = "balanced", leak_pj_per_cycle: float = 0.0) -> GemmCost | None:
    """The same search over the whole space, nothing pruned (for tests)."""
    c = space(g, arch, prune=False)
    costs = evaluate(g, arch, c)
    i = _pick(costs, objective, leak_pj_per_cycle)
    return None if i < 0 else _one(costs, i, mapping_at(c, i))


def objective_value(cost: GemmCost, objective: str, leak_pj_per_cycle: float = 0.0) -> float:
    energy = cost.dynamic_pj + leak_pj_per_cycle * cost.cycles
    return {"latency": cost.cycles, "edp": energy * cost.cycles}.get(objective, energy)


def clear_cache() -> None:
    _CACHE.clear()
