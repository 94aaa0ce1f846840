"""The placement problem as an integer program, with a greedy fallback and a brute force.

Items (weights) each choose one option; the activation arena chooses a
level, and so does a decoder's KV cache (`state_options`, one region shared by
every graph; none without state, so an encoder's program has no such
column). An option costs energy (pJ per inference, expected over the
workload), occupies bytes in some levels (`resident` bytes add up; `swap`
bytes belong to tasks, and a level needs only the largest task's total,
because tasks run one at a time; a staging region is as large as the
largest any chosen option needs) and accounts for cycles of the inference.
An option's cost already holds the static energy over its cycles
(`passes.allocation_costs`); what it leaves out is here: per banked level,
the banks that hold data (`BankModel`: enough banks for the bytes present,
an integer) in their holding state and the others off; per DRAM, its
background when any chosen option needs the DRAM (`dram_pj`, a binary); and
a constant. Objective = option energies + arena energy + cache energy + that static
energy. Capacities bound each level.

`solve_milp` (scipy's milp, i.e. HiGHS) finds the optimum; `solve_greedy`
is the fallback for huge instances; `brute_force` checks both on small ones.

What decides where a solve stops must not depend on the machine: HiGHS
runs branch and bound on one thread and is deterministic, so the same
program and options give the same answer, as long as no wall-clock limit
cuts it short. The limit that stops a solve before optimality is proven is
therefore a node count (`NODE_LIMIT`); the time limit (`TIME_LIMIT`) is only
a safety net, set far beyond the time those nodes take. A solve stopped at
either says which (`Solution.limit`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from aalbert.errors import AalbertError
from aalbert.ir.placement import Residency


@dataclass(frozen=True)
class Option:
    kind: Residency                    # resident | staged | streamed
    level: str                         # where it is read from
    home: str | None                   # where a staged weight is kept
    cost: float                        # pJ per inference
    resident: tuple[tuple[str, int], ...] = ()   # (level, bytes) held for good
    swap: tuple[tuple[str, int], ...] = ()       # (level, bytes) held while its task runs
    present: tuple[tuple[str, float], ...] = ()  # (level, bytes expected in it during an inference)
    uses_dram: bool = False                      # needs the DRAM powered (kept, streamed or refilled there)
    stage: tuple[tuple[str, int], ...] = ()      # (level, bytes) of staging region its layers need
    cycles: float = 0.0                # cycles per inference it accounts for (reports)
    traffic: tuple[tuple[str, float], ...] = ()  # (level, bytes moved per inference) (reports)


@dataclass
class Item:
    name: str
    tasks: tuple[str, ...]             # the task owning its swap bytes (or all tasks)
    options: list[Option]


@dataclass(frozen=True)
class ArenaOption:
    """A level for a region of its own (the activation arena, or the KV cache), with its price."""

    level: str
    size: int
    cost: float
    uses_dram: bool = False
    stage: tuple[tuple[str, int], ...] = ()
    cycles: float = 0.0
    traffic: tuple[tuple[str, float], ...] = ()
    dynamic: float = 0.0               # pJ of `cost` that is dynamic energy, leakage apart (reports)


@dataclass(frozen=True)
class BankModel:
    """A banked level's static energy per inference: `held_pj` per bank holding data, `empty_pj` per empty
    bank (enough banks hold data for the bytes present, rounded up)."""

    level: str
    bank_bytes: int
    banks: int
    held_pj: float
    empty_pj: float


@dataclass
class Problem:
    items: list[Item]
    capacities: dict[str, int]
    arena_options: list[ArenaOption]
    tasks: tuple[str, ...]
    banks: list[BankModel] = field(default_factory=list)
    dram_pj: float = 0.0               # per inference, when any chosen option uses the DRAM
    constant_pj: float = 0.0           # per inference whatever the choice
    state_options: list[ArenaOption] = field(default_factory=list)   # the KV cache's levels (none: no cache)

    def regions(self, arena: ArenaOption, cache: ArenaOption | None) -> list[ArenaOption]:
        """The chosen regions of their own: the arena, and the cache if there is one."""
        return [arena] if cache is None else [arena, cache]


@dataclass
class Solution:
    choice: dict[str, Option]
    arena: ArenaOption
    objective: float
    bound: float
    method: str
    status: str
    usage: dict[str, int] = field(default_factory=dict)
    cycles: float = 0.0
    bound_kind: str = ""               # which bound `bound` is (branch and bound's, or the LP relaxation's)
    cache: ArenaOption | None = None   # the KV cache's level (None without one)
    limit: str = ""                    # the limit the solve stopped at before proving optimality, if any

    @property
    def gap(self) -> float:
        if self.objective == 0:
            return 0.0
        return max(0.0, (self.objective - self.bound) / abs(self.objective))


def _swap_tasks(problem: Problem, item: Item) -> tuple[str, ...]:
    return item.tasks if len(item.tasks) == 1 else problem.tasks


def usage(problem: Problem, choice: dict[str, Option], arena: ArenaOption,
          cache: ArenaOption | None = None) -> dict[str, int]:
    """Bytes used per level: resident sums, plus the largest task's swap total, plus the arena and the cache."""
    used = {lvl: 0 for lvl in problem.capacities}
    swap: dict[tuple[str, str], int] = {}
    for item in problem.items:
        opt = choice[item.name]
        for lvl, b in opt.resident:
            used[lvl] += b
        for lvl, b in opt.swap:
            for t in _swap_tasks(problem, item):
                swap[lvl, t] = swap.get((lvl, t), 0) + b
    for lvl in problem.capacities:
        used[lvl] += max([v for (l2, _), v in swap.items() if l2 == lvl], default=0)
    for region in problem.regions(arena, cache):
        used[region.level] += region.size
    for lvl, b in staging(problem, choice, arena, cache).items():
        used[lvl] += b
    return used


def staging(problem: Problem, choice: dict[str, Option], arena: ArenaOption,
            cache: ArenaOption | None = None) -> dict[str, int]:
    """The staging region per level: as large as the largest any chosen layer needs (layers run one at a time)."""
    out: dict[str, int] = {}
    for o in [choice[i.name] for i in problem.items] + problem.regions(arena, cache):
        for lvl, b in o.stage:
            out[lvl] = max(out.get(lvl, 0), b)
    return out


def cycles(problem: Problem, choice: dict[str, Option], arena: ArenaOption, cache: ArenaOption | None = None) -> float:
    """The cycles of an inference: those every option accounts for (its layers, run one after another)."""
    return sum(choice[i.name].cycles for i in problem.items) + sum(r.cycles for r in problem.regions(arena, cache))


def present(problem: Problem, choice: dict[str, Option], arena: ArenaOption,
            cache: ArenaOption | None = None) -> dict[str, float]:
    """Bytes expected in each level during an inference: weights present, the swap region, the arena, the cache
    (volatile data, present while a request runs)."""
    out = {lvl: 0.0 for lvl in problem.capacities}
    for item in problem.items:
        for lvl, b in choice[item.name].present:
            out[lvl] += b
    used = usage(problem, choice, arena, cache)
    regions = problem.regions(arena, cache)
    for bank in problem.banks:  # the swap region
        resident = sum(bb for item in problem.items for lvl, bb in choice[item.name].resident if lvl == bank.level)
        out[bank.level] += used[bank.level] - resident - sum(r.size for r in regions if r.level == bank.level)
    for region in regions:
        out[region.level] += region.size
    return out


def static_pj(problem: Problem, choice: dict[str, Option], arena: ArenaOption,
              cache: ArenaOption | None = None) -> float:
    """Static energy per inference (the module doc's terms)."""
    pj = problem.constant_pj
    held = present(problem, choice, arena, cache)
    for b in problem.banks:
        n = min(b.banks, math.ceil(held[b.level] / b.bank_bytes - 1e-9))
        pj += n * b.held_pj + (b.banks - n) * b.empty_pj
    if any(r.uses_dram for r in problem.regions(arena, cache)) or any(choice[i.name].uses_dram
                                                                        for i in problem.items):
        pj += problem.dram_pj
    return pj


def feasible(problem: Problem, choice: dict[str, Option], arena: ArenaOption, cache: ArenaOption | None = None) -> bool:
    used = usage(problem, choice, arena, cache)
    return all(used[lvl] <= cap for lvl, cap in problem.capacities.items())


def objective(problem: Problem, choice: dict[str, Option], arena: ArenaOption,
              cache: ArenaOption | None = None) -> float:
    return (sum(choice[i.name].cost for i in problem.items) + sum(r.cost for r in problem.regions(arena, cache))
            + static_pj(problem, choice, arena, cache))


def _solution(problem, choice, arena, cache, bound, how: tuple[str, str]) -> Solution:
    """The solution of these choices, `how` it was found (method, status)."""
    value = objective(problem, choice, arena, cache)
    return Solution(choice, arena, value, value if bound is None else bound, *how,
                    usage(problem, choice, arena, cache), cycles(problem, choice, arena, cache), cache=cache)


_KB = 1.0 / 1024.0  # the program counts bytes in KiB


class _Program:
    """The integer program of a `Problem`, as the module doc states it. Columns: x (item, option), y (arena
    option) and v (cache option) choices, s (level) the swap region and z (level) the staging region in KiB,
    n (level) the banks holding data, u whether the DRAM is powered. Costs are scaled to at most 1, bytes
    counted in KiB."""

    def __init__(self, problem: Problem):
        self.problem = problem
        # the regions of their own: the arena (always) and the KV cache (only when there is one)
        self.regions = [("y", problem.arena_options)] + ([("v", problem.state_options)]
                                                         if problem.state_options else [])
        cols: list[tuple] = [("x", i, k) for i, item in enumerate(problem.items) for k in range(len(item.options))]
        cols += [(tag, a) for tag, opts in self.regions for a in range(len(opts))]
        self.swap_levels = sorted({lvl for item in problem.items for o in item.options for lvl, _ in o.swap})
        self.stage_levels = sorted({lvl for item in problem.items for o in item.options for lvl, _ in o.stage}
                                   | {lvl for _, opts in self.regions for a in opts for lvl, _ in a.stage})
        cols += [("s", lvl) for lvl in self.swap_levels] + [("z", lvl) for lvl in self.stage_levels]
        cols += [("n", b.level) for b in problem.banks] + [("u",)]
        self.cols = cols
        self.index = {c: j for j, c in enumerate(cols)}
        self.constant = sum(b.banks * b.empty_pj for b in problem.banks) + problem.constant_pj
        costs = [abs(o.cost) for it in problem.items for o in it.options] + [abs(a.cost) for _, opts in self.regions
                                                                             for a in opts]
        self.scale = 1.0 / max([1.0] + costs)
        self.rows: list[np.ndarray] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def objective(self) -> np.ndarray:
        problem, index, scale = self.problem, self.index, self.scale
        c = np.zeros(len(self.cols))
        for i, item in enumerate(problem.items):
            for k, o in enumerate(item.options):
                c[index["x", i, k]] = o.cost * scale
        for tag, opts in self.regions:
            for a, opt in enumerate(opts):
                c[index[tag, a]] = opt.cost * scale
        for b in problem.banks:
            c[index["n", b.level]] = (b.held_pj - b.empty_pj) * scale
        c[index["u",]] = problem.dram_pj * scale
        return c

    def row(self, entries: dict[int, float], low: float, high: float) -> None:
        r = np.zeros(len(self.cols))
        for j, v in entries.items():
            r[j] += v
        self.rows.append(r)
        self.lo.append(low)
        self.hi.append(high)

    def options_at(self, field: str, lvl: str, task: str | None = None) -> dict[int, float]:
        """Each option's `field` amount at `lvl` in KiB, by column; only the items `task` swaps for."""
        entries: dict[int, float] = {}
        for i, item in enumerate(self.problem.items):
            if task is not None and task not in _swap_tasks(self.problem, item):
                continue
            for k, o in enumerate(item.options):
                v = sum(b for l2, b in getattr(o, field) if l2 == lvl)
                if v:
                    entries[self.index["x", i, k]] = v * _KB
        return entries

    def regions_at(self, lvl: str, entries: dict[int, float]) -> dict[int, float]:
        """`entries` plus the arena and cache options at `lvl` and the level's swap and staging regions."""
        for tag, opts in self.regions:
            for a, opt in enumerate(opts):
                if opt.level == lvl:
                    entries[self.index[tag, a]] = opt.size * _KB
        if lvl in self.swap_levels:
            entries[self.index["s", lvl]] = 1.0
        if lvl in self.stage_levels:
            entries[self.index["z", lvl]] = 1.0
        return entries

    def constrain(self) -> None:
        """One choice per item, for the arena and for the cache, capacities, the swap and staging regions, the
        banks holding data, the DRAM's power."""
        problem, index = self.problem, self.index
        for i, item in enumerate(problem.items):
            self.row({index["x", i, k]: 1.0 for k in range(len(item.options))}, 1, 1)
        for tag, opts in self.regions:
            self.row({index[tag, a]: 1.0 for a in range(len(opts))}, 1, 1)
        for lvl, cap in problem.capacities.items():
            entries = self.regions_at(lvl, self.options_at("resident", lvl))
            if entries:
                self.row(entries, -np.inf, cap * _KB)
        for lvl in self.stage_levels:  # the staging region holds the largest staging need of any chosen option
            for i, item in enumerate(problem.items):
                for k, o in enumerate(item.options):
                    b = sum(b for l2, b in o.stage if l2 == lvl)
                    if b:
                        self.row({index["x", i, k]: b * _KB, index["z", lvl]: -1.0}, -np.inf, 0.0)
            for tag, opts in self.regions:
                for a, opt in enumerate(opts):
                    b = sum(b for l2, b in opt.stage if l2 == lvl)
                    if b:
                        self.row({index[tag, a]: b * _KB, index["z", lvl]: -1.0}, -np.inf, 0.0)
        for lvl in self.swap_levels:
            for t in problem.tasks:
                self.row({index["s", lvl]: -1.0, **self.options_at("swap", lvl, t)}, -np.inf, 0.0)
        for bank in problem.banks:  # enough banks hold data for the bytes present
            entries = {index["n", bank.level]: -bank.bank_bytes * _KB, **self.options_at("present", bank.level)}
            self.row(self.regions_at(bank.level, entries), -np.inf, 0.0)
        users = [index["x", i, k] for i, item in enumerate(problem.items) for k, o in enumerate(item.options)
                 if o.uses_dram] + [index[tag, a] for tag, opts in self.regions for a, opt in enumerate(opts)
                                    if opt.uses_dram]
        if users:  # the DRAM is powered when any chosen option needs it
            self.row({**{j: 1.0 for j in users}, index["u",]: -float(len(users))}, -np.inf, 0.0)



@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """File descriptor 1 on the null device while the block runs (what a C library prints there is dropped);
    Python's own stdout is flushed first, so nothing it buffered is lost."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


# Branch-and-bound nodes a solve may take. The studies' compiles at the built-in prices take at most 585 nodes;
# the re-solved samples' (aalbert-study --resolve, at sampled prices) up to 11,088, and some did not finish in
# 12,000. Within the 60 s time limit this replaces, on an idle machine, all but one of those reached a gap under
# 5e-7 (docs/study), which is up to about 85,000 nodes there: a node takes 0.7 ms idle and up to 3.7 ms on a
# loaded machine, so this many take 2 to 12 minutes.
NODE_LIMIT = 200_000
# Seconds: a safety net only, beyond what NODE_LIMIT's nodes take on a loaded machine, so that the node limit
# decides. A stop here is load-dependent and says so.
TIME_LIMIT = 1800.0
NODE_STOP, TIME_STOP = "node limit", "time limit"


def solve_milp(problem: Problem, time_limit: float = TIME_LIMIT, relax: bool = False,
               node_limit: int = NODE_LIMIT) -> Solution | None:
    """The optimum (with relax=True only the LP bound, as `objective`); None if infeasible. A solve that stops
    at `node_limit` or `time_limit` first returns its best placement (the greedy one if HiGHS found none; an
    error if neither exists) with `limit` saying which; an LP relaxation stopped early bounds nothing
    (`objective` -inf) and says so the same way.

    When an incumbent HiGHS found on the presolved program breaks a row of the original by more than its
    tolerance, it repairs it with an LP and prints a debugging line to the process's stdout that no option
    silences (HiGHS 1.12, as scipy 1.17 ships it). The solve therefore runs with file descriptor 1 pointed at
    the null device (`_quiet_stdout`). Turning presolve off avoids the repair too, but made the decoder study's
    solves about 3x slower (62 at 8 adapters: 3.5 s against 1.2 s)."""
    from scipy.optimize import Bounds, LinearConstraint, milp  # at first use: its import takes 0.4 s

    prog = _Program(problem)
    c = prog.objective()
    prog.constrain()
    cols, index, scale = prog.cols, prog.index, prog.scale
    continuous = ("s", "z")
    integrality = np.array([0 if col[0] in continuous or relax else 1 for col in cols])
    upper = np.array([np.inf if col[0] in continuous else problem_bound(problem, col) for col in cols])
    with _quiet_stdout():
        res = milp(c, integrality=integrality, bounds=Bounds(np.zeros(len(cols)), upper),
                   constraints=LinearConstraint(np.array(prog.rows), np.array(prog.lo), np.array(prog.hi)),
                   options={"time_limit": time_limit, "node_limit": node_limit, "mip_rel_gap": 1e-9})
    limit = _limit(res, node_limit)
    if relax and limit:
        return Solution({}, problem.arena_options[0], -math.inf, -math.inf, "lp", res.message, limit=limit)
    if res.x is None:
        if not limit:
            return None
        fallback = solve_greedy(problem)
        if fallback is None:
            raise AalbertError(f"the allocator's integer program stopped at its {limit} before it found a "
                               f"placement, and the greedy placement found none either")
        fallback.limit = limit
        return fallback
    if relax:
        value = res.fun / scale + prog.constant
        return Solution({}, problem.arena_options[0], value, value, "lp", res.message)
    choice = {}
    for i, item in enumerate(problem.items):
        k = max(range(len(item.options)), key=lambda k: res.x[index["x", i, k]])
        choice[item.name] = item.options[k]
    arena = problem.arena_options[max(range(len(problem.arena_options)), key=lambda a: res.x[index["y", a]])]
    states = problem.state_options
    cache = states[max(range(len(states)), key=lambda a: res.x[index["v", a]])] if states else None
    bound = getattr(res, "mip_dual_bound", None)
    solution = _solution(problem, choice, arena, cache, None if bound is None else bound / scale + prog.constant,
                         ("ilp", res.message))
    solution.limit = limit
    return solution


def _limit(res, node_limit: int) -> str:
    """Which limit stopped `milp` before it proved optimality or infeasibility ("" if none did). scipy calls a
    stop at HiGHS's time limit status 1; at the node limit HiGHS reports a solution limit, which scipy passes
    on as status 4 (other)."""
    if res.status == 1:
        return TIME_STOP
    if res.status == 4 and (res.get("mip_node_count") or 0) >= node_limit:
        return NODE_STOP
    return ""


def problem_bound(problem: Problem, col: tuple) -> float:
    """Upper bound of an integer column: a level's bank count, else 1 (a choice)."""
    if col[0] == "n":
        return float(next(b.banks for b in problem.banks if b.level == col[1]))
    return 1.0


def solve_greedy(problem: Problem) -> Solution | None:
    """Arena and cache in their cheapest fitting levels (the pair of least cost first); then items by saving per
    byte, each its cheapest fitting option."""
    caches: list[ArenaOption | None] = list(problem.state_options) or [None]
    pairs = sorted(itertools.product(problem.arena_options, caches),
                   key=lambda p: sum(r.cost for r in problem.regions(*p)))
    for arena, cache in pairs:
        regions = problem.regions(arena, cache)
        resident = {lvl: 0 for lvl in problem.capacities}
        stage: dict[str, int] = {}
        for region in regions:
            resident[region.level] += region.size
            for lvl, b in region.stage:
                stage[lvl] = max(stage.get(lvl, 0), b)
        for lvl, b in stage.items():
            resident[lvl] += b
        if any(resident[lvl] > problem.capacities[lvl] for lvl in resident):
            continue
        swap: dict[tuple[str, str], int] = {}

        # called only within this iteration, on its own `swap` and `stage`
        def extra(lvl: str, o: Option, tasks) -> int:
            more = sum(b for l2, b in o.resident if l2 == lvl)
            now = max([v for (l2, _), v in swap.items() if l2 == lvl], default=0)  # noqa: B023
            add = sum(b for l2, b in o.swap if l2 == lvl)
            after = max([now] + [swap.get((lvl, t), 0) + add for t in tasks]) if add else now  # noqa: B023
            grow = max([0] + [b - stage.get(lvl, 0) for l2, b in o.stage if l2 == lvl])  # noqa: B023
            return more + after - now + grow

        def saving(item: Item) -> float:
            costs = sorted(o.cost for o in item.options)
            size = max(1, max(sum(b for _, b in o.resident + o.swap) for o in item.options))
            return (costs[-1] - costs[0]) / size

        choice: dict[str, Option] = {}
        for item in sorted(problem.items, key=lambda it: (-saving(it), it.name)):
            tasks = _swap_tasks(problem, item)
            for o in sorted(item.options, key=lambda o: o.cost):
                levels = {lvl for lvl, _ in o.resident + o.swap + o.stage}
                if all(resident[lvl] + extra(lvl, o, tasks) <= problem.capacities[lvl] for lvl in levels):
                    for lvl, b in o.stage:
                        resident[lvl] += max(0, b - stage.get(lvl, 0))
                        stage[lvl] = max(stage.get(lvl, 0), b)
                    for lvl in levels:
                        resident[lvl] += sum(b for l2, b in o.resident if l2 == lvl)
                    for lvl, b in o.swap:
                        for t in tasks:
                            swap[lvl, t] = swap.get((lvl, t), 0) + b
                    choice[item.name] = o
                    break
            else:
                break
        if len(choice) == len(problem.items) and feasible(problem, choice, arena, cache):
            return _solution(problem, choice, arena, cache, None, ("greedy", "heuristic"))
    return None


def brute_force(problem: Problem) -> Solution | None:
    """Every combination (for tests on small instances)."""
    best = None
    for arena, cache in itertools.product(problem.arena_options, list(problem.state_options) or [None]):
        for combo in itertools.product(*(item.options for item in problem.items)):
            choice = {item.name: o for item, o in zip(problem.items, combo)}
            if feasible(problem, choice, arena, cache):
                value = objective(problem, choice, arena, cache)
                if best is None or value < best.objective - 1e-9 * max(1.0, abs(value)):
                    best = _solution(problem, choice, arena, cache, None, ("brute force", "optimal"))
    return best


def variable_count(problem: Problem) -> int:
    return (sum(len(i.options) for i in problem.items) + len(problem.arena_options) + len(problem.state_options)
            + len(problem.capacities) + 2 + len(problem.banks))
