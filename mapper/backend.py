"""The backend flow on an allocated module: lower every task, simulate it, run a request stream.

Tasks whose programs can only differ in the addresses of their weights (the
same graph, the same arena layout, each weight operand of the same type,
encoding and memory level: adapter-ALBERT's tasks with heads of one width)
have the same cycles, energy and traffic, because the simulator reads no
address. Such tasks are lowered and simulated once; the others' programs are
lowered only when asked for (`Backend.program`), for listings and traces.
Static energy does depend on addresses (which memory banks a task's weights
sit in), and so do the power instructions: each such task's program is the
representative's with its weights' addresses (`power.relocation`), its
power instructions planned on its own banks, and it is simulated again (a
program of a few hundred instructions: cheap next to lowering). Every
simulated program carries its power instructions (`sim.gating`), planned
from a first schedule of the program without them.

A decoder's stream is one of generation requests (`targets.sim.generation`:
a prefill and the workload's generated tokens per request, each decode step
costed at its cache length), over its tasks rather than its graphs.

On a model with off-ramps, `exits` gives what an inference costs up to each
exit test at each operating point, and, when the workload says where
sentences leave (`[exits]`), `policies` runs the stream under every early-exit
and DVFS policy (`targets.policies`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

from aalbert.ir import phases
from aalbert.ir.graph import Graph
from aalbert.ir.module import Module
from aalbert.ir.offramps import off_ramps
from aalbert.targets.codegen.lower import lower
from aalbert.targets.codegen.program import Buf, Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.runtime.exit_policies import PolicyResult, run_policies
from aalbert.targets.sim.exit_costs import ExitCosts
from aalbert.targets.sim.gating import with_power
from aalbert.targets.sim.generation import GenerationResult, PhaseCosts, is_decoder, lengths, run_generation
from aalbert.targets.sim.power import memory_image, relocation
from aalbert.targets.sim.requests import PATTERNS, Pattern, Request, StreamResult, make_stream, read_trace, run_stream
from aalbert.targets.sim.timing import SimResult, simulate
from aalbert.targets.sim.workload import Workload, default_workload


@dataclass(frozen=True)
class Stream:
    """The request stream simulated over the tasks."""

    requests: int = 100
    pattern: str = "round-robin"  # round-robin, random, bursts, or a trace file
    burst: int = 8
    seed: int = 0


@dataclass
class Backend:
    module: Module
    target: Target
    results: dict[str, SimResult]
    stream: StreamResult | None
    same_as: dict[str, str] = field(default_factory=dict)  # task -> the task simulated for it
    _programs: dict[str, Program] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    exits: ExitCosts | None = None                       # on a model with off-ramps
    policies: dict[str, PolicyResult] | None = None      # ... whose workload says where sentences leave
    exit_sources: dict = field(default_factory=dict)     # task -> mapper.exits.ExitSource
    sentences: list = field(default_factory=list)        # the request stream's, where each leaves (`policies`)
    generation: GenerationResult | None = None           # a decoder's stream of generation requests

    def program(self, task: str) -> Program:
        """`task`'s program, with its power instructions (`sim.gating`)."""
        if task not in self._programs:
            self._programs[task] = lower(self.module, self.target, task)
        return self._programs[task]

    def traced(self, task: str) -> SimResult:
        """The simulation that goes with `program(task)` (for its trace)."""
        return self.results[task]

    def programs(self) -> list[Program]:
        return [self.program(t) for t in self.module.graphs]


def timing_signature(module: Module, graph: Graph) -> str:
    """What a task's simulated cycles and energy depend on: the graph, its activation offsets, the arena's
    level, and the type, format, density, byte counts and placement level (not the address) of every
    weight it reads."""
    h = hashlib.sha256()
    ids: dict[int, int] = {}

    def val(v) -> int:
        return ids.setdefault(id(v), len(ids))

    h.update(repr((graph.arena.level if graph.arena else None, graph.arena.size if graph.arena else None)).encode())
    for v in graph.inputs:
        h.update(repr(("in", val(v), v.type, v.offset)).encode())
    for node in graph.nodes:
        attrs: tuple[object, ...]  # what of the node the digest covers, by its repr
        if node.op == "weight":
            w = module.weights[node.attrs["name"].name]
            p = w.placement
            e = w.encoding  # its number format, density and byte counts; not its scales or exponent bias
            attrs = (w.type, e.format, e.bits, e.storage, e.nnz, e.metadata_bytes(w.type), w.nbytes,
                     p.level if p else None)
        elif node.op == "constant":
            attrs = ()
        else:
            attrs = tuple(sorted(node.attrs.items()))
        outs = tuple((val(o), o.type, o.offset) for o in node.outputs)
        h.update(repr((node.op, tuple(val(i) for i in node.inputs), attrs, outs)).encode())
    h.update(repr(("out", tuple(val(v) for v in graph.outputs))).encode())
    return h.hexdigest()


def relocated_program(program: Program, task: str, moves: dict[str, list[tuple[int, int, int]]]) -> Program:
    """`program` as `task`'s: the buffers of data at [lo, hi) of a level moved by delta (`power.relocation`'s
    moves)."""
    table = {lvl: sorted(m) for lvl, m in moves.items() if m}
    if not table:
        return dataclasses.replace(program, task=task)

    def moved(buf: Buf) -> Buf:
        for lo, hi, delta in table.get(buf.level, ()):
            if lo <= buf.offset < hi:
                return dataclasses.replace(buf, offset=buf.offset + delta)
        return buf
    instrs = []
    for i in program.instrs:
        reads, writes = tuple(map(moved, i.reads)), tuple(map(moved, i.writes))
        instrs.append(i if reads == i.reads and writes == i.writes else
                      dataclasses.replace(i, reads=reads, writes=writes))
    return dataclasses.replace(program, task=task, instrs=instrs)


def _requests(tasks: list[str], wl: Workload, stream: Stream) -> list[Request]:
    if stream.pattern in PATTERNS:
        pattern = Pattern(stream.pattern, wl.mix, wl.switch_rate, stream.burst, stream.seed)
        return make_stream(pattern, tasks, stream.requests, wl.inferences_per_second)
    return read_trace(stream.pattern, tasks, wl.inferences_per_second)


def run_backend(module: Module, target: Target, workload: Workload | None = None, stream: Stream = Stream()) -> Backend:
    """Lower and simulate every task, then `stream` over the tasks (at the workload's rate, power-ups and mix;
    the default workload when None)."""
    backend = Backend(module, target, {}, None)
    wl = workload or default_workload(module.graphs)
    image = memory_image(module, target)
    cold = wl.inferences_per_wakeup <= 1
    first: dict[str, str] = {}
    plain_runs: dict[str, tuple] = {}   # simulated task -> its program without power instructions, its schedule
    for t, graph in module.graphs.items():
        key = timing_signature(module, graph) if len(module.graphs) > 1 else t
        if key in first:  # the representative's program with this task's weight addresses, and its own banks' power
            rep = first[key]
            backend.same_as[t] = rep
            moves = relocation(module, rep, t)
            plain, acc, ends = plain_runs[rep]
            plain, acc = relocated_program(plain, t, moves), acc.relocated(moves)
        else:
            first[key] = t
            plain = lower(module, target, t)
            sim = simulate(plain, target, image, cold)
            acc, ends = sim.accesses, [f * 1000.0 / target.clock_mhz for f in sim.finish]
            plain_runs[t] = plain, acc, ends
        program = backend._programs[t] = with_power(plain, target, image, acc, ends)
        # a program without power instructions (no level gated while idle) was simulated as it is
        same = program is plain and t not in backend.same_as
        backend.results[t] = sim if same else simulate(program, target, image, cold)
    if stream.requests and is_decoder(module):
        backend.requests = _requests(phases.tasks(module.graphs), wl, stream)
        costs = {t: PhaseCosts(backend._programs[t], g, lambda p, c: simulate(p, target, image, c), target)
                 for t, g in module.graphs.items()}
        n = lengths(module, wl.prompt, wl.generate) if wl.prompt else lengths(module)  # allocate resolves them
        backend.generation = run_generation(backend.requests, module, target, costs, wl.inferences_per_wakeup, n)
        backend.stream = backend.generation.stream
    elif stream.requests:
        reqs = _requests(list(module.graphs), wl, stream)
        backend.stream = run_stream(reqs, module, target, backend.results, wl.inferences_per_wakeup)
        backend.requests = reqs
    if any(off_ramps(g) for g in module.graphs.values()):
        backend.exits = ExitCosts(module, target, backend.results, backend.program, backend.same_as, image)
        if wl.exits is not None and backend.requests:
            from aalbert.mapper.exit_samples import stream_sentences
            sentences, backend.exit_sources = stream_sentences(module, wl, backend.requests, stream.seed)
            backend.sentences = sentences
            backend.policies = run_policies(backend.requests, backend.exits, sentences, wl.inferences_per_wakeup,
                                            wl.latency_target_ms)
    return backend
