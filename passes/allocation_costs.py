"""What each placement option costs per inference, from the cost of every node (`targets.mapping.nodecost`).

An inference's energy is the sum over its nodes of their dynamic energy plus
the chip's leakage over their cycles (nodes run one after another). Each
node is charged to one choice of the allocator:

- a node that reads weights, to its first weight (a `linear`'s matrix, a
  table, a LayerNorm's scale), priced with that weight at each level it may
  take and the node's other weights and the arena where they are now; the
  other weights are charged their own reads (`side` bytes at their level);
- a node without weights, to the activation arena's level.

The prices are exact for the placement they were computed around (`State`);
`allocate` prices, solves, and prices again around the solution until the
placement stops changing, so that where a weight lives and how its layers are
mapped agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aalbert.ir.module import Module
from aalbert.targets.mapping.nodecost import NodeCost, NodeCoster, is_product
from aalbert.targets.mapping.problem import weight_of
from aalbert.targets.mapping.search import MappingError
from aalbert.targets.spec import Target
from aalbert.targets.workload import Workload


@dataclass(frozen=True)
class State:
    """The placement prices are linearised around: every weight's level and the arena's."""

    levels: dict[str, str]
    arena: str


@dataclass
class Price:
    pj: float = 0.0                       # dynamic energy plus leakage over its cycles
    cycles: float = 0.0
    traffic: dict[str, float] = None      # memory level -> bytes moved
    stage: dict[str, int] = None          # level -> staging bytes needed

    def __post_init__(self):
        self.traffic = self.traffic or {}
        self.stage = self.stage or {}

    def add(self, cost: NodeCost, weight: float, leak: float, minus: float = 0.0) -> None:
        self.pj += weight * (cost.dynamic_pj - minus + leak * cost.cycles)
        self.cycles += weight * cost.cycles
        for lvl, b in list(cost.reads.items()) + list(cost.writes.items()):
            self.traffic[lvl] = self.traffic.get(lvl, 0.0) + weight * b
        if cost.staged is not None:
            lvl, b = cost.staged
            self.stage[lvl] = max(self.stage.get(lvl, 0), int(math.ceil(b)))


class Pricer:
    def __init__(self, module: Module, target: Target, workload: Workload, coster: NodeCoster, state: State):
        self.module, self.t, self.wl, self.coster, self.state = module, target, workload, coster, state
        self.leak = target.leakage_mw * 1000.0 / target.clock_mhz   # pJ per cycle
        self.main: dict[str, list] = {}     # weight -> [(task, index)] of nodes charged to it
        self.side: dict[str, list] = {}     # weight -> [(task, index)] of nodes that also read it
        self.plain: list = []               # (task, index) of nodes without weights
        self.failures: list[MappingError] = []
        self._side: dict[tuple, dict[str, float]] = {}
        self._side_pj: dict[tuple, float] = {}
        for task, graph in module.graphs.items():
            for i, node in enumerate(graph.nodes):
                if node.op in ("weight", "constant"):
                    continue
                ws = [w for w in (weight_of(module, v) for v in node.inputs) if w is not None]
                if not ws:
                    self.plain.append((task, i))
                    continue
                self.main.setdefault(ws[0].name, []).append((task, i))
                for w in ws[1:]:
                    self.side.setdefault(w.name, []).append((task, i))

    def levels_with(self, name: str, level: str) -> dict[str, str]:
        levels = dict(self.state.levels)
        levels[name] = level
        return levels

    def cost(self, task: str, index: int, levels: dict[str, str], arena: str) -> NodeCost:
        return self.coster.cost(self.module.graphs[task], index, levels, arena)

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
            cost = self.cost(task, i, levels, self.state.arena)
            minus = sum(b * self.side_pj_per_byte(task, i, levels[w])
                        for w, b in self.side_bytes(task, i, cost).items())
            price.add(cost, self.wl.mix[task], self.leak, minus)
        for task, i in self.side.get(name, []):
            cost = self.cost(task, i, self.state.levels, self.state.arena)
            b = self.side_bytes(task, i, cost).get(name, 0.0)
            price.pj += self.wl.mix[task] * b * self.side_pj_per_byte(task, i, level)
            price.traffic[level] = price.traffic.get(level, 0.0) + self.wl.mix[task] * b
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
        for task, i in self.plain:
            price.add(self.cost(task, i, {}, level), self.wl.mix[task], self.leak)
        if level != self.state.arena:
            for nodes in self.main.values():
                for task, i in nodes:
                    here = self.cost(task, i, self.state.levels, level)
                    now = self.cost(task, i, self.state.levels, self.state.arena)
                    price.pj += self.wl.mix[task] * (here.dynamic_pj - now.dynamic_pj
                                                     + self.leak * (here.cycles - now.cycles))
        return price

    def mappings(self, final: State) -> dict[tuple[str, int], NodeCost]:
        """The cost (and mapping) of every product at a placement, for the report and the IR."""
        out = {}
        for task, graph in self.module.graphs.items():
            for i, node in enumerate(graph.nodes):
                if is_product(node):
                    out[task, i] = self.cost(task, i, final.levels, final.arena)
        return out
