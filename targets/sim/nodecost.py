"""What one node of a placed task graph costs on a target: energy by component, cycles, bytes per level.

Nodes run one after another (see `targets.codegen.lower`), so an inference's cycles
are the sum of its nodes' and its energy the sum of theirs plus leakage: a
node can be costed alone. A matrix product with a mapping policy of
`search` is costed by the mapping model (`targets.mapping.cost`) with its
best mapping; any other node (and a product under `fixed`, today's
chunking) is lowered alone and its instructions simulated. Either way the
figures are those the simulator then reports for the whole program.

`NodeCoster.cost(graph, index, levels, arena_level, cache_level)` answers for
weights at given levels and a decoder's KV cache (`ir.state`) at a given level
(to price every placement option) and caches by what the cost depends on: the
op, the types, the weights' encodings and levels, the arena's level, the
cache's level for a node that reads or writes the cache, and the bytes free
for staging.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aalbert.ir.analysis import state_layout
from aalbert.ir.builder import node_kind
from aalbert.ir.graph import Graph, Node, Value
from aalbert.ir.mapping import Mapping
from aalbert.ir.module import Module
from aalbert.ir.placement import Placement
from aalbert.ir.registry import OpKind, Trait, get_op, op_has
from aalbert.targets.hardware.spec import Target
from aalbert.targets.mapping.problem import arch_of, gemm_of, weight_of
from aalbert.targets.mapping.search import MappingError, search

POLICIES = ("search", "fixed")


@dataclass(frozen=True)
class NodeCost:
    energy: dict[str, float]            # component -> pJ, dynamic
    cycles: float
    reads: dict[str, float]             # memory level -> bytes
    writes: dict[str, float]
    mapping: Mapping | None = None
    staged: tuple[str, float] | None = None   # (level, bytes) a staging region needs while it runs

    @property
    def dynamic_pj(self) -> float:
        return sum(self.energy.values())


def is_product(node: Node) -> bool:
    """A matrix product with work to map (an empty one is lowered as before: nothing to compute)."""
    return get_op(node.op).kind is OpKind.MATMUL and all(v.type.numel for v in (*node.inputs, *node.outputs))


class NodeCoster:
    def __init__(self, module: Module, target: Target, policy: str = "search", objective: str = "balanced",
                 free: dict[str, int] | None = None):
        if policy not in POLICIES:
            raise ValueError(f"mapping must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.module, self.t, self.policy, self.objective = module, target, policy, objective
        self.arch = arch_of(target, free)
        self.leak = target.leakage_mw * 1000.0 / target.clock_mhz   # pJ per cycle
        self._cache: dict[tuple, NodeCost] = {}
        self._static: dict[int, tuple] = {}
        self._sigs: dict[tuple, int] = {}   # a node's signature, numbered: keys then hash a number, not types
        self._state: dict[str, frozenset[int]] = {}   # graph -> ids of its state values (the KV cache)

    def weights(self, node: Node) -> list:
        return [w for w in (weight_of(self.module, v) for v in node.inputs) if w is not None]

    def state_values(self, graph: Graph) -> frozenset[int]:
        """The ids of `graph`'s values that live in its state region (`ir.analysis.state_layout`)."""
        ids = self._state.get(graph.name)
        if ids is None:
            arena = graph.arena
            bits, align = (arena.activation_bits, arena.align) if arena is not None else (16, 1)
            ids = self._state[graph.name] = frozenset(id(v) for v in state_layout(graph, bits, align)[0])
        return ids

    def touches_state(self, graph: Graph, node: Node) -> bool:
        """Whether `node` reads or writes `graph`'s state region (a view of it moves nothing)."""
        ids = self.state_values(graph)
        if not ids or get_op(node.op).kind is OpKind.SOURCE or op_has(node.op, Trait.VIEW):
            return False
        return any(id(v) in ids for v in (*node.inputs, *node.outputs))

    def set_free(self, free: dict[str, int]) -> None:
        """New bytes free for staging (a new placement round): products are priced again, the rest is kept."""
        if free != self.arch.free:
            self.arch = arch_of(self.t, free)
            self._cache = {k: v for k, v in self._cache.items() if not k[1]}

    def key(self, node: Node, levels: dict[str, str], arena_level: str, cache_level: str | None = None) -> tuple:
        static = self._static.get(id(node))
        if static is None:
            ws = self.weights(node)
            policy = self.policy if is_product(node) else ""
            # the node's kind (which operands are data: a constant moves no activation bytes) and its weights
            sig = node_kind(node) + (tuple((w.type, w.encoding, w.nbytes) for w in ws), policy)
            number = self._sigs.setdefault(sig, len(self._sigs))
            static = self._static[id(node)] = (number, policy, tuple(w.name for w in ws), tuple(ws))
        number, policy, names, ws = static
        key = number, policy, tuple(levels.get(n) or w.placement.level for n, w in zip(names, ws)), arena_level
        return key if cache_level is None else (*key, cache_level)

    def cost(self, graph: Graph, index: int, levels: dict[str, str], arena_level: str,
             cache_level: str | None = None, length: int | None = None) -> NodeCost:
        """The node with weights at `levels` (else where placed), activations in `arena_level` and, for a node
        that reads or writes the state region, that region in `cache_level` (None: the arena's level); with
        `length`, a node that is not a mapped product as a step with that many valid cache tokens runs it
        (`generation.at_length`)."""
        node = graph.nodes[index]
        cache = cache_level if cache_level != arena_level and self.touches_state(graph, node) else None
        mapped = is_product(node) and self.policy == "search"
        key = self.key(node, levels, arena_level, cache)
        if length is not None and not mapped:
            key = (*key, "length", length)
        if key not in self._cache:
            if mapped:
                self._cache[key] = self.mapped(graph, node, levels, arena_level, cache)
            else:
                self._cache[key] = self.simulated(graph, index, levels, arena_level, cache, length)
        return self._cache[key]

    def mapped(self, graph: Graph, node: Node, levels: dict[str, str], arena_level: str,
               cache_level: str | None = None) -> NodeCost:
        g = gemm_of(self.module, node, self.t, arena_level, levels)
        if cache_level is not None:  # operands in the state region are read (or written) where it lives
            ids = self.state_values(graph)

            def home(v: Value, default: str) -> str:
                return cache_level if id(v) in ids else default
            second = node.inputs[1]
            g = dataclasses.replace(g, a_home=home(node.inputs[0], g.a_home), o_home=home(node.output, g.o_home),
                                    w_home=g.w_home if weight_of(self.module, second) is not None
                                    else home(second, g.w_home))
        best = search(g, self.arch, self.objective, self.leak)
        if best is None:  # not in the bytes free now: with the least staging region any mapping needs
            roomy = dataclasses.replace(self.arch, free={m.name: m.capacity_bytes for m in self.t.on_chip})
            least = least_staging(g, roomy)
            if least is not None:
                free = dict(self.arch.free)
                free[least[0]] = max(free.get(least[0], 0), least[1])
                best = search(g, dataclasses.replace(self.arch, free=free), self.objective, self.leak)
        if best is None:
            raise MappingError(no_mapping_message(self.t, graph, node, g, self.arch))
        staged = (best.stage_level, best.staged_bytes) if best.stage_level and best.staged_bytes else None
        mem = self.t.memory_names
        return NodeCost(best.energy, best.cycles, {k: v for k, v in best.reads.items() if k in mem},
                        {k: v for k, v in best.writes.items() if k in mem}, best.mapping, staged)

    def simulated(self, graph: Graph, index: int, levels: dict[str, str], arena_level: str,
                  cache_level: str | None = None, length: int | None = None) -> NodeCost:
        from aalbert.targets.codegen.lower import _Lowering
        from aalbert.targets.sim.generation import at_length
        from aalbert.targets.sim.timing import simulate

        node = graph.nodes[index]
        saved = {}
        for w in self.weights(node):
            saved[w.name] = w.placement
            level = levels.get(w.name) or (w.placement.level if w.placement else None)
            w.placement = Placement(level, "resident", 0)
        saved_arena, saved_map = graph.arena, node.mapping
        graph.arena = dataclasses.replace(graph.arena, level=arena_level, offset=0, state_level=cache_level,
                                          state_offset=0 if cache_level is not None else None)
        if self.policy == "fixed":
            node.mapping = None
        try:
            lw = _Lowering(self.module, self.t, graph)
            for v in graph.inputs:
                if v.offset is not None:
                    lw.note_write(v, [])
            lw.node(index, node)
            program = lw.program
        finally:
            for w in self.weights(node):
                w.placement = saved[w.name]
            graph.arena, node.mapping = saved_arena, saved_map
        if not program.instrs:
            return NodeCost({}, 0.0, {}, {})
        if length is not None:
            program = at_length(program, graph, length)
        sim = simulate(program, self.t)
        energy = sim.dynamic
        mem = self.t.memory_names
        return NodeCost(energy, sim.cycles, {k: rw[0] for k, rw in sim.traffic.items() if k in mem},
                        {k: rw[1] for k, rw in sim.traffic.items() if k in mem})


_LEAST: dict[tuple, tuple[str, float] | None] = {}


def least_staged(g, arch) -> tuple[str, float] | None:
    """(level, bytes) that the mapping of `g` needing the least staging room needs there, among those that run
    with `arch`'s free bytes; None if none runs or none passes a level. Only what fits is computed, not what
    costs (cached per product and architecture)."""
    key = (g.key, arch.key_for(g))
    if key not in _LEAST:
        from aalbert.targets.mapping.cost import staging
        from aalbert.targets.mapping.space import space

        c = space(g, arch, fine=True)
        found = None
        if len(c["df"]):
            feasible, staged, level = staging(g, arch, c)
            if level is not None and feasible.any():
                found = level, float(staged[feasible].min())
        _LEAST[key] = found
    return _LEAST[key]


def least_staging(g, arch) -> tuple[str, int] | None:
    """(level, bytes) of the smallest staging region with which some mapping of `g` runs; None if none does."""
    least = least_staged(g, arch)
    return None if least is None else (least[0], int(least[1]) + 1)


def no_mapping_message(target: Target, graph: Graph, node: Node, g, arch) -> str:
    """Why nothing fits, for the user: the layer, the level, the bytes needed and available, a fix."""
    from aalbert.targets.mapping.space import space

    layer = f"{node.op} %{node.outputs[0].name} of task {graph.name!r} ({g.b}x{g.m}x{g.k}x{g.n})"
    roomy = dataclasses.replace(arch, free={m.name: m.capacity_bytes for m in target.on_chip})
    if len(space(g, roomy, fine=True)["df"]):
        level, need = least_staging(g, roomy) or (next(iter(arch.free), "?"), 0)
        homes = sorted({h for h in (g.a_home, g.w_home, g.o_home) if arch.via.get(h) == level})
        return (f"no mapping of {layer} fits {target.name}: its operands in {', '.join(homes)} pass through {level} "
                f"on their way to the array, and the smallest mapping needs {need:,} bytes of {level} for the blocks "
                f"in transit, where {arch.free.get(level, 0):,} are free after the weights and activations kept there; "
                f"give {level} more capacity_bytes, or keep fewer weights there (another level, or --spill)")
    c = target.compute
    tile = c.rows * c.cols * (g.w_elem + g.w_mask)
    regs = target.parts.registers.entries
    buffers = target.parts.operand_buffers()
    room = max([b.capacity_bytes for b in buffers], default=0)
    return (f"no mapping of {layer} fits {target.name}: one {c.rows}x{c.cols} tile of its stationary operand needs "
            f"{tile:,.0f} bytes in a weight-stationary array's PE registers (each PE holds "
            f"{regs} value{'' if regs == 1 else 's'}) or an operand buffer ({len(buffers)} of at most {room:,} bytes; "
            f"the accumulators hold {target.parts.accumulators.entries:,} partial sums of the {c.rows}-row tiles "
            f"streamed through one), and no dataflow it lists ({', '.join(c.dataflows)}) runs without them; add a "
            f"[[buffer]] with holds = \"operands\" and capacity_bytes >= {2 * tile:,.0f}, [pe_registers] entries >= 2, "
            f"or output_stationary to [compute] dataflows")
