"""What each placement option costs per inference, from the cost of every node (`targets.mapping.nodecost`).

An inference's energy is the sum over its nodes of their dynamic energy plus
the static energy over their cycles (nodes run one after another): the
leakage that runs all along (`Rates.leak`) and, for the memory banks a node
accesses, what they cost more while it runs (a power-gated bank is on, a
DRAM in active standby while its bursts move the node's bytes and in
power-down between them: `Rates.touch`, `Rates.dram_touch`). Each node is charged to one choice of
the allocator:

- a node that reads weights, to its first weight (a `linear`'s matrix, a
  table, a LayerNorm's scale), priced with that weight at each level it may
  take and the node's other weights and the arena where they are now; the
  other weights are charged their own reads (`side` bytes at their level);
- a node without weights that reads or writes a decoder's KV cache (its
  state region, `ir.state`), to the cache's level, at the valid tokens a
  request's steps see (`allocation.state.cache_runs`);
- any other node without weights, to the activation arena's level.

Each node counts as often as a request runs it (`Pricer.runs`): its graph's
share of the task mix, times a decoder's generated tokens for its decode
graph and its prompt's chunks for its prefill graph; a decoder's node along
the cache's capacity (attention's scores and their softmax) at the valid
tokens of each step, as the simulator runs it (`generation.at_length`).

The prices are exact for the placement they were computed around (`State`);
`allocate` prices, solves, and prices again around the solution until the
placement stops changing, so that where a weight lives and how its layers are
mapped agree.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from aalbert.ir.builder import node_kind
from aalbert.ir.graph import Graph, Node
from aalbert.ir.module import Module
from aalbert.ir.registry import OpKind, Trait, get_op, is_data
from aalbert.ir.types import TensorType
from aalbert.passes.allocation.state import Runs, cache_runs
from aalbert.targets.hardware.dram import DramPower
from aalbert.targets.hardware.spec import Target
from aalbert.targets.mapping.problem import weight_of
from aalbert.targets.mapping.search import MappingError
from aalbert.targets.sim.nodecost import NodeCost, NodeCoster, is_product
from aalbert.targets.sim.workload import Workload


@dataclass(frozen=True)
class State:
    """The placement prices are linearised around: every weight's level, the arena's and the KV cache's."""

    levels: dict[str, str]
    arena: str
    cache: str | None = None


@dataclass(frozen=True)
class Rates:
    """Static energy the prices charge per cycle of a node: `leak` (pJ per cycle) all along, and per level
    `touch` (pJ per bank and cycle) for each bank of it the node accesses; `bank_bytes` per level (a DRAM is
    one bank); `activation_bytes` per activation element."""

    leak: float
    touch: dict[str, float]
    bank_bytes: dict[str, int]
    activation_bytes: float
    held_banks: dict[str, int]        # level -> banks holding data at the current placement (what a node can touch)
    drams: dict[str, DramPower] = field(default_factory=dict)   # DRAM levels: active only while bursts move data
    cycle_ns: float = 0.0

    def dram_touch(self, level: str, cycles: float, nbytes: float) -> float:
        """pJ per cycle of a DRAM a node moves `nbytes` to or from over `cycles`, above self-refresh: active
        standby while its bursts move them, power-down between (`DramPower.active_ns`, as the simulator)."""
        d = self.drams[level]
        span = cycles * self.cycle_ns
        on = d.active_ns(span, nbytes) / span if span > 0 else 1.0
        return (on * d.active_mw + (1 - on) * d.power_down_mw + d.refresh_mw - d.self_refresh_mw) * self.cycle_ns


@dataclass
class Price:
    pj: float = 0.0                       # dynamic energy plus leakage over its cycles
    cycles: float = 0.0
    dynamic: float = 0.0                  # of `pj`, the dynamic energy
    traffic: dict[str, float] = None      # memory level -> bytes moved
    stage: dict[str, int] = None          # level -> staging bytes needed

    def __post_init__(self):
        self.traffic = self.traffic or {}
        self.stage = self.stage or {}

    def add(self, cost: NodeCost, weight: float, leak: float, minus: float = 0.0) -> None:
        """Add a node's cost, `weight` times (its task's share), with `leak` pJ per cycle of it."""
        self.pj += weight * (cost.dynamic_pj - minus + leak * cost.cycles)
        self.dynamic += weight * (cost.dynamic_pj - minus)
        self.cycles += weight * cost.cycles
        for lvl, b in list(cost.reads.items()) + list(cost.writes.items()):
            self.traffic[lvl] = self.traffic.get(lvl, 0.0) + weight * b
        if cost.staged is not None:
            lvl, b = cost.staged
            self.stage[lvl] = max(self.stage.get(lvl, 0), int(math.ceil(b)))


class Pricer:
    def __init__(self, module: Module, target: Target, workload: Workload, coster: NodeCoster, state: State,
                 rates: Rates):
        self.module, self.t, self.wl = module, target, workload
        self.coster, self.state, self.rates = coster, state, rates
        self._acts: dict[tuple[str, int, int], float] = {}
        self.main: dict[str, list] = {}     # weight -> [(task, index)] of nodes charged to it
        self.side: dict[str, list] = {}     # weight -> [(task, index)] of nodes that also read it
        self.plain: list = []               # (task, index) of nodes without weights
        self.stateful: list = []            # (task, index) of nodes without weights that read or write the cache
        self.failures: list[MappingError] = []
        self._side: dict[tuple, dict[str, float]] = {}
        self._side_pj: dict[tuple, float] = {}
        self._reps: dict[tuple[str, int], tuple[str, int]] | None = None
        self._spans: list[tuple[tuple[int, int], ...]] | None = None
        for task, graph in module.graphs.items():
            for i, node in enumerate(graph.nodes):
                if node.op in ("weight", "constant"):
                    continue
                ws = [w for w in (weight_of(module, v) for v in node.inputs) if w is not None]
                if not ws:
                    (self.stateful if coster.touches_state(graph, node) else self.plain).append((task, i))
                    continue
                self.main.setdefault(ws[0].name, []).append((task, i))
                for w in ws[1:]:
                    self.side.setdefault(w.name, []).append((task, i))

    def leak(self, task: str, index: int, levels: dict[str, str], arena: str, cost: NodeCost,
             cache: str | None = None) -> float:
        """pJ per cycle of the node: the leakage all along and the banks it accesses (`Rates`), those of the KV
        cache in `cache` for a node that reads or writes it."""
        touch = self.rates.touch
        if not touch:
            return self.rates.leak
        node = self.module.graphs[task].nodes[index]
        nbytes: dict[str, float] = {}
        for w in self.coster.weights(node):
            lvl = levels.get(w.name, self.state.levels.get(w.name))
            nbytes[lvl] = nbytes.get(lvl, 0.0) + w.nbytes
        if cost.staged is not None:
            nbytes[cost.staged[0]] = nbytes.get(cost.staged[0], 0.0) + cost.staged[1]
        if cache is not None and cache != arena:  # the cache's bytes this node moves
            moved = cost.reads.get(cache, 0.0) + cost.writes.get(cache, 0.0)
            if moved:
                nbytes[cache] = nbytes.get(cache, 0.0) + moved
        banks = {lvl: self._banks(lvl, b) for lvl, b in nbytes.items() if lvl in touch}
        if arena in touch and self.rates.bank_bytes[arena]:
            banks[arena] = banks.get(arena, 0) + self._activation_banks(task, index, self.rates.bank_bytes[arena])
        elif arena in touch:
            banks[arena] = 1
        held = self.rates.held_banks
        drams = self.rates.drams
        return self.rates.leak + sum(
            (self.rates.dram_touch(lvl, cost.cycles, cost.reads.get(lvl, 0.0) + cost.writes.get(lvl, 0.0))
             if lvl in drams else touch[lvl]) * min(n, held.get(lvl, n)) for lvl, n in banks.items())

    def _banks(self, level: str, nbytes: float) -> float:
        """Banks `nbytes` lie in, expected over where they start within a bank (a DRAM is one bank)."""
        bank = self.rates.bank_bytes[level]
        return 1.0 if not bank else 1.0 + max(0.0, nbytes - 1) / bank

    def _activation_banks(self, task: str, index: int, bank: int) -> float:
        """Banks the node's activation operands and result lie in (the arena starting on a bank)."""
        key = (task, index, bank)
        if key not in self._acts:
            self._acts[key] = activation_banks(self.module.graphs[task], index, bank, self.rates.activation_bytes)
        return self._acts[key]

    def timing(self, after: dict[str, float]) -> tuple[float, dict[str, float], dict[str, float]]:
        """At the current placement, expected over the task mix: the cycles of one inference (of a decoder's
        request: its steps, each node at the valid tokens it runs at) and, for each DRAM level in `after` (its
        self-refresh threshold in cycles), the idle cycles it spends powered down within the inference and how
        often it leaves self-refresh, as `targets.dram.background` counts them: asleep until its first
        transfer, then powered down in gaps up to the threshold, in self-refresh (left at the next transfer) in
        longer ones (a decoder's steps taken at full length)."""
        runtime, down, exits = 0.0, dict.fromkeys(after, 0.0), dict.fromkeys(after, 0.0)
        reps = self._alike()
        known: dict[tuple[str, int], NodeCost] = {}  # by the first node alike: a long graph has few kinds
        for task, graph in self.module.graphs.items():
            t = 0.0
            steps = 0.0  # a graph with a cache: its cycles per request, each node at the lengths it runs at
            busy: dict[str, list[list[float]]] = {lvl: [] for lvl in after}  # [start, end] cycles of accesses
            for i, node in enumerate(graph.nodes):
                if node.op in ("weight", "constant"):
                    continue
                rep = reps.get((task, i), (task, i))
                cost = known.get(rep)
                if cost is None:
                    cost = known[rep] = self.cost(rep[0], rep[1], self.state.levels, self.state.arena)
                for lvl, spans in busy.items():
                    if cost.reads.get(lvl) or cost.writes.get(lvl):
                        if spans and spans[-1][1] == t:
                            spans[-1][1] = t + cost.cycles
                        else:
                            spans.append([t, t + cost.cycles])
                t += cost.cycles
                if (task, i) in self.node_runs:
                    steps += sum(c.cycles * runs for c, runs in
                                 self.priced_runs(task, i, self.state.levels, self.state.arena))
            share = self.wl.runs(task)
            runtime += steps if steps else share * t
            for lvl, spans in busy.items():
                if not spans:
                    continue
                exits[lvl] += share
                ends = [b for _, b in spans]
                for gap in [a - b for (a, _), b in zip(spans[1:], ends)] + [t - ends[-1]]:
                    if gap > after[lvl]:
                        exits[lvl] += share if gap != t - ends[-1] else 0.0
                    else:
                        down[lvl] += share * gap
        return runtime, down, exits

    def levels_with(self, name: str, level: str) -> dict[str, str]:
        levels = dict(self.state.levels)
        levels[name] = level
        return levels

    def cost(self, task: str, index: int, levels: dict[str, str], arena: str, cache: str | None = None) -> NodeCost:
        """The node's cost with the KV cache in `cache` (default: where the current placement has it)."""
        return self.coster.cost(self.module.graphs[task], index, levels, arena, cache or self.state.cache)

    def side_bytes(self, task: str, index: int, cost: NodeCost) -> dict[str, float]:
        """Bytes a node reads of each of its weights other than the first."""
        key = (task, index, cost.mapping)
        if key not in self._side:
            self._side[key] = self._side_bytes(task, index, cost)
        return self._side[key]

    def _side_bytes(self, task: str, index: int, cost: NodeCost) -> dict[str, float]:
        graph = self.module.graphs[task]
        node = graph.nodes[index]
        ws = [w for w in (weight_of(self.module, v) for v in node.inputs) if w is not None]
        if is_product(node):
            if cost.mapping is None or len(ws) < 2:
                return {}
            bias = ws[1]
            m = math.prod(node.inputs[0].type.shape[:-1])
            return {bias.name: bias.nbytes * math.ceil(m / cost.mapping.block[1])}
        return {w.name: float(w.nbytes) for w in ws[1:]}

    def side_pj_per_byte(self, task: str, index: int, level: str) -> float:
        """Energy per byte of a weight read beside a node's first: its level, the wires, the aux buffer."""
        product = is_product(self.module.graphs[task].nodes[index])
        key = (product, level)
        if key not in self._side_pj:
            self._side_pj[key] = self._side_per_byte(product, level)
        return self._side_pj[key]

    def _side_per_byte(self, product: bool, level: str) -> float:
        m = self.t.level(level)
        pj = m.read_pj_per_byte + self.t.parts.noc.energy_pj_per_byte
        aux = self.t.parts.role("aux")
        if product and aux is not None:
            pj += aux.read_pj_per_byte + aux.write_pj_per_byte
        return pj

    def item(self, name: str, level: str) -> Price | None:
        """What weight `name` at `level` costs per inference (expected over the task mix); None when a layer it
        feeds has no mapping there (`self.failures` keeps why)."""
        try:
            return self._item(name, level)
        except MappingError as e:
            self.failures.append(e)
            return None

    def _item(self, name: str, level: str) -> Price:
        price = Price()
        levels = self.levels_with(name, level)
        for task, i in self.main.get(name, []):
            for cost, runs in self.priced_runs(task, i, levels, self.state.arena):
                minus = sum(b * self.side_pj_per_byte(task, i, levels[w])
                            for w, b in self.side_bytes(task, i, cost).items())
                price.add(cost, runs, self.leak(task, i, levels, self.state.arena, cost), minus)
        for task, i in self.side.get(name, []):
            for cost, runs in self.priced_runs(task, i, self.state.levels, self.state.arena):
                b = self.side_bytes(task, i, cost).get(name, 0.0)
                price.pj += runs * b * self.side_pj_per_byte(task, i, level)
                price.traffic[level] = price.traffic.get(level, 0.0) + runs * b
        return price

    def arena(self, level: str) -> Price | None:
        """What the nodes without weights cost per inference with the activations in `level`, plus how much the
        nodes with weights (priced with the arena where it is now) would cost more or less there; None when a
        layer has no mapping there."""
        try:
            return self._arena(level)
        except MappingError as e:
            self.failures.append(e)
            return None

    def _arena(self, level: str) -> Price:
        price = Price()
        for task, i, shares in self._plain_classes(level):
            for cost, share in self.priced_runs(task, i, {}, level, shares):
                price.add(cost, share, self.leak(task, i, {}, level, cost))
        if level != self.state.arena:
            lv = self.state.levels
            for nodes in self.main.values():
                for task, i in nodes:
                    for (here, times), (now, _) in zip(self.priced_runs(task, i, lv, level),
                                                       self.priced_runs(task, i, lv, self.state.arena)):
                        price.pj += times * (
                            here.dynamic_pj - now.dynamic_pj + self.leak(task, i, lv, level, here) * here.cycles
                            - self.leak(task, i, lv, self.state.arena, now) * now.cycles)
            cache = self.state.cache
            for (task, i), runs in self.cache_runs.items():  # the cache's nodes, priced at the cache's level
                here = self.cost(task, i, lv, level, cache)
                now = self.cost(task, i, lv, self.state.arena, cache)
                price.pj += runs.weights(False)[0] * (
                    here.dynamic_pj - now.dynamic_pj + self.leak(task, i, lv, level, here, cache) * here.cycles
                    - self.leak(task, i, lv, self.state.arena, now, cache) * now.cycles)
        return price

    @functools.cached_property
    def node_runs(self) -> dict[tuple[str, int], Runs]:
        """Every node of a graph with a KV cache, with how often it runs per request (`allocation.state.cache_runs`:
        a prompt longer than the prefill graph's tokens runs it once a chunk; a node along the cache's capacity
        at the valid tokens of each step)."""
        return cache_runs(self.module, self.wl) if self.stateful else {}

    @functools.cached_property
    def cache_runs(self) -> dict[tuple[str, int], Runs]:
        """The nodes that read or write the KV cache, each with how often it runs per request at full length."""
        return {key: self.node_runs[key] for key in self.stateful}

    def runs(self, task: str, index: int) -> tuple[float, float]:
        """(runs at full length, runs at one valid token) a node runs per request, expected over the task mix
        (`Runs.weights`); a node of a graph without a cache runs as often as its graph (`Workload.runs`)."""
        r = self.node_runs.get((task, index))
        if r is None:
            return self.wl.runs(task), 0.0
        return r.weights(affine=not is_product(self.module.graphs[task].nodes[index]))

    def priced_runs(self, task: str, index: int, levels: dict[str, str], arena: str,
                    runs: tuple[float, float] | None = None) -> list[tuple[NodeCost, float]]:
        """The node's cost at each length it runs at (full, then one valid token), each with how often it runs
        there (`runs`, default the node's own: `Pricer.runs`)."""
        graph = self.module.graphs[task]
        full, short = runs if runs is not None else self.runs(task, index)
        return [(self.coster.cost(graph, index, levels, arena, self.state.cache, length), weight)
                for length, weight in ((None, full), (1, short)) if weight]

    def cache(self, level: str) -> Price | None:
        """What the KV cache in `level` costs per request: every node that reads or writes it, with the arena
        where it is now, as often as it runs at the valid tokens of a request's steps (`cache_runs`); None when
        such a node has no mapping there."""
        lv, arena = self.state.levels, self.state.arena
        try:
            price = Price()
            for (task, i), runs in self.cache_runs.items():
                graph = self.module.graphs[task]
                full, short = runs.weights(affine=not is_product(graph.nodes[i]))
                for length, weight in ((None, full), (1, short)):
                    if weight:
                        cost = self.coster.cost(graph, i, lv, arena, level, length)
                        price.add(cost, weight, self.leak(task, i, lv, arena, cost, level))
            return price
        except MappingError as e:
            self.failures.append(e)
            return None

    def _plain_classes(self, level: str) -> list[tuple[str, int, tuple[float, float]]]:
        """The nodes without weights in classes that cost the same with the arena in `level` (one op, types and
        attributes, operands lying alike across its banks, along a KV cache's capacity or not): a (task, index)
        of each class and how often its nodes run per request, summed, at full length and at one valid token
        (`runs`). A long graph of few kinds of node is priced a class at a time."""
        bank = self.rates.bank_bytes.get(level, 0) if level in self.rates.touch else 0
        reps = self._alike()
        spans = self._plain_spans() if bank else None
        classes: dict[tuple, list] = {}
        for k, (task, i) in enumerate(self.plain):
            full, short = self.runs(task, i)
            runs = self.node_runs.get((task, i))
            along = runs is not None and runs.along
            key = (reps[task, i], bank_relative(spans[k], bank) if bank else None, along)
            c = classes.get(key)
            if c is None:
                classes[key] = [task, i, full, short]
            else:
                c[2] += full
                c[3] += short
        return [(task, i, (full, short)) for task, i, full, short in classes.values()]

    def _plain_spans(self) -> list[tuple[tuple[int, int], ...]]:
        """`activation_spans` of each node without weights, in `self.plain`'s order (asked once per level)."""
        if self._spans is None:
            per, graphs = self.rates.activation_bytes, self.module.graphs
            lengths: dict[TensorType, int] = {}
            self._spans = [_node_spans(graphs[task].nodes[i], per, lengths) for task, i in self.plain]
        return self._spans

    def _alike(self) -> dict[tuple[str, int], tuple[str, int]]:
        """Each node without weights -> the first that costs the same as it wherever the arena is: one op, types
        and attributes, constants as the same operands."""
        if self._reps is None:
            first: dict[tuple, tuple[str, int]] = {}
            self._reps = {}
            for task, i in self.plain:
                node = self.module.graphs[task].nodes[i]
                self._reps[task, i] = first.setdefault(node_kind(node), (task, i))
        return self._reps

    def mappings(self, final: State) -> dict[tuple[str, int], NodeCost]:
        """The cost (and mapping) of every product at a placement, for the report and the IR."""
        out = {}
        for task, graph in self.module.graphs.items():
            for i, node in enumerate(graph.nodes):
                if is_product(node):
                    out[task, i] = self.cost(task, i, final.levels, final.arena, final.cache)
        return out


def activation_spans(graph: Graph, index: int, per_element: float) -> tuple[tuple[int, int], ...]:
    """The arena bytes (first, last) of node `index`'s activation operands and result (views touch nothing)."""
    return _node_spans(graph.nodes[index], per_element, {})


def _node_spans(node: Node, per_element: float, lengths: dict[TensorType, int]) -> tuple[tuple[int, int], ...]:
    """`activation_spans` of one node; `lengths` remembers the byte length of each type met."""
    opdef = get_op(node.op)
    if opdef.kind is OpKind.SOURCE or opdef.has(Trait.VIEW):
        return ()
    spans = []
    for values in (node.inputs, node.outputs):
        for v in values:
            at = v.offset
            if at is None or is_data(v):
                continue
            t = v.type
            n = lengths.get(t)
            if n is None:
                n = lengths[t] = max(1, int(t.numel * (per_element if t.dtype.is_float else t.dtype.itemsize)))
            spans.append((at, at + n - 1))
    return tuple(spans)


def bank_relative(spans: tuple[tuple[int, int], ...], bank: int) -> tuple[tuple[int, int], ...]:
    """`spans` moved down by whole banks to start in the first: the same banks apart, so the same bank count."""
    if not spans:
        return spans
    base = min([lo for lo, _ in spans]) // bank * bank
    if not base:
        return spans  # already in the first bank
    return tuple([(lo - base, hi - base) for lo, hi in spans])


def activation_banks(graph: Graph, index: int, bank: int, per_element: float, shifts: int = 16) -> float:
    """Banks of `bank` bytes that node `index`'s activation operands and result lie in (views touch nothing),
    averaged over `shifts` evenly spaced starts of the arena within a bank: where the arena starts is decided
    with the placement."""
    spans = activation_spans(graph, index, per_element)
    if not spans:
        return 0
    total = 0
    for k in range(shifts):
        at = k * bank // shifts
        end = -1
        for first, last in sorted(((lo + at) // bank, (hi + at) // bank) for lo, hi in spans):
            if last > end:  # the banks of this operand not already counted
                total += last - max(first, end + 1) + 1
                end = last
    return total / shifts
