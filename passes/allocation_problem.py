"""The placement problem of a module on a target under a workload, as `allocation_model` states it.

`ProblemBuilder` turns each weight into an item whose options are the places
it may live, each with its expected energy per inference and the memory port
cycles it keeps busy: every read of the weight from where it is kept
(ALBERT's layer weights are read 12 times; an embedding table only in the
rows an inference gathers), and the copies that bring it on chip (after a
power-up into volatile memory; at a task switch for a `staged` weight).
Options per weight: resident in a level that may hold weights; kept off chip
and `staged` into an on-chip swap region when its task starts (task-specific
weights only; the tasks share the region); or `streamed` from off chip on
every use. Off-chip memory holds weights only if the target says so or the
user allows spilling. A weight that a switch would rewrite goes to a
non-volatile level only if that level's write endurance covers the writes
over the stated lifetime. The activation arena chooses a level the same way.

Static energy follows the simulator's power states (`targets.power`,
`static_terms`): logic leakage over the runtime; per banked level, the
banks holding data in their holding state (on, or for `power_gating =
idle` retention or off, waking while the level's port is busy) and the rest
off, the arena's banks on all along; a weight's bytes count as present in
volatile memory only while its task may run (after a power-up, volatile
memory holds just the running task's data); per DRAM, active standby while
its port is busy and self-refresh for the rest of the request period, when
any placement needs it.
"""

from __future__ import annotations

import functools

from aalbert.ir.analysis import align_up
from aalbert.ir.errors import OptionError
from aalbert.ir.module import Module, Weight
from aalbert.ir.registry import OpKind, Trait, get_op, is_data, op_has
from aalbert.targets.spec import MemoryLevel, Target
from aalbert.targets.workload import Workload

from .allocation_model import ArenaOption, BankModel, Item, Option, Problem


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


class ProblemBuilder:
    """Turns a module, a target and a workload into a `Problem`."""

    def __init__(self, module: Module, target: Target, workload: Workload, spill: bool):
        self.module, self.t, self.wl, self.spill = module, target, workload, spill
        self.notes: list[str] = []
        self.excluded: list[str] = []
        self._paths: dict[str, tuple[list[str], float]] = {}
        self._arena_cycles: dict[tuple[str, int], float] = {}
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
        path, pj_per_byte = self._path(level.name)
        busy = [(path[0], nbytes / level.read_bytes_per_cycle)]
        for mid in path[1:-1]:
            m = self.t.level(mid)
            busy.append((mid, nbytes / m.write_bytes_per_cycle + nbytes / m.read_bytes_per_cycle))
        return nbytes * pj_per_byte, busy

    def _path(self, level: str) -> tuple[list[str], float]:
        if level not in self._paths:
            self._paths[level] = self.t.fetch_path(level), self.t.fetch_pj_per_byte(level)
        return self._paths[level]

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
            size = align_up(w.nbytes, self.t.alignment_bytes)
            options = []
            for m in self.t.memories:
                if not self.can_hold(m, w):
                    continue
                pj, busy = self.fetch(m, expected)
                if m.volatile and not m.off_chip:  # refilled after every power-up that runs its task
                    more_pj, more_busy = self.load(m, cold * p_use * w.nbytes)
                    pj, busy = pj + more_pj, busy + more_busy
                here = size if w.role.shared or not m.volatile else size * (1 - cold * (1 - p_use))
                options.append(Option("streamed" if m.off_chip else "resident", m.name, None, pj,
                                      resident=((m.name, size),), busy=_merge(busy), present=((m.name, here),),
                                      uses_dram=m.off_chip or (m.volatile and self.store is not None)))
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
                                              busy=_merge(busy + more_busy), uses_dram=True))
            if not options:
                raise OptionError(f"allocate: no memory of {self.t.name} may hold weight @{w.name}"
                                  + (f" ({self.excluded[-1]})" if self.excluded else "; use --spill"))
            items.append(Item(w.name, owners if len(owners) == 1 else tasks, options))
        traffic = activation_traffic(self.module, self.t.compute.activation_bits)
        act_rd = sum(self.wl.mix[t] * traffic[t][0] for t in tasks)
        act_wr = sum(self.wl.mix[t] * traffic[t][1] for t in tasks)
        arena = align_up(max(self.arena_size(g) for g in self.module.graphs.values()), self.t.alignment_bytes)
        arena_options = []
        for m in self.t.memories:
            if not ("activations" in m.holds or (m.off_chip and self.spill)):
                continue
            writes_per_cell = act_wr / max(1, arena) * self.wl.lifetime_inferences
            if writes_per_cell > m.write_endurance:
                self.notes.append(f"activations may not live in {m.name}: {writes_per_cell:.3g} writes per cell "
                                  f"over the lifetime exceed its endurance {m.write_endurance:.3g}")
                continue
            cost = act_rd * m.read_pj_per_byte + act_wr * m.write_pj_per_byte + self.arena_on_pj(m, arena)
            busy = act_rd / m.read_bytes_per_cycle + act_wr / m.write_bytes_per_cycle
            arena_options.append(ArenaOption(m.name, arena, cost, busy, uses_dram=m.off_chip))
        if not arena_options:
            raise OptionError(f"allocate: no memory of {self.t.name} may hold activations")
        self.arena_bytes = arena
        leak, banks, busy_pj, dram_pj = static_terms(self.t, self.wl, self.base)
        return Problem(items, {m.name: m.capacity_bytes for m in self.t.memories}, arena_options, tasks,
                       self.base, leak, banks, busy_pj, dram_pj)

    def _arena_bank_cycles(self, task: str, bank_bytes: int) -> float:
        key = task, bank_bytes
        if key not in self._arena_cycles:
            self._arena_cycles[key] = arena_bank_cycles(self.module.graphs[task], bank_bytes, self.t)
        return self._arena_cycles[key]

    @functools.cached_property
    def base(self) -> float:
        return sum(self.wl.mix[t] * compute_cycles(self.module, t, self.t) for t in self.module.graphs)

    def arena_on_pj(self, m: MemoryLevel, arena: int) -> float:
        """The arena's banks are on while a node touches them, rather than in their holding state."""
        if m.off_chip or m.power_gating != "idle" or m.power is None:
            return 0.0
        hold = m.power.retention if m.power.retention is not None else m.power.off
        bank_cycles = sum(self.wl.mix[t] * self._arena_bank_cycles(t, m.bank_bytes) for t in self.module.graphs)
        return bank_cycles * m.bank_leakage_mw * (1 - hold) * 1000.0 / self.t.clock_mhz

    def arena_size(self, graph) -> int:
        return graph.arena.size


def static_terms(t: Target, wl: Workload, base_cycles: float):
    """The static energy's terms for `allocation_model.Problem`: always-on leakage per cycle, a `BankModel` per
    gated level, pJ per busy port cycle, and a DRAM's self-refresh over the request period."""
    cycle_ns = 1000.0 / t.clock_mhz
    runtime_ns = base_cycles * cycle_ns
    leak = t.compute.leakage_mw + t.sfu.leakage_mw
    banks, busy_pj, dram_pj = [], {}, 0.0
    for m in t.memories:
        if m.dram is not None:
            period_ns = 1e9 / wl.inferences_per_second
            busy_pj[m.name] = (m.dram.active_mw + m.dram.refresh_mw - m.dram.self_refresh_mw) * cycle_ns
            dram_pj += m.dram.self_refresh_mw * period_ns
            continue
        if m.power is None or m.power_gating == "none":
            leak += m.leakage_mw
            continue
        bank = m.bank_leakage_mw
        hold = 1.0 if m.power_gating == "empty" else (m.power.retention if m.power.retention is not None
                                                       else m.power.off)
        banks.append(BankModel(m.name, m.bank_bytes, m.banks, bank * hold * runtime_ns, bank * m.power.off * runtime_ns))
        if hold < 1.0:
            busy_pj[m.name] = bank * (1 - hold) * cycle_ns
    return leak * cycle_ns, banks, busy_pj, dram_pj


def _merge(busy: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    out: dict[str, float] = {}
    for lvl, c in busy:
        out[lvl] = out.get(lvl, 0.0) + c
    return tuple(sorted(out.items()))


def compute_cycles(module: Module, task: str, target: Target) -> float:
    """PE-array and special-function-unit cycles of one inference, one after the other (a first estimate)."""
    return sum(_node_cycles(node, target) for node in module.graphs[task].nodes)


def _node_cycles(node, target: Target) -> float:
    op = get_op(node.op)
    work = op.work([v.type for v in node.inputs], [v.type for v in node.outputs], node.attrs)
    cycles = work.macs / target.compute.macs_per_cycle
    if op.kind in (OpKind.ELEMENTWISE, OpKind.NORMALIZATION):
        cycles += work.elementwise * target.sfu.passes.get(node.op, 1) / target.sfu.elements_per_cycle
    return cycles


def arena_bank_cycles(graph, bank_bytes: int, target: Target) -> float:
    """Bank x cycles the arena's banks are touched in one inference (the arena starting on a bank): each
    node's estimated cycles times the banks its activation operands and result lie in."""
    per = target.compute.activation_bits / 8
    total = 0.0
    for node in graph.nodes:
        opdef = get_op(node.op)
        if opdef.kind is OpKind.SOURCE or opdef.has(Trait.VIEW):
            continue
        banks: set[int] = set()
        for v in list(node.inputs) + list(node.outputs):
            if is_data(v) or v.offset is None:
                continue
            size = v.type.numel * (per if v.type.dtype.is_float else v.type.dtype.itemsize)
            banks.update(range(v.offset // bank_bytes, (v.offset + max(1, int(size)) - 1) // bank_bytes + 1))
        total += _node_cycles(node, target) * len(banks)
    return total
