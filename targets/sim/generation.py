"""Generation on a decoder: what a token costs, with the cache's valid tokens, and a stream of requests.

A decoder task is two programs (`ir.phases`): prefill and decode. Their
KV cache is static (`ir.state`: `capacity` slots), but a step reads only
the tokens written so far: at decode step i of a request with a P-token
prompt the cache holds L = P + i valid tokens. So the cost of a step is its
program with every instruction of a node that works along the cache's
capacity (attention's products with the keys and values, the scores'
softmax and mask, the copies of the cache) scaled from `capacity` to L
(`at_length`), then simulated. The nodes that do are found from the graph:
the values derived from a state input that still have an axis of
`capacity` (an `index_copy` into the cache writes only its new entries and
is not scaled). A prompt longer than the prefill graph's tokens runs in
chunks of that many (the last one padded), each attending to the tokens
before it.

A request of task t with P prompt tokens and T generated tokens is one
prefill and T decode steps: time to first token (TTFT) is its wait, the
copies a task switch or a power-up needs (`requests`), and the prefill; time
per output token (TPOT) is the mean of its T decode steps, with L growing;
tokens per second is T over the decode time; energy per token is a
request's energy (switch copies, idle gaps and leakage included) over T.
Step costs are simulated at up to `SAMPLES` lengths and interpolated
linearly in between (they are affine in L but for tile rounding).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aalbert.errors import OptionError
from aalbert.ir.analysis import state_layout
from aalbert.ir.graph import Graph
from aalbert.ir.module import Module
from aalbert.ir.phases import DECODE, PREFILL, parse_key
from aalbert.ir.registry import OpKind, get_op
from aalbert.ir.state import state_pairs
from aalbert.targets.codegen.program import Instr, Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.sim.requests import Request, Served, StreamResult, run_stream
from aalbert.targets.sim.timing import SimResult

SAMPLES = 9              # cache lengths simulated per request shape; others are interpolated
DEFAULT_GENERATE = 128   # tokens generated per request when not told (at most what the cache leaves)


class GenerationError(OptionError):
    """Prompt and generated tokens a decoder's cache cannot hold."""


def is_decoder(module: Module) -> bool:
    return any(parse_key(name).phase == DECODE for name in module.graphs)


def capacity(graph: Graph) -> int:
    caches = [p for p in state_pairs(graph) if p.is_cache]
    return caches[0].capacity if caches else 0


def step_tokens(graph: Graph) -> int:
    """Tokens a phase writes into the cache per run (the index of its first `index_copy` into state)."""
    state, _ = state_layout(graph, 16, 1)
    for node in graph.nodes:
        if node.op == "index_copy" and node.inputs[0] in state:
            return node.inputs[1].type.shape[0]
    return 0


@dataclass(frozen=True)
class Lengths:
    prompt: int      # P
    generate: int    # T


def lengths(module: Module, prompt: int | None = None, generate: int | None = None) -> Lengths:
    """P and T for `module`: P defaults to the prefill graph's tokens, T to `DEFAULT_GENERATE` or what the
    cache leaves; one `GenerationError` when P + T exceed the cache."""
    prefill = next((g for n, g in module.graphs.items() if parse_key(n).phase == PREFILL), None)
    decode = next(g for n, g in module.graphs.items() if parse_key(n).phase == DECODE)
    cap = capacity(decode)
    p = prompt if prompt is not None else (step_tokens(prefill) if prefill is not None else 1)
    t = generate if generate is not None else max(1, min(DEFAULT_GENERATE, cap - p))
    if p < 1 or t < 1:
        raise GenerationError(f"--prompt and --generate must be at least 1 token (got {p} and {t})")
    if p + t > cap:
        raise GenerationError(f"--prompt {p} plus --generate {t} tokens exceed the KV cache's capacity of {cap} "
                              "tokens (compile the model with a longer cache)")
    return Lengths(p, t)


def scaled_nodes(graph: Graph) -> tuple[dict[int, str], int]:
    """The nodes whose work runs along the cache's capacity, each with the product dimension that does ("k"
    when its first operand holds cache positions, as attention's probabilities times the values; else "n",
    as a query times the keys; "" for a node that is not a product), and that capacity (0 without a cache)."""
    cap = capacity(graph)
    if not cap:
        return {}, 0
    state, _ = state_layout(graph, 16, 1)
    along = {id(v) for v in state}
    nodes: dict[int, str] = {}
    for i, node in enumerate(graph.nodes):
        if not any(id(v) in along for v in node.inputs):
            continue
        if node.op == "index_copy" and node.inputs[0] in state:
            continue  # writes only the new entries
        product = get_op(node.op).kind is OpKind.MATMUL
        nodes[i] = ("k" if id(node.inputs[0]) in along else "n") if product else ""
        along.update(id(v) for v in node.outputs if cap in v.type.shape)
    return nodes, cap


def _scale(n: int, f: float) -> int:
    return max(1, round(n * f)) if n else 0


def _scaled(i: Instr, f: float, dim: str, length: int) -> Instr:
    dims = {dim: length} if i.kind == "gemm" and dim else {}
    return dataclasses.replace(
        i, nbytes=_scale(i.nbytes, f), elements=_scale(i.elements, f), acc=_scale(i.acc, f),
        regfill=_scale(i.regfill, f), cycles=i.cycles * f, m=dims.get("m", i.m), k=dims.get("k", i.k),
        n=dims.get("n", i.n), traffic=tuple((lvl, _scale(r, f), _scale(w, f)) for lvl, r, w in i.traffic))


def at_length(program: Program, graph: Graph, length: int) -> Program:
    """`program` with the cache holding `length` valid tokens: its nodes along the capacity scaled to them."""
    nodes, cap = scaled_nodes(graph)
    if not cap or length >= cap:
        return program
    f = length / cap
    instrs = [_scaled(i, f, nodes[i.node], length) if i.node in nodes and i.kind != "power" else i
              for i in program.instrs]
    return Program(program.target, program.task, instrs, program.mappings)


@dataclass(frozen=True)
class Step:
    seconds: float
    energy: dict[str, float]
    dram_bytes: float


def _step(sim: SimResult, target: Target) -> Step:
    off = sum(rw[0] + rw[1] for lvl, rw in sim.traffic.items()
              if lvl in target.memory_names and target.level(lvl).off_chip)
    return Step(sim.seconds, dict(sim.energy), off)


def _mix(a: Step, b: Step, w: float) -> Step:
    keys = set(a.energy) | set(b.energy)
    return Step(a.seconds + (b.seconds - a.seconds) * w,
                {k: a.energy.get(k, 0.0) + (b.energy.get(k, 0.0) - a.energy.get(k, 0.0)) * w for k in sorted(keys)},
                a.dram_bytes + (b.dram_bytes - a.dram_bytes) * w)


Simulate = Callable[[Program, bool], SimResult]   # (program, after a power-up?) -> its simulation


@dataclass
class PhaseCosts:
    """One decoder task's steps at given cache lengths: its prefill chunks and decode steps."""

    program: Program
    graph: Graph
    simulate: Simulate
    target: Target
    _known: dict[tuple[int, bool], Step] = field(default_factory=dict)

    def at(self, length: int, cold: bool = False) -> Step:
        key = (length, cold)
        if key not in self._known:
            self._known[key] = _step(self.simulate(at_length(self.program, self.graph, length), cold), self.target)
        return self._known[key]

    def steps(self, lengths: list[int]) -> list[Step]:
        """Each length's step: simulated at up to `SAMPLES` of them, interpolated in between."""
        if len(lengths) <= SAMPLES:
            return [self.at(n) for n in lengths]
        picks: list[int] = sorted({lengths[round(k * (len(lengths) - 1) / (SAMPLES - 1))] for k in range(SAMPLES)})
        out = []
        for n in lengths:
            j = min(int(np.searchsorted(picks, n)), len(picks) - 1)
            if picks[j] == n or j == 0:
                out.append(self.at(picks[j]))
                continue
            lo, hi = picks[j - 1], picks[j]
            out.append(_mix(self.at(lo), self.at(hi), (n - lo) / (hi - lo)))
        return out


def _seconds(steps: list[Step]) -> float:
    return sum(s.seconds for s in steps)


def _pj(steps: list[Step]) -> float:
    return sum(sum(s.energy.values()) for s in steps)


@dataclass(frozen=True)
class TaskTokens:
    """One request of a task, alone on a powered chip: prefill and each decode step."""

    prefill: list[Step]    # chunks
    decode: list[Step]     # step i at L = P + i

    @property
    def prefill_seconds(self) -> float:
        return _seconds(self.prefill)

    @property
    def prefill_pj(self) -> float:
        return _pj(self.prefill)

    @property
    def decode_seconds(self) -> float:
        return _seconds(self.decode)

    @property
    def decode_pj(self) -> float:
        return _pj(self.decode)

    @property
    def tpot(self) -> float:
        return self.decode_seconds / len(self.decode)


def task_tokens(prefill: PhaseCosts, decode: PhaseCosts, n: Lengths, cold: bool) -> TaskTokens:
    """A request's steps: ceil(P / chunk) prefill chunks (the first after a power-up when `cold`), then T
    decode steps at L = P + 1 ... P + T."""
    chunk = max(1, step_tokens(prefill.graph))
    ends = [min(n.prompt, (k + 1) * chunk) for k in range(math.ceil(n.prompt / chunk))]
    chunks = [prefill.at(end, cold and k == 0) for k, end in enumerate(ends)]
    return TaskTokens(chunks, decode.steps([n.prompt + i for i in range(1, n.generate + 1)]))


@dataclass
class GenerationResult:
    """A stream of generation requests: per request its TTFT, TPOT and latency; energy per token."""

    lengths: Lengths
    stream: StreamResult
    ttft: np.ndarray          # seconds, per request
    tpot: np.ndarray          # seconds, per request (mean of its decode steps)
    tasks: dict[str, TaskTokens]   # each task's request on a powered chip
    switch_bytes: dict[str, int]   # per task: bytes a switch to it copies (its staged adapters)

    @property
    def tokens(self) -> int:
        return self.stream.requests * self.lengths.generate

    @property
    def waits(self) -> np.ndarray:
        """Seconds each request queued behind earlier ones (part of its TTFT; loading weights is not)."""
        return self.stream.queued

    @property
    def energy_per_token_pj(self) -> float:
        return self.stream.energy_pj / self.tokens

    @property
    def tokens_per_second(self) -> float:
        """Decode throughput: tokens over the time decode steps take."""
        return float(1.0 / self.tpot.mean())


def run_generation(requests: list[Request], module: Module, target: Target, costs: dict[str, PhaseCosts],
                   inferences_per_wakeup: float, n: Lengths) -> GenerationResult:
    """`requests` (over task names) as generation requests of `n` tokens; `costs` by graph key."""
    warm: dict[str, TaskTokens] = {}
    cold: dict[str, TaskTokens] = {}
    ttft: list[float] = []
    tpot: list[float] = []

    def tokens(task: str, after_power_up: bool) -> TaskTokens:
        table = cold if after_power_up else warm
        if task not in table:
            table[task] = task_tokens(costs[f"{task}/{PREFILL}"], costs[f"{task}/{DECODE}"], n, after_power_up)
        return table[task]

    def serve(_i: int, r: Request, after_power_up: bool, waited: float) -> Served:
        t = tokens(r.task, after_power_up)
        energy: dict[str, float] = {}
        dram = 0.0
        for s in t.prefill + t.decode:
            for k, v in s.energy.items():
                energy[k] = energy.get(k, 0.0) + v
            dram += s.dram_bytes
        ttft.append(waited + t.prefill_seconds)
        tpot.append(t.tpot)
        return Served(t.prefill_seconds + t.decode_seconds, energy, dram)

    first = {task: costs[f"{task}/{PREFILL}"].simulate(costs[f"{task}/{PREFILL}"].program, True)
             for task in dict.fromkeys(r.task for r in requests)}
    stream = run_stream(requests, module, target, first, inferences_per_wakeup, serve)
    switch = {task: sum(w.nbytes for w in module.weights.values() if w.placement is not None
                        and w.placement.residency == "staged" and task in w.role.tasks) for task in first}
    for task in first:
        tokens(task, False)
    return GenerationResult(n, stream, np.array(ttft), np.array(tpot), warm, switch)
