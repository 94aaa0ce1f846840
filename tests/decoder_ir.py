"""A small decoder written directly in the IR: the test fixture for phases, the KV cache and generation.

`decoder_module` builds, for each task, the two graphs of `ir/phases.py`
(`<task>/prefill`, `<task>/decode`) with the signature the frontends give
decoders: `input_ids` [1, n], `cache_position` [n], then `cache.key.<l>`
and `cache.value.<l>` [1, heads, capacity, head_dim] read and written back.
Each layer is single-pass attention with LoRA pairs on its query and value
projections (the task's own; the base weights are every task's), and a
GELU MLP; the cache is written at the step's positions with `index_copy`, and a
query attends to the cache positions up to its own. Torch-free, so the
passes and the backend can be tested on decoders without a frontend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.ir.builder import Builder
from aalbert.ir.graph import Graph, Value
from aalbert.ir.module import Module
from aalbert.ir.types import DType, TensorType


@dataclass(frozen=True)
class TinyDecoder:
    layers: int = 2
    hidden: int = 16
    heads: int = 2
    ffn: int = 32
    vocab: int = 32
    capacity: int = 16
    prompt: int = 4
    rank: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _weights(module: Module, cfg: TinyDecoder, rng: np.random.Generator) -> dict[str, object]:
    def w(name: str, *shape: int, scale: float = 0.2):
        return module.add_weight((rng.standard_normal(shape) * scale).astype(np.float32), name)

    base = {"embed": w("embed", cfg.vocab, cfg.hidden, scale=1.0), "head": w("head", cfg.hidden, cfg.vocab)}
    for layer in range(cfg.layers):
        for p in ("q", "k", "v", "o"):
            base[f"{p}{layer}"] = w(f"layer{layer}.{p}", cfg.hidden, cfg.hidden)
        base[f"up{layer}"] = w(f"layer{layer}.up", cfg.hidden, cfg.ffn)
        base[f"down{layer}"] = w(f"layer{layer}.down", cfg.ffn, cfg.hidden)
        base[f"ln{layer}"] = module.add_weight(np.ones(cfg.hidden, np.float32), f"layer{layer}.ln")
    return base


def _lora(module: Module, task: str, cfg: TinyDecoder, rng: np.random.Generator, same: bool) -> dict[str, object]:
    gen = np.random.default_rng(7) if same else rng
    pairs = {}
    for layer in range(cfg.layers):
        for p in ("q", "v"):
            a = (gen.standard_normal((cfg.hidden, cfg.rank)) * 0.2).astype(np.float32)
            b = (gen.standard_normal((cfg.rank, cfg.hidden)) * 0.2).astype(np.float32)
            taken = {n for pair in pairs.values() for n in (pair[0].name, pair[1].name)}
            pairs[f"{p}{layer}"] = (module.add_weight(a, f"{task}.lora{layer}.{p}.A", taken=taken),
                                    module.add_weight(b, f"{task}.lora{layer}.{p}.B", taken=taken))
    return pairs


def _phase(module: Module, key: str, n: int, cfg: TinyDecoder, base: dict, lora: dict) -> Graph:
    graph = module.add_graph(Graph(key))
    b = Builder(module, graph)
    ids = b.input("input_ids", TensorType((1, n), DType.I64))
    pos = b.input("cache_position", TensorType((n,), DType.I64))
    cache_t = TensorType((1, cfg.heads, cfg.capacity, cfg.head_dim), DType.F32)
    caches = [(b.input(f"cache.key.{i}", cache_t), b.input(f"cache.value.{i}", cache_t)) for i in range(cfg.layers)]
    slots = b.constant(np.arange(cfg.capacity, dtype=np.int64).reshape(1, cfg.capacity))
    pos_col = b.op1("reshape", [pos], {"shape": (n, 1)})
    visible = b.op1("less_equal", [slots, pos_col])                     # query i sees slots <= pos[i]
    neg = b.constant(np.array(-1e9, np.float32))
    zero = b.constant(np.array(0.0, np.float32))
    bias = b.op1("where", [visible, zero, neg])                         # [n, capacity]
    x = b.op1("embedding", [b.weight(base["embed"]), ids])              # [1, n, hidden]
    new_caches: list[tuple[Value, Value]] = []
    for i in range(cfg.layers):
        h = b.op1("layernorm", [x, b.weight(base[f"ln{i}"])], {"axis": 2, "eps": 1e-5})
        proj = {}
        for p in ("q", "k", "v"):
            y = b.op1("linear", [h, b.weight(base[f"{p}{i}"])])
            if f"{p}{i}" in lora:
                a_w, b_w = lora[f"{p}{i}"]
                y = b.op1("add", [y, b.op1("linear", [b.op1("linear", [h, b.weight(a_w)]), b.weight(b_w)])])
            heads = b.op1("reshape", [y], {"shape": (1, n, cfg.heads, cfg.head_dim)})
            proj[p] = b.op1("transpose", [heads], {"perm": (0, 2, 1, 3)})  # [1, heads, n, head_dim]
        layer_caches = [b.op1("index_copy", [cache, pos, proj[p]], {"axis": 2})
                        for p, cache in zip(("k", "v"), caches[i])]
        k_new, v_new = layer_caches
        new_caches.append((k_new, v_new))
        scale = b.constant(np.array(1.0 / np.sqrt(cfg.head_dim), np.float32))
        keys_t = b.op1("transpose", [k_new], {"perm": (0, 1, 3, 2)})
        scores = b.op1("matmul", [b.op1("mul", [proj["q"], scale]), keys_t])
        probs = b.op1("softmax", [b.op1("add", [scores, bias])], {"axis": 3})
        ctx = b.op1("transpose", [b.op1("matmul", [probs, v_new])], {"perm": (0, 2, 1, 3)})
        attn = b.op1("linear", [b.op1("reshape", [ctx], {"shape": (1, n, cfg.hidden)}), b.weight(base[f"o{i}"])])
        x = b.op1("add", [x, attn])
        up = b.op1("gelu", [b.op1("linear", [x, b.weight(base[f"up{i}"])])], {"approximate": "none"})
        x = b.op1("add", [x, b.op1("linear", [up, b.weight(base[f"down{i}"])])])
    graph.outputs.append(("logits", b.op1("linear", [x, b.weight(base["head"])])))
    for i, (k_new, v_new) in enumerate(new_caches):
        graph.outputs += [(f"cache.key.{i}", k_new), (f"cache.value.{i}", v_new)]
    return graph


def decoder_module(tasks: tuple[str, ...] = ("a", "b"), cfg: TinyDecoder = TinyDecoder(), seed: int = 0,
                   same_adapters: bool = False) -> Module:
    """Two graphs per task over one pool: the base weights shared, each task's LoRA pairs its own."""
    rng = np.random.default_rng(seed)
    module = Module()
    base = _weights(module, cfg, rng)
    for task in tasks:
        lora = _lora(module, task, cfg, rng, same_adapters)
        _phase(module, f"{task}/prefill", cfg.prompt, cfg, base, lora)
        _phase(module, f"{task}/decode", 1, cfg, base, lora)
    return module
