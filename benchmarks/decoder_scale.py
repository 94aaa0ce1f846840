"""Decoder scale: a 1.1 B-parameter Llama-style decoder with int8 weights and 8 LoRA tasks through the compiler.

    python benchmarks/decoder_scale.py                 # the 1.1 B model, edge_accel (weights spill to DRAM)
    python benchmarks/decoder_scale.py --small         # the same structure at hidden 64, 2 layers
    python benchmarks/decoder_scale.py --profile 30    # and the 30 costliest functions (cProfile)
    python benchmarks/decoder_scale.py --trace-memory  # and the Python-allocated peak per stage (tracemalloc)

The model is `examples/llama_ir.py`'s, built directly in the IR, without torch
and without an export (that is what the build stage stands for): TinyLlama-1.1B's dimensions
(hidden 2048, 22 layers, 32 query heads sharing 4 key/value heads, a gated
SiLU MLP of 5632, RMSNorm, rotary position embeddings, vocabulary 32000,
untied head), every matrix stored as int8 codes with one float scale per
output channel, drawn as codes: no float32 copy of the base is ever made.
Each of the 8 tasks has LoRA pairs of rank 16, stored in f16, on the query
and value projections of every layer, and two graphs (`ir/phases.py`):
prefill of a 128-token prompt and one decode step, over a static KV cache
of 256 tokens (prompt plus 128 generated), as `tests/decoder_ir.py` lays
them out. Grouped heads need no copy of the cache: a layer's query heads
that share a key/value head are consecutive, so [1, 32, n, 64] reshapes to
[1, 4, 8n, 64] and multiplies the [1, 4, 256, 64] cache directly.

The run then goes stage by stage as `aalbert-compile` does: canonicalize,
share, plan-activations, allocate (spill allowed), the verifier once, the
report, then lowering and simulation of every graph and a request stream.
Each stage's wall time is printed with the process's peak resident set
after it; a stage that fails is reported with its error and the run stops
there (decoder lowering and the KV cache's placement are being built).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aalbert.examples.llama_ir import SMALL, DecoderShape, build, sharing  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402


# -- the run -------------------------------------------------------------------------------------------------------
def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


@dataclass
class Stage:
    name: str
    seconds: float
    peak_gb: float
    traced_mb: float | None = None   # Python-allocated peak within the stage (tracemalloc)


class Stages:
    """Runs named stages in order, timing each; a stage that raises is recorded with its error's first line."""

    def __init__(self, trace: bool):
        self.trace = trace
        self.done: list[Stage] = []
        self.failed: list[tuple[str, str]] = []

    def run(self, name: str, step: Callable[[], object]) -> bool:
        if self.trace:
            tracemalloc.reset_peak()
        t = time.perf_counter()
        try:
            step()
        except Exception as e:  # noqa: BLE001  (a stage that cannot run yet is a finding, not a crash)
            self.failed.append((name, f"{type(e).__name__}: {e}".splitlines()[0]))
            return False
        seconds = time.perf_counter() - t
        traced = tracemalloc.get_traced_memory()[1] / 1024 ** 2 if self.trace else None
        self.done.append(Stage(name, seconds, peak_gb(), traced))
        print(f"  {name:<22} {seconds:8.2f} s   peak {peak_gb():6.2f} GB"
              + (f"   traced {traced:8.1f} MB" if traced is not None else ""), file=sys.stderr, flush=True)
        return True


def compile_stages(stages: Stages, module: Module, target: str, requests: int, rate: float) -> Module:
    """The compile after the build, stage by stage: each pass, the verifier, the report, then (when allocation
    ran) lowering and simulation of every graph and a request stream. Returns the module as the passes left it."""
    from aalbert.ir.verifier import verify
    from aalbert.mapper.backend import Stream, run_backend
    from aalbert.mapper.reports.summary import summary_text
    from aalbert.passes.allocation.record import Allocation
    from aalbert.passes.base import Analyses
    from aalbert.passes.pipelines import Placement, compile_passes
    from aalbert.targets.hardware.spec import load_target

    state: dict = {"module": module}
    analyses = Analyses()  # as the pass manager keeps them; the verifier runs once, after the passes, as a stage
    for p in compile_passes(module, placement=Placement(target, spill=True)):
        def step(p=p) -> None:
            if not p.changes_nothing:
                analyses.clear()
            state["module"] = p.run(state["module"], analyses)
            if p.name == "allocate":
                state["allocation"] = analyses.get(Allocation)
        if not stages.run(p.name, step):
            break
    stages.run("verify", lambda: verify(state["module"]))
    stages.run("report", lambda: summary_text(state["module"], "decoder"))
    if "allocation" in state:
        # one request at a time: the figures are a request's own, not a queue's (a 1.1 B model's request
        # of 128 tokens takes seconds, longer than the default workload's interval)
        workload = dataclasses.replace(state["allocation"].workload, inferences_per_second=rate)
        def simulate() -> None:
            state["backend"] = run_backend(state["module"], load_target(target), workload, Stream(requests))
        if stages.run("lower + simulate", simulate) and state["backend"].generation is not None:
            g = state["backend"].generation
            print(f"generation: prompt {g.lengths.prompt}, {g.lengths.generate} generated per request, "
                  f"{requests} requests: TTFT mean {g.ttft.mean() * 1e3:.2f} ms, "
                  f"TPOT mean {g.tpot.mean() * 1e3:.3f} ms, "
                  f"{g.tokens_per_second:,.1f} tokens/s, {g.energy_per_token_pj / 1e6:.3f} uJ per token")
    return state["module"]


def measure(shape: DecoderShape, target: str, requests: int, trace: bool,
            rate: float) -> tuple[Module | None, Stages]:
    import scipy.optimize  # noqa: F401  (imported outside the timing, as benchmarks/scale.py does)

    stages = Stages(trace)
    if trace:
        tracemalloc.start()
    held: dict[str, Module] = {}
    stages.run("build (no export)", lambda: held.setdefault("module", build(shape)))
    if "module" not in held:
        return None, stages
    return compile_stages(stages, held["module"], target, requests, rate), stages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="hidden 64, 2 layers, vocabulary 256: a quick run")
    p.add_argument("--target", default="phone_npu",
                   help="a built-in target or TOML file (default: phone_npu; a 1.1 GB model needs its DRAM)")
    p.add_argument("--requests", type=int, default=16, help="requests in the simulated stream (default: 16)")
    p.add_argument("--rate", type=float, default=0.1, help="requests per second (default: 0.1, one at a time)")
    p.add_argument("--trace-memory", action="store_true", help="also the Python-allocated peak of each stage")
    p.add_argument("--profile", type=int, metavar="N", help="print the N costliest functions (cumulative time)")
    args = p.parse_args()
    shape = SMALL if args.small else DecoderShape()
    print(f"decoder: {shape.layers} layers, hidden {shape.hidden}, {shape.heads} heads / {shape.kv_heads} KV, "
          f"FFN {shape.ffn}, vocabulary {shape.vocab}; {shape.base_parameters():,} base parameters "
          f"(int8, {shape.base_bytes() / 1e9:.2f} GB stored); {shape.tasks} tasks with LoRA rank {shape.rank} "
          f"on q and v ({shape.lora_parameters():,} parameters each); prompt {shape.prompt}, cache "
          f"{shape.capacity}; target {args.target}", file=sys.stderr)
    start_gb = peak_gb()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    t0 = time.perf_counter()
    module, stages = measure(shape, args.target, args.requests, args.trace_memory, args.rate)
    total = time.perf_counter() - t0
    if profiler is not None:
        profiler.disable()
    compiled = sum(s.seconds for s in stages.done if not s.name.startswith("build"))
    print(f"\nstart {start_gb:.2f} GB (imports); total {total:.2f} s, of which after the build {compiled:.2f} s; "
          f"peak resident set {peak_gb():.2f} GB")
    print("| stage | wall time | peak resident set after it |")
    print("|---|---:|---:|")
    for s in stages.done:
        print(f"| {s.name} | {s.seconds:.2f} s | {s.peak_gb:.2f} GB |")
    for name, error in stages.failed:
        print(f"\nstopped at {name}: {error}")
    if module is not None:
        graphs = module.graphs.values()
        print(f"\n{len(module.graphs)} graphs, {sum(len(g.nodes) for g in graphs):,} nodes, "
              f"{len(module.weights):,} weights, {sum(w.nbytes for w in module.weights.values()) / 1e9:.3f} GB stored")
        shared, own = sharing(module)
        if own:
            sizes = sorted(set(own.values()))
            print(f"shared by all {len(own)} tasks: {shared / 1e6:,.2f} MB; each task's own: "
                  + ", ".join(f"{b / 1e6:.2f} MB" for b in sizes))
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
