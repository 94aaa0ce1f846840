"""ALBERT and adapter-ALBERT as small, traceable PyTorch modules.

ALBERT (Lan et al., 2020) factorizes the embedding (vocab x E, then a E->H
projection) and applies one transformer layer `num_layers` times with the
same weights. adapter-ALBERT keeps that backbone frozen and shared by all
tasks and gives each task Houlsby adapters (a bottleneck down/up projection
with a residual, after the attention output and after the FFN output), its
own LayerNorms and its classifier head.

One `TaskModel` is one task: it holds a reference to a `Backbone` (shared by
the tasks of adapter-ALBERT, copied per task for fine-tuned ALBERT) and the
task's own parts. The forward pass is written once for both families.

With off-ramps (EdgeBERT's early exit), a task also owns an exit classifier
after every layer but the last, and returns their logits before its own,
named `exit_logits_<k>` (the convention of `aalbert.ir.offramps`):
"classifier" off-ramps read the task's pooled first token through the
model's pooler, "highway" ones have their own pooler each, as EdgeBERT's
highways do (a hidden x hidden matrix per layer).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from aalbert.examples.config import OFF_RAMPS, AdapterConfig, AlbertConfig


class Embeddings(nn.Module):
    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.embedding_size)
        self.position = nn.Embedding(c.max_position, c.embedding_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.embedding_size)


class Layer(nn.Module):
    """The weights of ALBERT's one transformer layer (LayerNorms apart)."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        h, f = c.hidden_size, c.intermediate_size
        self.query, self.key, self.value, self.attn_out = (nn.Linear(h, h) for _ in range(4))
        self.ffn = nn.Linear(h, f)
        self.ffn_out = nn.Linear(f, h)


class LayerNorms(nn.Module):
    """The three LayerNorms: after the embeddings, after attention, after the FFN."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.embeddings = nn.LayerNorm(c.embedding_size, eps=c.layer_norm_eps)
        self.attention = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.ffn = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class Adapter(nn.Module):
    """Houlsby adapter: x + up(relu(down(x)))."""

    def __init__(self, hidden: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(torch.relu(self.down(x)))


class AdapterPair(nn.Module):
    def __init__(self, hidden: int, bottleneck: int):
        super().__init__()
        self.attention = Adapter(hidden, bottleneck)
        self.ffn = Adapter(hidden, bottleneck)


class OffRamp(nn.Module):
    """An exit classifier after one layer: logits of the first token's pooled state (its own pooler, or the
    model's)."""

    def __init__(self, hidden: int, num_labels: int, own_pooler: bool):
        super().__init__()
        self.pooler = nn.Linear(hidden, hidden) if own_pooler else None
        self.classifier = nn.Linear(hidden, num_labels)


class Backbone(nn.Module):
    """Everything a task does not own: embeddings, projection, the layer, pooler.

    A group listed as task-specific is absent here and lives in the task.
    """

    def __init__(self, c: AlbertConfig, task_specific: frozenset[str] = frozenset()):
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c) if "embeddings" not in task_specific else None
        self.projection = nn.Linear(c.embedding_size, c.hidden_size)
        self.layer = Layer(c)
        self.layernorms = LayerNorms(c) if "layernorm" not in task_specific else None
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size) if "pooler" not in task_specific else None


class TaskModel(nn.Module):
    """One task: a backbone plus the task's own parts; returns the logits."""

    def __init__(self, backbone: Backbone, num_labels: int, task_specific: frozenset[str] = frozenset({"head"}),
                 adapters: AdapterConfig | None = None, off_ramps: str | None = None):
        super().__init__()
        if off_ramps is not None and off_ramps not in OFF_RAMPS:
            raise ValueError(f"off-ramps must be one of {', '.join(OFF_RAMPS)}, got {off_ramps!r}")
        c = backbone.config
        self.config = c
        self.backbone = backbone
        self.embeddings = Embeddings(c) if "embeddings" in task_specific else None
        self.layernorms = LayerNorms(c) if "layernorm" in task_specific else None
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size) if "pooler" in task_specific else None
        self.classifier = nn.Linear(c.hidden_size, num_labels)
        if adapters is None or "adapters" not in task_specific:
            self.adapters = None
        else:
            n = c.num_layers if adapters.placement == "per_layer" else 1
            width = adapters.bottleneck or c.adapter_bottleneck
            self.adapters = nn.ModuleList(AdapterPair(c.hidden_size, width) for _ in range(n))
        self.off_ramps = None if off_ramps is None else nn.ModuleList(
            OffRamp(c.hidden_size, num_labels, off_ramps == "highway") for _ in range(c.num_layers - 1))

    @property
    def output_names(self) -> tuple[str, ...]:
        """What `forward` returns, in order: the off-ramps' logits (if any), then the task's."""
        count = 0 if self.off_ramps is None else len(self.off_ramps)
        return tuple(f"exit_logits_{k}" for k in range(1, count + 1)) + ("logits",)

    def _parts(self):
        bb = self.backbone
        return (self.embeddings or bb.embeddings, self.layernorms or bb.layernorms, self.pooler or bb.pooler)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor):
        c = self.config
        emb, ln, pooler = self._parts()
        seq_len = input_ids.size(1)
        positions = torch.arange(seq_len, device=input_ids.device)
        x = emb.word(input_ids) + emb.position(positions) + emb.token_type(token_type_ids)
        h = self.backbone.projection(ln.embeddings(x))
        # additive mask: 0 where attended, -10000 where padded (broadcast over heads and queries)
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * -10000.0
        exits = []
        for i in range(c.num_layers):
            # nn.ModuleList yields nn.Module: these lists hold only AdapterPair and OffRamp (built in __init__)
            pair = None if self.adapters is None else cast(AdapterPair, self.adapters[i % len(self.adapters)])
            h = self._layer(h, mask_bias, ln, pair)
            if self.off_ramps is not None and i < len(self.off_ramps):
                ramp = cast(OffRamp, self.off_ramps[i])
                exits.append(ramp.classifier(torch.tanh((ramp.pooler or pooler)(h[:, 0]))))
        pooled = torch.tanh(pooler(h[:, 0]))
        logits = self.classifier(pooled)
        return logits if self.off_ramps is None else tuple(exits) + (logits,)

    def _layer(self, h: torch.Tensor, mask_bias: torch.Tensor, ln: LayerNorms,
               pair: AdapterPair | None) -> torch.Tensor:
        c, layer = self.config, self.backbone.layer
        batch, seq_len = h.size(0), h.size(1)
        head_dim = c.hidden_size // c.num_heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, seq_len, c.num_heads, head_dim).permute(0, 2, 1, 3)

        q, k, v = heads(layer.query(h)), heads(layer.key(h)), heads(layer.value(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_dim) + mask_bias
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        context = context.permute(0, 2, 1, 3).reshape(batch, seq_len, c.hidden_size)
        a = layer.attn_out(context)
        if pair is not None:
            a = pair.attention(a)
        h = ln.attention(h + a)
        f = layer.ffn_out(F.gelu(layer.ffn(h), approximate="tanh"))
        if pair is not None:
            f = pair.ffn(f)
        return ln.ffn(h + f)
