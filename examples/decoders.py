"""Hugging Face decoders with a static KV cache and PEFT LoRA adapters, exported per task and phase.

    python -m aalbert.examples.decoders --family llama --tasks 2 --out models/
    python -m aalbert.examples.decoders --family gpt2 --tasks 0 --onnx --out models/

writes, for each task (`task0`, `task1`, ...; `base` with `--tasks 0`),
`<task>.prefill.pt2` and `<task>.decode.pt2` (and `.onnx` with `--onnx`),
which `aalbert-compile models/*.pt2` keys `<task>/prefill` and
`<task>/decode` (`ir/phases.py`). Models are built from small configs with
seeded random weights (`DecoderSpec`; nothing is downloaded): GPT-2, and the
Llama-style families Llama, Qwen2 and SmolLM (a Llama with tied
embeddings). Each task is the base model with its own LoRA adapter active
(PEFT, on the query and value projections, A and B both seeded random so the
update is not zero).

A phase is `DecoderStep`: `input_ids` [1, n] and `cache_position` [n] (the
tokens' positions) in, `logits` out, and the KV cache: `cache.key.<l>` and
`cache.value.<l>`, [1, kv_heads, capacity, head_dim] (`ir/state.py`). The
model writes the step's keys and values at their positions (`index_copy`),
and a query at position p attends to the cache slots 0..p: the mask is made
from the positions, not from a length the graph would have to know. How the
cache enters and leaves depends on the format:

- `.pt2`: the cache is the program's state, buffers named `cache.key.<l>`
  that the step writes; the importer makes each mutated buffer an input and
  an output of that name. The program is saved functional (its writes are
  outputs; no operator writes to its arguments), so the project's own
  reader walks it as saved, without torch's loader.
- ONNX, where a graph output cannot bear an input's name: the cache is read
  from inputs `past_key_values.<l>.key` / `.value` and written to outputs
  `present.<l>.key` / `.value` (Optimum's names), which the importer makes
  the state `cache.key.<l>` / `cache.value.<l>`.

A model of one's own (any GPT-2 or Llama-style `transformers` causal LM,
with PEFT adapters loaded or added by the user) goes through
`export_phases(model, out, task)`, which reads its `DecoderSpec` from the
model's config (`spec_of`); docs/decoders.md walks through it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FAMILIES = ("gpt2", "llama", "qwen2", "smollm")
PHASES = ("prefill", "decode")
ONNX_OPSET = 17


@dataclass(frozen=True)
class DecoderSpec:
    """A small decoder and its phases: `prompt` tokens at prefill, one at decode, `capacity` cache slots."""

    family: str = "llama"
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2          # Llama-style only (GPT-2 has one key and value head per query head)
    ffn: int = 128
    vocab: int = 256
    capacity: int = 32
    prompt: int = 8
    rank: int = 4              # LoRA rank
    dtype: str = "float32"     # float32 or float16
    seed: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown decoder family {self.family!r} (one of {', '.join(FAMILIES)})")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"unsupported dtype {self.dtype!r} (float32 or float16)")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ValueError(f"{self.heads} heads do not divide hidden size {self.hidden}, or {self.kv_heads} "
                             f"key and value heads do not divide {self.heads} heads")
        if not 0 < self.prompt <= self.capacity:
            raise ValueError(f"a prompt of {self.prompt} tokens does not fit a cache of {self.capacity}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def cache_heads(self) -> int:
        return self.heads if self.family == "gpt2" else self.kv_heads

    @property
    def lora_targets(self) -> tuple[str, ...]:
        return ("c_attn",) if self.family == "gpt2" else ("q_proj", "v_proj")

    def tokens(self, phase: str) -> int:
        return self.prompt if phase == "prefill" else 1


def hf_config(spec: DecoderSpec):
    """The Hugging Face config of `spec` (eager attention: plain products and a softmax)."""
    import transformers

    common = {"vocab_size": spec.vocab, "attn_implementation": "eager"}
    if spec.family == "gpt2":
        return transformers.GPT2Config(n_embd=spec.hidden, n_layer=spec.layers, n_head=spec.heads,
                                       n_inner=spec.ffn, n_positions=spec.capacity, resid_pdrop=0.0,
                                       embd_pdrop=0.0, attn_pdrop=0.0, **common)
    llama = {"hidden_size": spec.hidden, "num_hidden_layers": spec.layers, "num_attention_heads": spec.heads,
             "num_key_value_heads": spec.kv_heads, "intermediate_size": spec.ffn,
             "max_position_embeddings": spec.capacity, **common}
    if spec.family == "qwen2":
        return transformers.Qwen2Config(**llama)
    # SmolLM is a Llama with tied input and output embeddings
    return transformers.LlamaConfig(tie_word_embeddings=spec.family == "smollm", **llama)


def base_model(spec: DecoderSpec) -> nn.Module:
    """The causal LM of `spec` with seeded random weights, in eval mode. Hugging Face's initialization
    leaves biases at zero and norm scales at one: every parameter gets seeded noise on top, so no two are
    equal by accident."""
    import transformers

    torch.manual_seed(spec.seed)
    model = transformers.AutoModelForCausalLM.from_config(hf_config(spec))
    gen = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.to(_dtype(spec)).eval()


def build_decoder(spec: DecoderSpec, tasks: Sequence[str], same: bool = False) -> nn.Module:
    """The base model of `spec` with a LoRA adapter per task (none: the base model alone)."""
    model = base_model(spec)
    return with_adapters(model, spec, tasks, same) if tasks else model


def with_adapters(model: nn.Module, spec: DecoderSpec, tasks: Sequence[str], same: bool = False) -> nn.Module:
    """`model` with a PEFT LoRA adapter per task (rank `spec.rank`), A and B seeded random (so B is not
    zero); with `same`, every task's adapter has the same values. No adapter is active yet: `DecoderStep`
    activates its task's."""
    import peft

    config = peft.LoraConfig(r=spec.rank, lora_alpha=2 * spec.rank, lora_dropout=0.0,
                             target_modules=list(spec.lora_targets), fan_in_fan_out=spec.family == "gpt2")
    peft_model = None
    for i, task in enumerate(tasks):
        if peft_model is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # fan_in_fan_out notices
                peft_model = peft.get_peft_model(model, config, adapter_name=task)
        else:
            peft_model.add_adapter(task, config)
        gen = torch.Generator().manual_seed(spec.seed * 1000 + (0 if same else i + 1))
        for name, p in peft_model.named_parameters():
            if f".lora_A.{task}." in name or f".lora_B.{task}." in name:
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * 0.1)
    return (peft_model if peft_model is not None else model).eval()


class StaticKV:
    """The cache the model writes through: each layer's keys and values, [1, kv_heads, capacity, head_dim].
    `update` writes a step's keys and values at their positions (a functional `index_copy`) and returns the
    whole cache, masked by the step's attention mask."""

    is_compileable = True  # its shapes are static

    def __init__(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]):
        self.keys, self.values = list(keys), list(values)

    def update(self, key_states, value_states, layer_idx: int, cache_kwargs=None):
        pos = cache_kwargs["cache_position"]
        self.keys[layer_idx] = self.keys[layer_idx].index_copy(2, pos, key_states.to(self.keys[layer_idx].dtype))
        self.values[layer_idx] = self.values[layer_idx].index_copy(2, pos,
                                                                   value_states.to(self.values[layer_idx].dtype))
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # never asked: every call gives the positions


def causal_mask(cache_position: torch.Tensor, capacity: int, dtype: torch.dtype) -> torch.Tensor:
    """[1, 1, n, capacity]: 0 where a query at position p may look (slots 0..p), the dtype's lowest elsewhere."""
    slots = torch.arange(capacity, device=cache_position.device)
    visible = slots.unsqueeze(0) <= cache_position.unsqueeze(1)
    lowest = torch.finfo(dtype).min
    return torch.where(visible, torch.zeros((), dtype=dtype), torch.full((), lowest, dtype=dtype))[None, None]


class DecoderStep(nn.Module):
    """One phase of one task: the model (with the task's adapter active) over `input_ids` at
    `cache_position` (`activate` first). With `stateful`, the cache is this module's buffers `cache.key.<l>` /
    `cache.value.<l>`, written in place, and the result is {"logits"}; otherwise the cache comes in as
    arguments after the positions (keys and values per layer) and goes out after the logits."""

    def __init__(self, model: nn.Module, spec: DecoderSpec, task: str | None = None, stateful: bool = True):
        super().__init__()
        self.model, self.spec, self.task, self.stateful = model, spec, task, stateful
        if stateful:
            self.cache = nn.Module()
            for kind in ("key", "value"):
                holder = nn.Module()
                for layer in range(spec.layers):
                    holder.register_buffer(str(layer), torch.zeros(empty_cache(spec).shape, dtype=_dtype(spec)))
                self.cache.add_module(kind, holder)

    def caches(self) -> list[torch.Tensor]:
        """The state buffers, keys and values per layer."""
        return [getattr(getattr(self.cache, kind), str(layer)) for layer in range(self.spec.layers)
                for kind in ("key", "value")]

    def activate(self) -> DecoderStep:
        """Make this step's task the model's active adapter (before running or exporting it)."""
        if self.task is not None:
            peft_model: Any = self.model  # a peft.PeftModel
            peft_model.set_adapter(self.task)
        return self

    def forward(self, input_ids: torch.Tensor, cache_position: torch.Tensor, *caches: torch.Tensor):
        given = self.caches() if self.stateful else list(caches)
        kv = StaticKV(given[0::2], given[1::2])
        mask = causal_mask(cache_position, self.spec.capacity, _dtype(self.spec))
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=cache_position.unsqueeze(0),
                         past_key_values=kv, cache_position=cache_position, use_cache=True, return_dict=True)
        new = [t for pair in zip(kv.keys, kv.values) for t in pair]
        if not self.stateful:
            return (out.logits, *new)
        for buf, t in zip(given, new):
            buf.copy_(t)
        return {"logits": out.logits}


def _dtype(spec: DecoderSpec) -> torch.dtype:
    return getattr(torch, spec.dtype)


def empty_cache(spec: DecoderSpec) -> torch.Tensor:
    return torch.zeros(1, spec.cache_heads, spec.capacity, spec.head_dim, dtype=_dtype(spec))


def cache_names(spec: DecoderSpec) -> list[str]:
    """The state's names (`ir/state.py`), keys and values per layer."""
    return [f"cache.{kind}.{layer}" for layer in range(spec.layers) for kind in ("key", "value")]


def onnx_names(spec: DecoderSpec) -> tuple[list[str], list[str]]:
    """The cache's input and output names in an ONNX file (Optimum's)."""
    pairs = [(layer, kind) for layer in range(spec.layers) for kind in ("key", "value")]
    return ([f"past_key_values.{layer}.{kind}" for layer, kind in pairs],
            [f"present.{layer}.{kind}" for layer, kind in pairs])


def phase_inputs(spec: DecoderSpec, phase: str, start: int = 0, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded `input_ids` [1, n] and `cache_position` [n] (start, start + 1, ...) for a phase."""
    n = spec.tokens(phase)
    gen = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(0, spec.vocab, (1, n), generator=gen),
            "cache_position": torch.arange(start, start + n)}


def export_pt2(step: DecoderStep, path: Path, phase: str) -> Path:
    """Save `step` (stateful) as a `.pt2`, made functional: its writes to the cache become outputs."""
    inputs = phase_inputs(step.spec, phase)
    step.activate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(step, (), inputs, strict=False)
        ep = ep.run_decompositions({})  # functional, nothing decomposed
    torch.export.save(ep, str(path))
    return path


def export_onnx(step: DecoderStep, path: Path, phase: str) -> Path:
    """Write `step` (not stateful) with torch.onnx's TorchScript exporter; shapes static."""
    spec = step.spec
    inputs = phase_inputs(spec, phase)
    args = (inputs["input_ids"], inputs["cache_position"], *(empty_cache(spec) for _ in cache_names(spec)))
    past, present = onnx_names(spec)
    step.activate()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, args, str(path), dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["input_ids", "cache_position", *past], output_names=["logits", *present])
    return path


def task_names(count: int) -> list[str]:
    return [f"task{i}" for i in range(count)] if count else ["base"]


def export_decoders(spec: DecoderSpec, tasks: int, out: Path, onnx: bool = False,
                    model: nn.Module | None = None) -> dict[str, Path]:
    """One prefill and one decode file per task in `out` (of `model`, default `build_decoder`'s); returns
    graph key -> path (`.pt2`, and `.onnx` under the key with `.onnx` appended)."""
    out.mkdir(parents=True, exist_ok=True)
    names = task_names(tasks)
    if model is None:
        model = build_decoder(spec, names if tasks else ())
    files = {}
    for task in names:
        adapter = task if tasks else None
        for phase in PHASES:
            key = f"{task}/{phase}"
            files[key] = export_pt2(DecoderStep(model, spec, adapter), out / f"{task}.{phase}.pt2", phase)
            if onnx:
                files[f"{key}.onnx"] = export_onnx(DecoderStep(model, spec, adapter, stateful=False),
                                                   out / f"{task}.{phase}.onnx", phase)
    return files


def spec_of(model: nn.Module, capacity: int = DecoderSpec.capacity,
            prompt: int = DecoderSpec.prompt) -> DecoderSpec:
    """The `DecoderSpec` of any `transformers` causal LM (or a PEFT model around one), read from its config:
    GPT-2 or a Llama-style attention (Llama, Qwen2, SmolLM), with `capacity` cache slots and
    `prompt` tokens at prefill. Raises ValueError for a config whose head size is not hidden / heads."""
    config: Any = model.config
    gpt2 = config.model_type == "gpt2"
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None)
    if head_dim is not None and head_dim * heads != config.hidden_size:
        raise ValueError(f"{config.model_type}: head size {head_dim} x {heads} heads is not the hidden size "
                         f"{config.hidden_size}")
    dtype = next(model.parameters()).dtype
    return DecoderSpec(family="gpt2" if gpt2 else "llama", layers=config.num_hidden_layers,
                       hidden=config.hidden_size, heads=heads,
                       kv_heads=heads if gpt2 else getattr(config, "num_key_value_heads", None) or heads,
                       ffn=getattr(config, "intermediate_size", None) or 4 * config.hidden_size,
                       vocab=config.vocab_size, capacity=capacity, prompt=prompt,
                       dtype=str(dtype).removeprefix("torch."))


def export_phases(model: nn.Module, out: Path | str, task: str | None = None,
                  capacity: int = DecoderSpec.capacity, prompt: int = DecoderSpec.prompt) -> dict[str, Path]:
    """Export one task of a user's own causal LM: `<task>.prefill.pt2` and `<task>.decode.pt2` in `out`
    (`base.*` without a task), with a static cache of `capacity` slots and `prompt` tokens at prefill.
    `task` names the PEFT adapter to make active (the model then is a `peft.PeftModel`). Returns graph key
    (`<task>/prefill`, `<task>/decode`) -> path, as `export_decoders` does."""
    spec = spec_of(model, capacity, prompt)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = task or "base"
    return {f"{name}/{phase}": export_pt2(DecoderStep(model, spec, task), out / f"{name}.{phase}.pt2", phase)
            for phase in PHASES}


def sample_inputs(spec: DecoderSpec, phase: str, start: int = 0, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for `aalbert-run` on a phase's graph: ids, positions and an empty cache."""
    named = {k: v.numpy() for k, v in phase_inputs(spec, phase, start, seed).items()}
    named.update({name: empty_cache(spec).numpy() for name in cache_names(spec)})
    return named


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m aalbert.examples.decoders", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=FAMILIES, default="llama")
    p.add_argument("--tasks", type=int, default=2, help="LoRA adapters, one per task (0: the base model alone)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--onnx", action="store_true", help="also write ONNX files")
    p.add_argument("--layers", type=int, default=DecoderSpec.layers)
    p.add_argument("--hidden", type=int, default=DecoderSpec.hidden)
    p.add_argument("--capacity", type=int, default=DecoderSpec.capacity, help="cache slots (most tokens)")
    p.add_argument("--prompt", type=int, default=DecoderSpec.prompt, help="prefill tokens")
    p.add_argument("--rank", type=int, default=DecoderSpec.rank)
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.tasks < 0:
        p.error("--tasks must be 0 or more")
    try:
        spec = replace(DecoderSpec(family=args.family), layers=args.layers, hidden=args.hidden,
                       ffn=2 * args.hidden, capacity=args.capacity, prompt=args.prompt, rank=args.rank,
                       dtype=args.dtype, seed=args.seed)
    except ValueError as e:
        p.error(str(e))
    for key, path in export_decoders(spec, args.tasks, args.out, args.onnx).items():
        print(f"{key.removesuffix('.onnx')}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
