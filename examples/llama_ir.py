"""A Llama-style decoder with LoRA tasks, written directly in the IR: torch-free, int8 weights drawn as codes.

`build(shape)` gives the module of a `DecoderShape` (by default TinyLlama-1.1B's
dimensions: hidden 2048, 22 layers, 32 query heads sharing 4 key/value heads,
a gated SiLU MLP of 5632, RMSNorm, rotary position embeddings, vocabulary
32000, untied head). Every matrix is stored as int8 codes with one float
scale per output channel, drawn as codes: no float32 copy of the base is ever
made. Each task has LoRA pairs of rank `rank`, stored in f16, on the query and
value projections of every layer, and two graphs (`ir/phases.py`): prefill of
a `prompt`-token prompt and one decode step, over a static KV cache of
`prompt + generated` tokens, laid out as the frontends give decoders. Grouped
heads need no copy of the cache: a layer's query heads that share a key/value
head are consecutive, so [1, heads, n, d] reshapes to [1, kv_heads, group n, d]
and multiplies the [1, kv_heads, capacity, d] cache directly.

`SMALL` is the same structure at hidden 64 and 2 layers; `STUDY` the size the
decoder study runs by default (`mapper.study.decoder`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.ir.builder import Builder
from aalbert.ir.encoding import Encoding
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module, Weight
from aalbert.ir.types import DType, TensorType

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
# the decoder study's default: SmolLM-135M's layout (grouped heads, 3:1) at a quarter of its width and depth, a
# 32-token prompt and 32 generated tokens, so that a study of a few hundred configurations runs in minutes
STUDY = DecoderShape(layers=8, hidden=192, heads=6, kv_heads=2, ffn=512, vocab=4096, prompt=32, generated=32, rank=8)


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
