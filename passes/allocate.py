"""`allocate`: place every weight and the activation arena in the target's memories.

The objective is the expected energy of one inference under a workload (a
task mix and a task-switch rate): every read of a weight from where it is
kept (ALBERT's layer weights are read 12 times; an embedding table only in
the rows an inference gathers), the copies that bring task-specific weights
on chip when their task becomes active, the activations' traffic, and the
leakage of the whole chip over the time those transfers take. Options per
weight: resident in a level that may hold weights; kept off chip and
`staged` into an on-chip swap region when its task starts (task-specific
weights only; the tasks share the region); or `streamed` from off chip on
every use. Off-chip memory holds weights only if the target says so or the
user allows spilling. A weight that a switch would rewrite goes to a
non-volatile level only if that level's write endurance covers the writes
over the stated lifetime.

Exact: an integer program (scipy's milp / HiGHS); a greedy fallback for
huge instances, with its gap to the LP bound reported. Results: each
weight's `placement`, each graph's arena level and offset, and
`module.allocation` (objective, gap, binding constraints, traffic) for the
report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from aalbert.ir.analysis import ALIGN, activation_buffers
from aalbert.ir.errors import OptionError
from aalbert.ir.fileio import read_toml
from aalbert.ir.module import Module, Weight
from aalbert.ir.placement import Arena, Placement
from aalbert.ir.registry import OpKind, Trait, get_op, is_data, op_has
from aalbert.targets.check import verify_placement
from aalbert.targets.spec import MemoryLevel, Target, TargetError, load_target

from .allocation_model import (ArenaOption, Item, Option, Problem, Solution, solve_greedy, solve_milp,
                               variable_count)
from .base import Analyses, Pass, register_pass

SECONDS_PER_YEAR = 365.25 * 24 * 3600
MAX_ILP_VARIABLES = 50_000


@dataclass(frozen=True)
class Workload:
    """How the chip is used: task mix, task switches, power gating, lifetime."""

    mix: dict[str, float]
    switch_rate: float = 1.0            # probability that an inference runs another task than the last one
    inferences_per_wakeup: float = 1.0  # inferences between power-ups (volatile memories start empty)
    task_weights_change: bool = True    # task-specific weights are installed and updated in the field
    inferences_per_second: float = 10.0
    lifetime_years: float = 5.0

    @property
    def lifetime_inferences(self) -> float:
        return self.inferences_per_second * self.lifetime_years * SECONDS_PER_YEAR

    @property
    def cold_start_rate(self) -> float:
        return 1.0 / self.inferences_per_wakeup


def default_workload(tasks) -> Workload:
    tasks = list(tasks)
    return Workload({t: 1.0 / len(tasks) for t in tasks})


def load_workload(path: str, tasks) -> Workload:
    """[workload] mix = {task = share, ...}, switch_rate, inferences_per_wakeup, task_weights_change,
    inferences_per_second, lifetime_years."""
    tasks = list(tasks)
    data = read_toml(path, TargetError, "no such workload file", "not valid TOML")
    extra = set(data) - {"workload"}
    if extra or not isinstance(data.get("workload"), dict):
        raise TargetError(f"{path}: expected one [workload] table" + (f", not '{sorted(extra)[0]}'" if extra else ""))
    w = data["workload"]
    known = {"mix", "switch_rate", "inferences_per_wakeup", "task_weights_change", "inferences_per_second",
             "lifetime_years", "source"}
    unknown = set(w) - known
    if unknown:
        raise TargetError(f"{path}: [workload]: unknown key '{sorted(unknown)[0]}'")
    mix = w.get("mix", {t: 1.0 for t in tasks})
    if not isinstance(mix, dict) or not mix:
        raise TargetError(f"{path}: [workload]: key 'mix' must be a table of task = share")
    for t, share in mix.items():
        if t not in tasks:
            raise TargetError(f"{path}: [workload]: key 'mix' names task '{t}', which is not compiled "
                              f"(tasks: {', '.join(tasks)})")
        if not isinstance(share, (int, float)) or isinstance(share, bool) or share < 0:
            raise TargetError(f"{path}: [workload]: mix share of '{t}' must be a non-negative number")
    total = float(sum(mix.values()))
    if total <= 0:
        raise TargetError(f"{path}: [workload]: key 'mix' has no positive share")

    def number(key, default, lo, hi):
        v = w.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise TargetError(f"{path}: [workload]: key '{key}' must be a number in [{lo}, {hi}], got {v!r}")
        return float(v)
    change = w.get("task_weights_change", True)
    if not isinstance(change, bool):
        raise TargetError(f"{path}: [workload]: key 'task_weights_change' must be true or false, got {change!r}")
    return Workload({t: mix.get(t, 0) / total for t in tasks}, number("switch_rate", 1.0, 0.0, 1.0),
                    number("inferences_per_wakeup", 1.0, 1.0, 1e15), change,
                    number("inferences_per_second", 10.0, 1e-9, 1e12), number("lifetime_years", 5.0, 0.0, 1e3))


@dataclass
class Allocation:
    """What the allocator decided and why, for the report."""

    target: str
    workload: Workload
    solution: Solution
    lp_bound: float
    capacities: dict[str, int]
    binding: list[str]
    notes: list[str]
    dram_bytes_per_inference: float
    dram_bytes_per_switch: dict[str, int]
    dram_bytes_per_cold_start: dict[str, int]
    weight_bytes: int
    arena_bytes: int
    spill: bool
    usage: dict[str, int] = field(default_factory=dict)


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def bytes_read(module: Module) -> dict[str, dict[str, float]]:
    """Per weight, per task: bytes read in one inference (embedding tables: only the rows gathered)."""
    result: dict[str, dict[str, float]] = {}
    for task, graph in module.graphs.items():
        users = graph.users()
        for node in graph.nodes:
            if node.op != "weight":
                continue
            w = module.weights[node.attrs["name"].name]
            total = 0.0
            for u in users[node.output]:
                if op_has(u.op, Trait.GATHERS_ROWS) and u.inputs[0] is node.output:
                    total += min(1.0, u.output.type.numel / max(1, w.numel)) * w.nbytes
                else:
                    total += w.nbytes
            result.setdefault(w.name, {})[task] = result.get(w.name, {}).get(task, 0.0) + total
    return result


def activation_traffic(module: Module, bits: int) -> dict[str, tuple[float, float]]:
    """Per task: (bytes read, bytes written) of activations in one inference."""
    per = bits / 8
    out = {}
    for task, graph in module.graphs.items():
        rd = wr = 0.0
        for node in graph.nodes:
            opdef = get_op(node.op)
            if opdef.kind is OpKind.SOURCE or opdef.has(Trait.VIEW):
                continue
            for v in node.inputs:
                if not is_data(v):
                    rd += v.type.numel * (per if v.type.dtype.is_float else v.type.dtype.itemsize)
            for v in node.outputs:
                wr += v.type.numel * (per if v.type.dtype.is_float else v.type.dtype.itemsize)
        out[task] = (rd, wr)
    return out


class Builder:
    """Turns a module, a target and a workload into a `Problem`."""

    def __init__(self, module: Module, target: Target, workload: Workload, spill: bool):
        self.module, self.t, self.wl, self.spill = module, target, workload, spill
        self.notes: list[str] = []
        self.excluded: list[str] = []
        persistent = [m for m in target.memories if m.off_chip]
        self.store = min(persistent, key=lambda m: m.read_pj_per_byte) if persistent else None

    def can_hold(self, m: MemoryLevel, w: Weight, quiet: bool = False) -> bool:
        if not ("weights" in m.holds or (m.off_chip and self.spill)):
            return False
        if self.mutable(w) and not m.field_writable:
            if not quiet:
                self.excluded.append(f"@{w.name} may not live in {m.name}: task-specific weights change in the "
                                     f"field and {m.name} is written only once")
            return False
        return True

    def mutable(self, w: Weight) -> bool:
        return self.wl.task_weights_change and not w.role.shared

    def fetch(self, level: MemoryLevel, nbytes: float) -> tuple[float, list[tuple[str, float]]]:
        """Energy and port cycles to bring `nbytes` from `level` to the compute array."""
        path = self.t.fetch_path(level.name)
        busy = [(path[0], nbytes / level.read_bytes_per_cycle)]
        for mid in path[1:-1]:
            m = self.t.level(mid)
            busy.append((mid, nbytes / m.write_bytes_per_cycle + nbytes / m.read_bytes_per_cycle))
        return nbytes * self.t.fetch_pj_per_byte(level.name), busy

    def load(self, into: MemoryLevel, nbytes: float) -> tuple[float, list[tuple[str, float]]]:
        """Energy and port cycles to copy `nbytes` from off-chip storage into `into`."""
        if self.store is None:
            return 0.0, []
        pj = nbytes * (self.store.read_pj_per_byte + into.write_pj_per_byte)
        return pj, [(self.store.name, nbytes / self.store.read_bytes_per_cycle),
                    (into.name, nbytes / into.write_bytes_per_cycle)]

    def problem(self) -> Problem:
        tasks = tuple(self.module.graphs)
        reads = bytes_read(self.module)
        cold = self.wl.cold_start_rate
        items = []
        for w in self.module.weights.values():
            if w.role is None:
                raise OptionError("allocate needs weight roles: run 'share' first")
            owners = tasks if w.role.shared else w.role.tasks
            p_use = sum(self.wl.mix[t] for t in owners)
            expected = sum(self.wl.mix[t] * reads.get(w.name, {}).get(t, 0.0) for t in owners)
            size = _aligned(w.nbytes)
            options = []
            for m in self.t.memories:
                if not self.can_hold(m, w):
                    continue
                pj, busy = self.fetch(m, expected)
                if m.volatile and not m.off_chip:  # refilled after every power-up that runs its task
                    more_pj, more_busy = self.load(m, cold * p_use * w.nbytes)
                    pj, busy = pj + more_pj, busy + more_busy
                options.append(Option("streamed" if m.off_chip else "resident", m.name, None, pj,
                                      resident=((m.name, size),), busy=_merge(busy)))
            if not w.role.shared:
                homes = [m for m in self.t.memories if m.off_chip and self.can_hold(m, w)]
                for on in self.t.on_chip:
                    if "weights" not in on.holds or not self.can_hold(on, w):
                        continue
                    lost = (1 - self.wl.switch_rate) * cold if on.volatile else 0.0
                    loads = p_use * (self.wl.switch_rate + lost)
                    writes = loads * self.wl.lifetime_inferences
                    if writes > on.write_endurance:
                        self.excluded.append(f"@{w.name} may not be staged in {on.name}: {writes:.3g} rewrites over "
                                             f"{self.wl.lifetime_years:g} years exceed its endurance of "
                                             f"{on.write_endurance:.3g}")
                        continue
                    for home in homes:
                        pj, busy = self.fetch(on, expected)
                        more_pj, more_busy = self.load(on, loads * w.nbytes)
                        # keeping a weight resident wins a tie with staging it (no swap region needed)
                        options.append(Option("staged", on.name, home.name, (pj + more_pj) * (1 + 1e-9),
                                              resident=((home.name, size),), swap=((on.name, size),),
                                              busy=_merge(busy + more_busy)))
            if not options:
                raise OptionError(f"allocate: no memory of {self.t.name} may hold weight @{w.name}"
                                  + (f" ({self.excluded[-1]})" if self.excluded else "; use --spill"))
            items.append(Item(w.name, owners if len(owners) == 1 else tasks, options))
        traffic = activation_traffic(self.module, self.t.compute.activation_bits)
        act_rd = sum(self.wl.mix[t] * traffic[t][0] for t in tasks)
        act_wr = sum(self.wl.mix[t] * traffic[t][1] for t in tasks)
        arena = _aligned(max(self.arena_size(g) for g in self.module.graphs.values()))
        arena_options = []
        for m in self.t.memories:
            if not ("activations" in m.holds or (m.off_chip and self.spill)):
                continue
            writes_per_cell = act_wr / max(1, arena) * self.wl.lifetime_inferences
            if writes_per_cell > m.write_endurance:
                self.notes.append(f"activations may not live in {m.name}: {writes_per_cell:.3g} writes per cell "
                                  f"over the lifetime exceed its endurance {m.write_endurance:.3g}")
                continue
            cost = act_rd * m.read_pj_per_byte + act_wr * m.write_pj_per_byte
            busy = act_rd / m.read_bytes_per_cycle + act_wr / m.write_bytes_per_cycle
            arena_options.append(ArenaOption(m.name, arena, cost, busy))
        if not arena_options:
            raise OptionError(f"allocate: no memory of {self.t.name} may hold activations")
        self.arena_bytes = arena
        base = sum(self.wl.mix[t] * compute_cycles(self.module, t, self.t) for t in tasks)
        leak = self.t.leakage_mw * 1000.0 / self.t.clock_mhz  # mW x ns per cycle = pJ per cycle
        return Problem(items, {m.name: m.capacity_bytes for m in self.t.memories}, arena_options, tasks,
                       base, leak)

    def arena_size(self, graph) -> int:
        if graph.arena is not None:
            return graph.arena.size
        bufs, _ = activation_buffers(graph, self.t.compute.activation_bits)
        return sum(b.size for b in bufs)


def _merge(busy: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    out: dict[str, float] = {}
    for lvl, c in busy:
        out[lvl] = out.get(lvl, 0.0) + c
    return tuple(sorted(out.items()))


def compute_cycles(module: Module, task: str, target: Target) -> float:
    """PE-array and special-function-unit cycles of one inference, one after the other (a first estimate)."""
    pe = sfu = 0.0
    for node in module.graphs[task].nodes:
        op = get_op(node.op)
        work = op.work([v.type for v in node.inputs], [v.type for v in node.outputs], node.attrs)
        pe += work.macs / target.compute.macs_per_cycle
        if op.kind in (OpKind.ELEMENTWISE, OpKind.NORMALIZATION):
            sfu += work.elementwise * target.sfu.passes.get(node.op, 1) / target.sfu.elements_per_cycle
    return pe + sfu


def _does_not_fit(module: Module, target: Target, problem: Problem, builder: Builder) -> OptionError:
    weights = list(module.weights.values())
    on_chip = {m.name: m.capacity_bytes for m in target.on_chip
               if any(builder.can_hold(m, w, quiet=True) for w in weights)}
    need = sum(_aligned(w.nbytes) for w in weights)
    cap = sum(on_chip.values()) - builder.arena_bytes
    biggest = sorted(module.weights.values(), key=lambda w: -w.nbytes)[:3]
    names = ", ".join(f"@{w.name} ({w.nbytes / 1e6:.2f} MB)" for w in biggest)
    return OptionError(
        f"allocate: the weights do not fit {target.name}: they need {need:,} bytes, the on-chip memories that "
        f"may hold them ({', '.join(f'{k} {v:,}' for k, v in on_chip.items()) or 'none'}) leave {max(cap, 0):,} after "
        f"the {builder.arena_bytes:,}-byte activation arena, so {need - max(cap, 0):,} bytes are over; the "
        f"largest weights: {names}; "
        + ("the off-chip memories cannot take the rest either" if builder.spill else "use --spill to keep weights off chip"))


def allocate(module: Module, target: Target, workload: Workload, spill: bool = False,
             solver: str = "auto") -> Allocation:
    b = Builder(module, target, workload, spill)
    problem = b.problem()
    use_ilp = solver == "ilp" or (solver == "auto" and variable_count(problem) <= MAX_ILP_VARIABLES)
    solution = solve_milp(problem) if use_ilp else solve_greedy(problem)
    if solution is None:
        raise _does_not_fit(module, target, problem, b)
    lp = solve_milp(problem, relax=True)
    lp_bound = lp.objective if lp is not None else solution.bound
    if solution.method == "greedy":
        solution.bound = lp_bound
    _write_placements(module, target, solution, b.arena_bytes)
    return _report(module, target, workload, problem, solution, lp_bound, b, spill)


def _write_placements(module: Module, target: Target, solution: Solution, arena: int) -> None:
    """Offsets: per level, resident weights, then the swap region (tasks overlap), then the arena."""
    cursor = {m.name: 0 for m in target.memories}
    order = sorted(module.weights.values(), key=lambda w: (not w.role.shared, list(module.weights).index(w.name)))
    resident_at: dict[str, int] = {}
    homes: dict[str, int] = {}
    for w in order:
        o = solution.choice[w.name]
        lvl = o.home if o.kind == "staged" else o.level
        homes[w.name] = cursor[lvl]
        cursor[lvl] += _aligned(w.nbytes)
    multi_end = dict(cursor)
    for w in order:  # weights staged for several tasks get their own slots first
        o = solution.choice[w.name]
        if o.kind == "staged" and len(w.role.tasks) > 1:
            resident_at[w.name] = multi_end[o.level]
            multi_end[o.level] += _aligned(w.nbytes)
    region_end = dict(multi_end)
    for task in module.graphs:
        task_cursor = dict(multi_end)
        for w in order:
            o = solution.choice[w.name]
            if o.kind == "staged" and w.role.tasks == (task,):
                resident_at[w.name] = task_cursor[o.level]
                task_cursor[o.level] += _aligned(w.nbytes)
        for lvl, c in task_cursor.items():
            region_end[lvl] = max(region_end[lvl], c)
    for w in order:
        o = solution.choice[w.name]
        if o.kind == "staged":
            w.placement = Placement(o.level, "staged", resident_at[w.name], o.home, homes[w.name])
        else:
            w.placement = Placement(o.level, o.kind, homes[w.name])
    base = region_end[solution.arena.level]
    for graph in module.graphs.values():
        size = graph.arena.size if graph.arena is not None else arena
        total = graph.arena.total if graph.arena is not None else arena
        graph.arena = Arena(size, total, solution.arena.level, base)


def _binding(problem: Problem, solution: Solution) -> list[str]:
    """Constraints that kept weights from a cheaper option: levels without room for it."""
    blocked: dict[str, int] = {}
    used = solution.usage
    for item in problem.items:
        chosen = solution.choice[item.name]
        for o in sorted(item.options, key=lambda o: o.cost):
            if o.cost >= chosen.cost:
                break
            for lvl, b in o.resident + o.swap:
                if used.get(lvl, 0) + b > problem.capacities[lvl]:
                    blocked[lvl] = blocked.get(lvl, 0) + 1
                    break
    return [f"capacity of {lvl}: {used.get(lvl, 0):,} of {problem.capacities[lvl]:,} bytes used; "
            f"{n} weight(s) would be cheaper there" for lvl, n in sorted(blocked.items())]


def _report(module, target, workload, problem, solution, lp_bound, b: Builder, spill) -> Allocation:
    binding = _binding(problem, solution)
    if b.excluded:
        binding.append(f"{len(b.excluded)} placement(s) ruled out by write endurance or field-writability, "
                       f"e.g. {b.excluded[0]}")
    off_chip = {m.name for m in target.memories if m.off_chip}
    reads = bytes_read(module)
    per_inference = 0.0
    for w in module.weights.values():
        if w.placement.level in off_chip:
            owners = module.graphs if w.role.shared else w.role.tasks
            per_inference += sum(workload.mix[t] * reads.get(w.name, {}).get(t, 0.0) for t in owners)
    per_switch = {t: sum(w.nbytes for w in module.weights.values()
                         if w.placement.residency == "staged" and t in w.role.tasks) for t in module.graphs}
    volatile = {m.name for m in target.on_chip if m.volatile}
    per_cold = {t: sum(w.nbytes for w in module.weights.values() if w.placement.level in volatile
                       and (w.role.shared or t in w.role.tasks)) for t in module.graphs}
    if solution.arena.level in off_chip:
        traffic = activation_traffic(module, target.compute.activation_bits)
        per_inference += sum(workload.mix[t] * sum(traffic[t]) for t in module.graphs)
    return Allocation(target.name, workload, solution, lp_bound, dict(problem.capacities), binding, b.notes,
                      per_inference, per_switch, per_cold, sum(w.nbytes for w in module.weights.values()),
                      b.arena_bytes, spill, solution.usage)


@register_pass
@dataclass(frozen=True)
class Allocate(Pass):
    name = "allocate"
    summary = "place weights and activations in the target's memories (integer program; greedy fallback)"
    target: str = "edge_accel"
    workload: str = ""
    switch_rate: float = -1.0           # overrides the workload's when >= 0
    inferences_per_wakeup: float = -1.0  # overrides the workload's when >= 1
    spill: bool = False
    solver: str = "auto"

    def __post_init__(self) -> None:
        if self.solver not in ("auto", "ilp", "greedy"):
            raise ValueError(f"solver must be auto, ilp or greedy, got {self.solver!r}")
        if self.switch_rate != -1.0 and not 0.0 <= self.switch_rate <= 1.0:
            raise ValueError(f"switch_rate must be in [0, 1], got {self.switch_rate}")
        if self.inferences_per_wakeup != -1.0 and self.inferences_per_wakeup < 1:
            raise ValueError(f"inferences_per_wakeup must be >= 1, got {self.inferences_per_wakeup}")
        load_target(self.target)

    def run(self, module: Module, analyses: Analyses) -> Module:
        target = load_target(self.target)
        wl = load_workload(self.workload, module.graphs) if self.workload else default_workload(module.graphs)
        if self.switch_rate >= 0:
            wl = dataclasses.replace(wl, switch_rate=self.switch_rate)
        if self.inferences_per_wakeup >= 1:
            wl = dataclasses.replace(wl, inferences_per_wakeup=self.inferences_per_wakeup)
        analyses.put(allocate(module, target, wl, self.spill, self.solver))
        verify_placement(module, target)
        return module
