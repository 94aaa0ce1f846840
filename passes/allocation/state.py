"""A decoder's state region (its KV cache, `ir.state`): the levels it may live in, what its steps run, where it
ends up.

The cache's level is a variable of the allocator's integer program, like the
activation arena's (`solvers.Problem.state_options`): one option per level it
may live in (`state_homes`: a level written during operation, SRAM or DRAM,
a non-volatile level only if the target says it is field-writable, never
write-once RRAM), each with the level's capacity taken by the whole region
and priced as the simulator charges it (`prices.Pricer.cache`): every node
that reads or writes the cache (a step's new keys and values written, the
valid tokens read), mapped and costed with the cache there, as often as it
runs in a request (`cache_runs`: at decode step i of a request with a
P-token prompt the cache holds P + i valid tokens, and a node along the
cache's capacity costs that share of its full-length cost; prefill runs once
per prompt chunk), with the leakage over its cycles. The static terms see
the region like the arena's: volatile data present while a request runs, in
as many banks as it needs, and a DRAM powered when it lives there. So the
cache stays on chip only when that saves more than it costs the weights it
pushes off chip (or into streaming), and a longer context (a larger cache)
that no longer fits moves it to a farther level. All graphs share one region
(tasks run one at a time) and it sits at the top of its level.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from aalbert.errors import OptionError
from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module
from aalbert.ir.phases import DECODE, PREFILL, parse_key
from aalbert.targets.hardware.spec import MemoryLevel, Target
from aalbert.targets.sim.generation import capacity, scaled_nodes, step_tokens
from aalbert.targets.sim.workload import Workload


@dataclass(frozen=True)
class StatePlace:
    level: str
    offset: int
    size: int


def state_bytes(module: Module, target: Target) -> int:
    """Bytes of the largest graph's state region (0 without state)."""
    return align_up(max((g.arena.state for g in module.graphs.values() if g.arena is not None), default=0),
                    target.alignment_bytes)


def state_homes(target: Target) -> list[MemoryLevel]:
    """The levels a cache may live in, nearest first."""
    homes = [m for m in target.memories if m.field_writable and (m.off_chip or m.holds)]
    return sorted(homes, key=lambda m: (m.off_chip, m.read_pj_per_byte))


def state_levels(module: Module, target: Target, only: str | None = None) -> list[MemoryLevel]:
    """The levels the cache fits alone (`only`: that one level); one `OptionError` when there are none."""
    size = state_bytes(module, target)
    homes = [m for m in state_homes(target) if size <= m.capacity_bytes and only in (None, m.name)]
    if not homes and only is not None:
        raise OptionError(f"allocate: the KV cache ({size:,} bytes) may not live in {only}: it is not a memory of "
                          f"{target.name} that is written during operation and has room for it")
    if not homes:
        raise OptionError(f"allocate: the KV cache ({size:,} bytes) fits no memory of {target.name} that is "
                          "written during operation; use a shorter context (cache capacity) or a target with more "
                          "memory")
    return homes


@dataclass(frozen=True)
class Runs:
    """How often a node of a graph with a cache runs per request, expected over the task mix: `steps` runs, and
    for a node along the cache's capacity (`along`) the valid tokens summed over them (`tokens`; the simulator
    scales such a node's work from `capacity` to the valid tokens, `generation.at_length`)."""

    steps: float
    tokens: float
    capacity: int
    along: bool

    def weights(self, affine: bool) -> tuple[float, float]:
        """(runs at full length, runs at one valid token) that sum to this node's cost over the request: a node
        along the capacity costs `tokens / capacity` full runs when its cost is linear in the valid tokens
        (a product: its cycles and traffic are scaled alike), and the affine mix of the two lengths when it
        is not (`affine`: a copy's fixed latency does not scale); any other node `steps` full runs."""
        if not self.along:
            return self.steps, 0.0
        if not affine or self.capacity <= 1:
            return self.tokens / self.capacity, 0.0
        full = (self.tokens - self.steps) / (self.capacity - 1)
        return full, self.steps - full


def cache_runs(module: Module, workload: Workload) -> dict[tuple[str, int], Runs]:
    """Per (graph, node index) of a graph with a cache: how often the node runs per request (`Runs`). A request
    is ceil(P / chunk) prefill chunks (L valid tokens: the chunk's end) and T decode steps (L = P + 1 ... P + T),
    P the workload's prompt (default: the prefill graph's tokens) and T its generated tokens."""
    prefill = next((g for n, g in module.graphs.items() if parse_key(n).phase == PREFILL), None)
    chunk = max(1, step_tokens(prefill)) if prefill is not None else 1
    prompt = workload.prompt or chunk
    out: dict[tuple[str, int], Runs] = {}
    for name, graph in module.graphs.items():
        cap = capacity(graph)
        if not cap:
            continue
        key = parse_key(name)
        if key.phase == PREFILL:
            valid = [min(prompt, (k + 1) * chunk) for k in range(math.ceil(prompt / chunk))]
        elif key.phase == DECODE:
            valid = [prompt + i for i in range(1, workload.generate + 1)]
        else:
            valid = [cap]
        share = workload.mix[key.task]
        tokens = share * sum(min(n, cap) for n in valid)
        scaled, _ = scaled_nodes(graph)
        for i in range(len(graph.nodes)):
            out[name, i] = Runs(share * len(valid), tokens, cap, i in scaled)
    return out


def place_of(level: str, size: int, target: Target) -> StatePlace:
    """The region at the top of `level`."""
    align = target.alignment_bytes
    return StatePlace(level, (target.level(level).capacity_bytes - size) // align * align, size)


def record_state(module: Module, place: StatePlace | None) -> None:
    """Each graph's arena says where its state region is."""
    if place is None:
        return
    for graph in module.graphs.values():
        if graph.arena is not None and graph.arena.state:
            graph.arena = dataclasses.replace(graph.arena, state_level=place.level, state_offset=place.offset)
