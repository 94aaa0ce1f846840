"""Decoder scale: a 1.1 B-parameter Llama-style decoder with int8 weights and 8 LoRA tasks through the compiler.

    python benchmarks/decoder_scale.py                 # the 1.1 B model, edge_accel (weights spill to DRAM)
    python benchmarks/decoder_scale.py --small         # the same structure at hidden 64, 2 layers
    python benchmarks/decoder_scale.py --profile 30    # and the 30 costliest functions (cProfile)
    python benchmarks/decoder_scale.py --trace-memory  # and the Python-allocated peak per stage (tracemalloc)

The model is built directly in the IR, without torch and without an export
(that is what the build stage stands for): TinyLlama-1.1B's dimensions
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aalbert.ir.builder import Builder  # noqa: E402
from aalbert.ir.encoding import Encoding  # noqa: E402
from aalbert.ir.graph import Graph, Value  # noqa: E402
from aalbert.ir.module import Module, Weight  # noqa: E402
from aalbert.ir.types import DType, TensorType  # noqa: E402

INT8 = Encoding(format="int", bits=8, granularity="channel")
F16 = Encoding(format="f16", bits=16)


@dataclass(frozen=True)
class DecoderShape:
    """A Llama-style decoder with LoRA tasks; the defaults are TinyLlama-1.1B's dimensions."""

    layers: int = 22
    hidden: int = 2048
    heads: int = 32
    kv_heads: int = 4
    ffn: int = 5632
    vocab: int = 32000
    prompt: int = 128
    generated: int = 128
    tasks: int = 8
    rank: int = 16
    theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def capacity(self) -> int:
        return self.prompt + self.generated

    def base_parameters(self) -> int:
        """Embedding, head and final norm, plus per layer: q, k, v, o, gate, up, down and two norms."""
        h, f = self.hidden, self.ffn
        layer = 2 * h * h + 2 * h * self.kv_dim + 3 * h * f + 2 * h
        return 2 * self.vocab * h + h + self.layers * layer

    def lora_parameters(self) -> int:
        """One task's pairs: A [hidden, rank] and B [rank, out] on q (out hidden) and v (out kv_dim) per layer."""
        r = self.rank
        return self.layers * (2 * self.hidden * r + r * self.hidden + r * self.kv_dim)

    def base_bytes(self) -> int:
        """int8 matrices with a 4-byte scale per output channel; norms in f32."""
        h, f = self.hidden, self.ffn
        matrices = 2 * h * h + 2 * h * self.kv_dim + 3 * h * f
        scales = 2 * h + 2 * self.kv_dim + 2 * f + h
        layer = matrices + 4 * scales + 4 * 2 * h
        return 2 * self.vocab * h + 4 * (h + self.vocab) + 4 * h + self.layers * layer


SMALL = DecoderShape(layers=2, hidden=64, heads=4, kv_heads=2, ffn=176, vocab=256, prompt=8, generated=8)


class _Pool:
    """Adds weights to the module as stored: int8 codes and scales drawn directly, f16 or f32 otherwise."""

    def __init__(self, module: Module, seed: int):
        self.module = module
        self.rng = np.random.default_rng(seed)

    def _add(self, name: str, logical: TensorType, data: np.ndarray, encoding: Encoding,
             scales: np.ndarray | None = None) -> Weight:
        w = Weight(name, logical, "", data, encoding=encoding, scales=scales)
        w.hash = w.expected_hash()
        self.module.insert_weight(w)
        return w

    def int8(self, name: str, rows: int, cols: int) -> Weight:
        codes = self.rng.integers(-127, 128, size=(rows, cols), dtype=np.int8)
        scales = (0.02 / 127 * (1.0 + 0.1 * self.rng.random(cols))).astype(np.float32)
        return self._add(name, TensorType((rows, cols), DType.F32), codes, INT8, scales)

    def f16(self, name: str, rows: int, cols: int) -> Weight:
        data = (self.rng.standard_normal((rows, cols)) * 0.02).astype(np.float16)
        return self._add(name, TensorType((rows, cols), DType.F32), data, F16)

    def norm(self, name: str, n: int) -> Weight:
        data = (1.0 + 0.05 * self.rng.standard_normal(n)).astype(np.float32)
        return self._add(name, TensorType((n,), DType.F32), data, Encoding.plain(DType.F32))


def _base(pool: _Pool, s: DecoderShape) -> dict[str, Weight]:
    w = {"embed": pool.int8("embed", s.vocab, s.hidden)}
    for i in range(s.layers):
        w[f"ln1.{i}"] = pool.norm(f"layer{i}.attn_norm", s.hidden)
        for p, out in (("q", s.hidden), ("k", s.kv_dim), ("v", s.kv_dim), ("o", s.hidden)):
            w[f"{p}.{i}"] = pool.int8(f"layer{i}.{p}", s.hidden, out)
        w[f"ln2.{i}"] = pool.norm(f"layer{i}.mlp_norm", s.hidden)
        w[f"gate.{i}"] = pool.int8(f"layer{i}.gate", s.hidden, s.ffn)
        w[f"up.{i}"] = pool.int8(f"layer{i}.up", s.hidden, s.ffn)
        w[f"down.{i}"] = pool.int8(f"layer{i}.down", s.ffn, s.hidden)
    w["norm"] = pool.norm("norm", s.hidden)
    w["head"] = pool.int8("head", s.hidden, s.vocab)
    return w


def _lora(pool: _Pool, task: str, s: DecoderShape) -> dict[str, tuple[Weight, Weight]]:
    pairs = {}
    for i in range(s.layers):
        for p, out in (("q", s.hidden), ("v", s.kv_dim)):
            pairs[f"{p}.{i}"] = (pool.f16(f"{task}.lora{i}.{p}.A", s.hidden, s.rank),
                                 pool.f16(f"{task}.lora{i}.{p}.B", s.rank, out))
    return pairs


def _rope_tables(s: DecoderShape) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of every cache position's angles, [capacity, head_dim] (each frequency twice, as Llama)."""
    inv = 1.0 / s.theta ** (np.arange(0, s.head_dim, 2, dtype=np.float64) / s.head_dim)
    angles = np.outer(np.arange(s.capacity, dtype=np.float64), inv)
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


class _Layers:
    """One graph's ops, written with a builder."""

    def __init__(self, b: Builder, s: DecoderShape, n: int):
        self.b, self.s, self.n = b, s, n

    def rmsnorm(self, x: Value, weight: Weight) -> Value:
        b = self.b
        mean = b.op1("reduce_mean", [b.op1("mul", [x, x])], {"axes": (2,), "keepdims": True})
        eps = b.constant(np.array(1e-5, np.float32))
        inv = b.op1("reciprocal", [b.op1("sqrt", [b.op1("add", [mean, eps])])])
        return b.op1("mul", [b.op1("mul", [x, inv]), b.weight(weight)])

    def heads(self, y: Value, count: int) -> Value:
        """[1, n, count * head_dim] -> [1, count, n, head_dim]."""
        b = self.b
        y = b.op1("reshape", [y], {"shape": (1, self.n, count, self.s.head_dim)})
        return b.op1("transpose", [y], {"perm": (0, 2, 1, 3)})

    def rotate(self, x: Value, count: int, cos: Value, sin: Value) -> Value:
        """Rotary embedding: x cos + rotate_half(x) sin, over [1, count, n, head_dim]."""
        b, n, d = self.b, self.n, self.s.head_dim
        half = d // 2
        lo = b.op1("slice", [x], {"starts": (0, 0, 0, 0), "stops": (1, count, n, half), "steps": (1, 1, 1, 1)})
        hi = b.op1("slice", [x], {"starts": (0, 0, 0, half), "stops": (1, count, n, d), "steps": (1, 1, 1, 1)})
        turned = b.op1("concat", [b.op1("neg", [hi]), lo], {"axis": 3})
        return b.op1("add", [b.op1("mul", [x, cos]), b.op1("mul", [turned, sin])])

    def projection(self, h: Value, weight: Weight, pair: tuple[Weight, Weight] | None) -> Value:
        b = self.b
        y = b.op1("linear", [h, b.weight(weight)])
        if pair is not None:
            low = b.op1("linear", [h, b.weight(pair[0])])
            y = b.op1("add", [y, b.op1("linear", [low, b.weight(pair[1])])])
        return y


def _phase(module: Module, key: str, n: int, s: DecoderShape, base: dict, lora: dict) -> Graph:
    graph = module.add_graph(Graph(key))
    b = Builder(module, graph)
    lay = _Layers(b, s, n)
    ids = b.input("input_ids", TensorType((1, n), DType.I64))
    pos = b.input("cache_position", TensorType((n,), DType.I64))
    cache_t = TensorType((1, s.kv_heads, s.capacity, s.head_dim), DType.F32)
    caches = [(b.input(f"cache.key.{i}", cache_t), b.input(f"cache.value.{i}", cache_t)) for i in range(s.layers)]
    group = s.heads // s.kv_heads
    slots = b.constant(np.arange(s.capacity, dtype=np.int64).reshape(1, s.capacity))
    visible = b.op1("less_equal", [slots, b.op1("reshape", [pos], {"shape": (n, 1)})])
    bias = b.op1("where", [visible, b.constant(np.array(0.0, np.float32)), b.constant(np.array(-1e9, np.float32))])
    bias = b.op1("tile", [bias], {"repeats": (group, 1)})          # rows of [group * n] grouped queries
    cos_t, sin_t = _rope_tables(s)
    cos = b.op1("gather", [b.constant(cos_t), pos], {"axis": 0})    # [n, head_dim]
    sin = b.op1("gather", [b.constant(sin_t), pos], {"axis": 0})
    scale = b.constant(np.array(1.0 / np.sqrt(s.head_dim), np.float32))
    x = b.op1("embedding", [b.weight(base["embed"]), ids])
    outs = []
    for i in range(s.layers):
        h = lay.rmsnorm(x, base[f"ln1.{i}"])
        q = lay.rotate(lay.heads(lay.projection(h, base[f"q.{i}"], lora.get(f"q.{i}")), s.heads), s.heads, cos, sin)
        k = lay.rotate(lay.heads(lay.projection(h, base[f"k.{i}"], None), s.kv_heads), s.kv_heads, cos, sin)
        v = lay.heads(lay.projection(h, base[f"v.{i}"], lora.get(f"v.{i}")), s.kv_heads)
        k_all = b.op1("index_copy", [caches[i][0], pos, k], {"axis": 2})
        v_all = b.op1("index_copy", [caches[i][1], pos, v], {"axis": 2})
        outs.append((k_all, v_all))
        q = b.op1("reshape", [b.op1("mul", [q, scale])], {"shape": (1, s.kv_heads, group * n, s.head_dim)})
        scores = b.op1("matmul", [q, b.op1("transpose", [k_all], {"perm": (0, 1, 3, 2)})])
        probs = b.op1("softmax", [b.op1("add", [scores, bias])], {"axis": 3})
        ctx = b.op1("reshape", [b.op1("matmul", [probs, v_all])], {"shape": (1, s.heads, n, s.head_dim)})
        ctx = b.op1("reshape", [b.op1("transpose", [ctx], {"perm": (0, 2, 1, 3)})], {"shape": (1, n, s.hidden)})
        x = b.op1("add", [x, b.op1("linear", [ctx, b.weight(base[f"o.{i}"])])])
        h = lay.rmsnorm(x, base[f"ln2.{i}"])
        gate = b.op1("linear", [h, b.weight(base[f"gate.{i}"])])
        act = b.op1("mul", [gate, b.op1("sigmoid", [gate])])         # SiLU
        up = b.op1("mul", [act, b.op1("linear", [h, b.weight(base[f"up.{i}"])])])
        x = b.op1("add", [x, b.op1("linear", [up, b.weight(base[f"down.{i}"])])])
    x = lay.rmsnorm(x, base["norm"])
    graph.outputs.append(("logits", b.op1("linear", [x, b.weight(base["head"])])))
    for i, (k_all, v_all) in enumerate(outs):
        graph.outputs += [(f"cache.key.{i}", k_all), (f"cache.value.{i}", v_all)]
    return graph


def task_names(count: int) -> tuple[str, ...]:
    return tuple(f"task{t}" for t in range(count))


def build(shape: DecoderShape = DecoderShape(), seed: int = 0) -> Module:
    """The decoder's module: the int8 base once in the pool, each task's LoRA pairs, prefill and decode per task."""
    module = Module()
    pool = _Pool(module, seed)
    base = _base(pool, shape)
    for task in task_names(shape.tasks):
        lora = _lora(pool, task, shape)
        _phase(module, f"{task}/prefill", shape.prompt, shape, base, lora)
        _phase(module, f"{task}/decode", 1, shape, base, lora)
    return module


def sharing(module: Module) -> tuple[int, dict[str, int]]:
    """Bytes of the weights every task reads, and each task's own bytes (after `share`)."""
    own: dict[str, int] = {}
    shared = 0
    for w in module.weights.values():
        if w.role is None:
            continue
        if w.role.shared:
            shared += w.nbytes
        for t in w.role.tasks:
            own[t] = own.get(t, 0) + w.nbytes
    return shared, own


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
