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
import dataclasses
import zlib
from dataclasses import dataclass, field

import torch
from torch import nn

from aalbert.examples.albert import OFF_RAMPS, SIZES, TASK_GROUPS, AdapterConfig, AlbertConfig, Backbone, TaskModel

# GLUE tasks and their number of labels (stsb is a regression: one output).
GLUE_TASKS: dict[str, int] = {"cola": 2, "sst2": 2, "mrpc": 2, "qqp": 2, "stsb": 1,
                              "mnli": 3, "qnli": 2, "rte": 2, "wnli": 2}
FAMILIES = ("adapter-albert", "albert")


def task_names(n: int) -> list[str]:
    """The first n GLUE tasks; beyond the nine of GLUE, task10, task11, ..."""
    if n < 1:
        raise ValueError(f"the number of tasks must be >= 1, got {n}")
    names = list(GLUE_TASKS)[:n]
    return names + [f"task{i}" for i in range(len(names) + 1, n + 1)]


def num_labels(task: str) -> int:
    return GLUE_TASKS.get(task, 2)


@dataclass(frozen=True)
class FamilySpec:
    family: str = "adapter-albert"
    size: str = "base"
    tasks: tuple[str, ...] = tuple(task_names(8))
    adapters: AdapterConfig = field(default_factory=AdapterConfig)
    frozen: frozenset[str] = frozenset()  # fine-tuned ALBERT: groups left untouched
    seed: int = 0
    layers: int | None = None  # times the shared layer is applied; None: the size's
    off_ramps: str | None = None  # an exit classifier after every layer but the last: classifier | highway

    def __post_init__(self) -> None:
        if self.off_ramps is not None and self.off_ramps not in OFF_RAMPS:
            raise ValueError(f"unknown off-ramps {self.off_ramps!r}; known: {', '.join(OFF_RAMPS)}")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r}; known: {', '.join(FAMILIES)}")
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; known: {', '.join(SIZES)}")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"the number of layers must be >= 1, got {self.layers}")
        if len(set(self.tasks)) != len(self.tasks) or not self.tasks:
            raise ValueError("task names must be distinct and at least one")
        unknown = set(self.frozen) - set(TASK_GROUPS)
        if unknown:
            raise ValueError(f"unknown frozen group{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; "
                             f"known: {', '.join(TASK_GROUPS)}")

    @property
    def config(self) -> AlbertConfig:
        c = SIZES[self.size]
        return c if self.layers is None else dataclasses.replace(c, num_layers=self.layers)


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
