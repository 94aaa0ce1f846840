"""The placement problem of a module on a target under a workload, as `allocation_model` states it.

`ProblemBuilder` turns each weight into an item whose options are the places
it may live, each with its expected energy per inference: the nodes charged to
the weight, mapped and costed with the weight there (`allocation_costs`: the
same model the simulator's figures come from; ALBERT's layer weights are read
12 times), the chip's leakage over their cycles, and the copies that bring it
on chip (after a power-up into volatile memory; at a task switch for a
`staged` weight), with the leakage over the time they take.
Options per weight: resident in a level that may hold weights; kept off chip
and `staged` into an on-chip swap region when its task starts (task-specific
weights only; the tasks share the region); or `streamed` from off chip on
every use. Off-chip memory holds weights only if the target says so or the
user allows spilling. A weight that a switch would rewrite goes to a
non-volatile level only if that level's write endurance covers the writes
over the stated lifetime. The activation arena chooses a level the same way,
and so does a decoder's KV cache (`allocation.state`: the levels written
during operation, each priced by the nodes that read and write the cache at
the valid tokens of a request's steps).

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

import dataclasses
import functools
from dataclasses import dataclass
from typing import NoReturn

from aalbert.errors import OptionError
from aalbert.ir import phases
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module, Weight
from aalbert.ir.registry import OpKind, Trait, get_op, is_data, op_has
from aalbert.passes.allocation.prices import Price, Pricer, Rates, State
from aalbert.passes.allocation.solvers import ArenaOption, BankModel, Item, Option, Problem
from aalbert.passes.allocation.state import state_bytes, state_levels
from aalbert.targets.hardware.spec import MemoryLevel, Target
from aalbert.targets.sim.nodecost import NodeCoster
from aalbert.targets.sim.workload import Workload


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


def bytes_held(module: Module, target: Target, state: State) -> dict[str, int]:
    """Bytes each level holds with the weights, the arena and the KV cache where `state` puts them (before a
    solution says which weights share a swap region)."""
    used = {m.name: 0 for m in target.memories}
    for w in module.weights.values():
        used[state.levels[w.name]] += align_up(w.nbytes, target.alignment_bytes)
    used[state.arena] += align_up(max(g.arena.size for g in module.graphs.values()), target.alignment_bytes)
    if state.cache is not None:
        used[state.cache] += state_bytes(module, target)
    return used


@dataclass(frozen=True)
class AllocatorOptions:
    """How the allocator places: whether weights may spill off chip, the solver (auto, ilp or greedy), how
    products are mapped (search or fixed), what the mapping search minimizes, and the one level a decoder's KV
    cache may take (None: the integer program chooses)."""

    spill: bool = False
    solver: str = "auto"
    mapping: str = "search"
    objective: str = "balanced"
    cache: str | None = None


class ProblemBuilder:
    """Turns a module, a target and a workload into a `Problem`."""

    def __init__(self, module: Module, target: Target, workload: Workload, options: AllocatorOptions,
                 coster: NodeCoster, state: State):
        self.module, self.t, self.wl, self.options = module, target, workload, options
        self.spill = options.spill
        self.notes: list[str] = []
        self.excluded: list[str] = []
        persistent = [m for m in target.memories if m.off_chip]
        self.store = min(persistent, key=lambda m: m.read_pj_per_byte) if persistent else None
        self.cycle_ns = 1000.0 / target.clock_mhz
        always = target.compute.leakage_mw + target.sfu.leakage_mw + target.parts.leakage_mw
        self.gated: list[tuple[MemoryLevel, float, float, float]] = []   # (level, hold, off, power-up wake pJ)
        touch: dict[str, float] = {}
        held = bytes_held(module, target, state)
        self.held_leak = 0.0   # mW of the gated levels' banks at `state`: held ones in their holding state, others off
        dram_mw = 0.0
        held_banks: dict[str, int] = {}
        self.wake_all = 0.0    # pJ waking the banks of levels that are never gated, after a power-up
        for m in target.memories:
            if m.dram is not None:
                touch[m.name] = (m.dram.active_mw + m.dram.refresh_mw - m.dram.self_refresh_mw) * self.cycle_ns
                dram_mw += m.dram.active_mw + m.dram.refresh_mw
            elif m.power is None or m.power_gating == "none":
                always += m.leakage_mw
                self.wake_all += m.banks * m.power.wakeup_pj if m.power is not None else 0.0
            else:
                p = m.power
                hold = 1.0 if m.power_gating == "empty" else (p.retention if p.retention is not None else p.off)
                wake = p.wakeup_pj if m.power_gating == "empty" or m.volatile else 0.0
                self.gated.append((m, hold, p.off, wake))
                n = held_banks[m.name] = max(1, min(m.banks, -(-held.get(m.name, 0) // m.bank_bytes)))
                self.held_leak += m.bank_leakage_mw * (n * hold + (m.banks - n) * p.off)
                if hold < 1.0:
                    touch[m.name] = m.bank_leakage_mw * (1 - hold) * self.cycle_ns
        self.always_mw = always
        leak = (always + self.held_leak) * self.cycle_ns
        self.load_mw = always + self.held_leak + dram_mw   # while weights arrive: the chip idles, the DRAM is active
        rates = Rates(leak, touch, {m.name: 0 if m.dram is not None or m.off_chip else m.bank_bytes
                                    for m in target.memories}, target.compute.activation_bits / 8, held_banks,
                      {m.name: m.dram for m in target.memories if m.dram is not None}, self.cycle_ns)
        self.pricer = Pricer(module, target, workload, coster, state, rates)

    @functools.cached_property
    def timing(self) -> tuple[float, dict[str, float], dict[str, float]]:
        return self.pricer.timing({m.name: m.dram.self_refresh_after_ns / self.cycle_ns
                                   for m in self.t.memories if m.dram is not None})

    @property
    def runtime(self) -> float:
        return self.timing[0]

    @functools.cached_property
    def load_leak(self) -> float:
        """pJ per cycle of copying weights on chip, whose time is taken from the gap to the next request."""
        return self.load_mw * self.cycle_ns - self.gap_rate

    @property
    def gap_ns(self) -> float:
        return max(0.0, 1e9 / self.wl.inferences_per_second - self.runtime * self.cycle_ns)

    @functools.cached_property
    def gap_rate(self) -> float:
        """pJ per cycle of the idle gap between requests, at the current placement: a powered chip leaks, a
        DRAM that holds what the chip needs stays in self-refresh (or power-down in short gaps)."""
        cold = self.wl.cold_start_rate
        mw = (1 - cold) * (self.always_mw + self.held_leak)
        for m in self.t.memories:
            if m.dram is not None:
                mw += cold * m.dram.self_refresh_mw + (1 - cold) * self.warm_gap_mw(m)
        return mw * self.cycle_ns

    def warm_gap_mw(self, m: MemoryLevel) -> float:
        d = m.dram
        return d.self_refresh_mw if self.gap_ns > d.self_refresh_after_ns else d.power_down_mw + d.refresh_mw

    def can_hold(self, m: MemoryLevel, w: Weight, quiet: bool = False) -> bool:
        if not ("weights" in m.holds or (m.off_chip and self.spill)):
            return False
        if self.mutable(w) and not m.field_writable:
            why = "it is rewritten at every task switch" if w.role.merges else \
                "task-specific weights change in the field"
            if not quiet:
                self.excluded.append(f"@{w.name} may not live in {m.name}: {why} and {m.name} is written only once")
            return False
        return True

    def mutable(self, w: Weight) -> bool:
        """Written during operation: task-specific weights where the workload says they change, and an active
        copy that LoRA merges on a task switch (`ir.switch`) whatever the workload."""
        return (self.wl.task_weights_change and not w.role.shared) or bool(w.role.merges)

    def load(self, into: MemoryLevel, nbytes: float) -> tuple[float, float]:
        """Energy (with the leakage over its time) and cycles to copy `nbytes` from off-chip storage into `into`,
        as a request stream does before an inference."""
        if self.store is None or not nbytes:
            return 0.0, 0.0
        cycles = nbytes / min(self.store.read_bytes_per_cycle, into.write_bytes_per_cycle, self.t.dma_bytes_per_cycle)
        return nbytes * (self.store.read_pj_per_byte + into.write_pj_per_byte) + self.load_leak * cycles, cycles

    def priced(self, where: Option, price: Price, load: tuple[float, float] = (0.0, 0.0)) -> Option:
        """`where` (kind, levels and the bytes it holds in them) with its price: reading the weight there
        (`price`) plus bringing it there (`load`: energy and cycles)."""
        return dataclasses.replace(where, cost=price.pj + load[0], stage=tuple(sorted(price.stage.items())),
                                   cycles=price.cycles + load[1], traffic=tuple(sorted(price.traffic.items())))

    def _arena_fits(self, arena: int, quiet: bool = True) -> None:
        """The activations alone fit somewhere, or an error that says so (not that the weights do not fit)."""
        places = [m for m in self.t.memories if "activations" in m.holds or (m.off_chip and self.spill)]
        if quiet and any(arena <= m.capacity_bytes for m in places):
            return
        largest = max(places or list(self.t.memories), key=lambda m: m.capacity_bytes)
        task = max(self.module.graphs.values(), key=self.arena_size).name
        raise OptionError(
            f"allocate: the activation arena does not fit {self.t.name}: task {task!r} needs {arena:,} bytes of "
            f"activations at once, and the largest memory that may hold them, {largest.name}, has "
            f"{largest.capacity_bytes:,}; use a smaller batch or sequence length, or a target with more memory "
            "for activations")

    def problem(self) -> Problem:
        tasks = tuple(phases.tasks(self.module.graphs))
        arena = align_up(max(self.arena_size(g) for g in self.module.graphs.values()), self.t.alignment_bytes)
        self._arena_fits(arena)
        items = [self._item(w, tasks) for w in self.module.weights.values()]
        arena_options = self._arena_options(tasks, arena)
        self.arena_bytes = arena
        state_options = self._state_options()
        banks, dram_pj, constant = self.static_terms()
        return Problem(items, {m.name: m.capacity_bytes for m in self.t.memories}, arena_options, tasks,
                       banks=banks, dram_pj=dram_pj, constant_pj=constant, state_options=state_options)

    def _item(self, w: Weight, tasks: tuple[str, ...]) -> Item:
        """The places weight `w` may live, each priced."""
        if w.role is None:
            raise OptionError("allocate needs weight roles: run 'share' first")
        owners = tasks if w.role.shared else w.role.tasks
        p_use = sum(self.wl.mix[t] for t in owners)
        size = align_up(w.nbytes, self.t.alignment_bytes)
        options = self._kept_options(w, size, p_use)
        if not w.role.shared:
            options += self._staged_options(w, size, p_use)
        if not options:
            self._no_place(w, size)
        return Item(w.name, owners if len(owners) == 1 else tasks, options)

    def _kept_options(self, w: Weight, size: int, p_use: float) -> list[Option]:
        """`w` resident in a level (refilled after every power-up that runs its task when the level is volatile),
        or streamed from off chip."""
        cold = self.wl.cold_start_rate
        options = []
        for m in self.kept_levels(w, size):
            price = self.pricer.item(w.name, m.name)
            if price is None:
                continue
            load = (0.0, 0.0)
            if m.volatile and not m.off_chip:  # refilled after every power-up that runs its task
                load = self.load(m, cold * p_use * w.nbytes)
            here = size if w.role.shared or not m.volatile else size * (1 - cold * (1 - p_use))
            where = Option("streamed" if m.off_chip else "resident", m.name, None, 0.0, resident=((m.name, size),),
                           present=((m.name, here),), uses_dram=m.off_chip or (m.volatile and self.store is not None))
            options.append(self.priced(where, price, load))
        return options

    def kept_levels(self, w: Weight, size: int) -> list[MemoryLevel]:
        """The levels `w` may be kept in (resident, or streamed from off chip)."""
        return [m for m in self.t.memories if self.can_hold(m, w) and size <= m.capacity_bytes]

    def staged_levels(self, w: Weight, size: int, p_use: float) -> list[tuple[MemoryLevel, float, list]]:
        """(on-chip level, loads per inference, off-chip homes) for every place task-specific `w` may be staged
        into when its task starts, where the level's write endurance allows the rewrites."""
        cold = self.wl.cold_start_rate
        out = []
        homes = [m for m in self.t.memories if m.off_chip and self.can_hold(m, w)]
        for on in self.t.on_chip:
            if "weights" not in on.holds or not self.can_hold(on, w) or size > on.capacity_bytes:
                continue
            lost = (1 - self.wl.switch_rate) * cold if on.volatile else 0.0
            loads = p_use * (self.wl.switch_rate + lost)
            writes = loads * self.wl.lifetime_inferences
            if writes > on.write_endurance:
                self.excluded.append(f"@{w.name} may not be staged in {on.name}: {writes:.3g} rewrites over "
                                     f"{self.wl.lifetime_years:g} years exceed its endurance of "
                                     f"{on.write_endurance:.3g}")
                continue
            out.append((on, loads, homes))
        return out

    def _staged_options(self, w: Weight, size: int, p_use: float) -> list[Option]:
        """Task-specific `w` kept off chip and staged on chip when its task starts (`staged_levels`)."""
        options = []
        for on, loads, homes in self.staged_levels(w, size, p_use):
            for home in homes:
                price = self.pricer.item(w.name, on.name)
                if price is None:
                    continue
                where = Option("staged", on.name, home.name, 0.0, resident=((home.name, size),),
                               swap=((on.name, size),), uses_dram=True)
                o = self.priced(where, price, self.load(on, loads * w.nbytes))
                # keeping a weight resident wins a tie with staging it (no swap region needed)
                options.append(dataclasses.replace(o, cost=o.cost * (1 + 1e-9)))
        return options

    def _no_place(self, w: Weight, size: int) -> NoReturn:
        """Why no memory may hold `w`: a mapping that failed, a rule that excludes it, or the room."""
        if self.pricer.failures:
            raise self.pricer.failures[-1]
        if self.excluded:
            raise OptionError(f"allocate: no memory of {self.t.name} may hold weight @{w.name} "
                              f"({self.excluded[-1]})")
        places = [m for m in self.t.memories if "weights" in m.holds]
        room = ", ".join(f"{m.name} {m.capacity_bytes:,}" for m in places) or "none"
        spill = "" if self.spill else "--spill to keep it off chip, "
        raise OptionError(f"allocate: weight @{w.name} needs {size:,} bytes and no memory of {self.t.name} "
                          f"that may hold weights has them ({room}); use {spill}a compression "
                          "(--compress, --quantize) or a target with more memory for weights")

    def arena_levels(self, tasks: tuple[str, ...], arena: int) -> list[MemoryLevel]:
        """The levels the activation arena may live in."""
        out = []
        # activations go off chip only when no on-chip level that may hold them has room (as --spill for weights)
        on_chip_room = any("activations" in m.holds and not m.off_chip and arena <= m.capacity_bytes
                           for m in self.t.memories)
        traffic = activation_traffic(self.module, self.t.compute.activation_bits)
        act_wr = sum(self.wl.runs(g) * traffic[g][1] for g in self.module.graphs)
        for m in self.t.memories:
            if not ("activations" in m.holds or (m.off_chip and self.spill)) or arena > m.capacity_bytes:
                continue
            if m.off_chip and on_chip_room:
                continue
            writes_per_cell = act_wr / max(1, arena) * self.wl.lifetime_inferences
            if writes_per_cell > m.write_endurance:
                self.notes.append(f"activations may not live in {m.name}: {writes_per_cell:.3g} writes per cell "
                                  f"over the lifetime exceed its endurance {m.write_endurance:.3g}")
                continue
            out.append(m)
        return out

    def _arena_options(self, tasks: tuple[str, ...], arena: int) -> list[ArenaOption]:
        """The levels the activation arena may live in, each priced."""
        arena_options = []
        for m in self.arena_levels(tasks, arena):
            price = self.pricer.arena(m.name)
            if price is None:
                continue
            arena_options.append(ArenaOption(m.name, arena, price.pj, m.off_chip, tuple(sorted(price.stage.items())),
                                             price.cycles, tuple(sorted(price.traffic.items())), price.dynamic))
        if not arena_options and self.pricer.failures:
            raise self.pricer.failures[-1]
        if not arena_options:
            self._arena_fits(arena, quiet=False)
        return arena_options

    def _state_options(self) -> list[ArenaOption]:
        """The levels a decoder's KV cache may live in, each priced (`Pricer.cache`); none without a cache."""
        size = state_bytes(self.module, self.t)
        if not size:
            return []
        options = []
        for m in state_levels(self.module, self.t, self.options.cache):
            price = self.pricer.cache(m.name)
            if price is None:
                continue
            options.append(ArenaOption(m.name, size, price.pj, m.off_chip, tuple(sorted(price.stage.items())),
                                       price.cycles, tuple(sorted(price.traffic.items())), price.dynamic))
        if not options and self.pricer.failures:
            raise self.pricer.failures[-1]
        return options

    def static_terms(self) -> tuple[list[BankModel], float, float]:
        """The static energy the options' prices leave out, linearised around the current placement (runtime
        R0, gated banks' leakage G0): each gated level's banks, holding data or empty, over R0 and the idle gap
        to the next request on a powered chip (`BankModel`, with the wake-up of a held bank after a power-up),
        less G0 x R0 (the prices charge G0 per cycle); the leakage that runs all along over that gap; and a
        DRAM's background outside its transfers (in the inference as `Pricer.timing` counts it; self-refresh or
        power-down in the gap to the next request); the wake-up of banks never gated after a power-up."""
        runtime_ns, gap_ns = self.runtime * self.cycle_ns, self.gap_ns
        _, down, exits = self.timing
        cold = self.wl.cold_start_rate
        powered = (1 - cold) * gap_ns      # a powered chip idles between requests; a power-gated one is off
        banks = [BankModel(m.name, m.bank_bytes, m.banks,
                           hold * (runtime_ns + powered) * m.bank_leakage_mw + cold * wake,
                           off * (runtime_ns + powered) * m.bank_leakage_mw)
                 for m, hold, off, wake in self.gated]
        dram_pj = 0.0
        for m in self.t.memories:
            if m.dram is not None:
                d = m.dram
                down_ns = down[m.name] * self.cycle_ns
                dram_pj += (d.self_refresh_mw * runtime_ns
                            + (d.power_down_mw + d.refresh_mw - d.self_refresh_mw) * down_ns
                            + exits[m.name] * d.self_refresh_exit_pj
                            + gap_ns * (cold * d.self_refresh_mw + (1 - cold) * self.warm_gap_mw(m)))
        return banks, dram_pj, self.always_mw * powered - self.held_leak * runtime_ns + cold * self.wake_all

    def arena_size(self, graph) -> int:
        return graph.arena.size
