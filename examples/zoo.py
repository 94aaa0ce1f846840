"""The multi-task model families, built with seeded random weights.

- adapter-ALBERT: one frozen `Backbone` object shared by every task model;
  each task owns its adapters, LayerNorms and classifier head (configurable).
- ALBERT fine-tuned per task: every task gets its own copy of every weight;
  fine-tuning is simulated by a seeded perturbation of the backbone (groups
  listed in `frozen` are left untouched and so stay identical across tasks).

Weights, biases and LayerNorm parameters are all random, so no two distinct
parameters are equal by accident. Nothing is downloaded.
"""

from __future__ import annotations

import copy
import zlib

import torch
from torch import nn

from aalbert.examples.albert import Backbone, TaskModel
from aalbert.examples.config import FAMILIES, GLUE_TASKS, SIZES, AlbertConfig, FamilySpec, num_labels, task_names  # noqa: F401  (the family's configuration, re-exported for callers)


def _seed(*parts) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


@torch.no_grad()
def init_weights(module: nn.Module, seed: int, std: float = 0.02) -> None:
    """Seeded random init of every parameter (LayerNorm scales around 1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=g) * std
        is_ln_scale = name.endswith("weight") and p.dim() == 1
        p.copy_(1.0 + noise if is_ln_scale else noise)


@torch.no_grad()
def _perturb(module: nn.Module, seed: int, scale: float = 0.02) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=g) * (scale * float(p.std()) + 1e-6))


def build_family(spec: FamilySpec) -> dict[str, TaskModel]:
    """One model per task, in task order, in eval mode."""
    c = spec.config
    models: dict[str, TaskModel] = {}
    if spec.family == "adapter-albert":
        owned = frozenset(spec.adapters.task_specific)
        backbone = Backbone(c, owned)
        init_weights(backbone, _seed(spec.seed, "backbone"))
        for task in spec.tasks:
            model = TaskModel(backbone, num_labels(task), owned, spec.adapters, spec.off_ramps)
            _init_task_parts(model, _seed(spec.seed, "task", task))
            models[task] = model
    else:
        base = Backbone(c)
        init_weights(base, _seed(spec.seed, "backbone"))
        for task in spec.tasks:
            backbone = copy.deepcopy(base)
            for name, part in _groups(backbone).items():
                if name not in spec.frozen:
                    _perturb(part, _seed(spec.seed, "finetune", task, name))
            model = TaskModel(backbone, num_labels(task), frozenset({"head"}), off_ramps=spec.off_ramps)
            _init_task_parts(model, _seed(spec.seed, "task", task))
            models[task] = model
    for m in models.values():
        m.eval()
        m.requires_grad_(False)
    return models


def _groups(backbone: Backbone) -> dict[str, nn.Module]:
    """A fine-tuned backbone's parameter groups (the core layer is 'layer')."""
    return {"embeddings": backbone.embeddings, "layernorm": backbone.layernorms,
            "pooler": backbone.pooler, "layer": nn.ModuleList([backbone.projection, backbone.layer])}


def _init_task_parts(model: TaskModel, seed: int) -> None:
    for i, part in enumerate(p for p in (model.embeddings, model.layernorms, model.pooler,
                                         model.classifier, model.adapters, model.off_ramps) if p is not None):
        init_weights(part, seed + i)


def distinct_parameters(models) -> int:
    """Number of distinct parameter elements over models (shared ones once)."""
    seen: dict[int, int] = {}
    for m in models:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def example_inputs(config: AlbertConfig, batch: int = 1, seq_len: int = 128, seed: int = 0,
                   padding: int = 0) -> dict[str, torch.Tensor]:
    """Seeded token ids, an attention mask (last `padding` positions padded), token types."""
    if seq_len > config.max_position:
        raise ValueError(f"seq_len {seq_len} exceeds the model's {config.max_position} positions")
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, config.vocab_size, (batch, seq_len), generator=g)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    if padding:
        mask[:, seq_len - padding:] = 0
    types = torch.zeros(batch, seq_len, dtype=torch.long)
    types[:, seq_len // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
