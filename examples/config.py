"""The example families' configuration, without torch: model sizes, adapter placement, task names.

What a family is made of is decided here (`FamilySpec`, checked on creation); `albert` defines the PyTorch
modules and `zoo` builds them with seeded weights. A cached example is looked up by these alone, so a
compile that finds its example in the cache imports no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AlbertConfig:
    """Model dimensions; the defaults are ALBERT-base-v2's."""

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    num_layers: int = 12
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    adapter_bottleneck: int = 64  # the default adapter width for this size

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")


SIZES: dict[str, AlbertConfig] = {
    "base": AlbertConfig(),
    "tiny": AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_heads=4,
                         intermediate_size=64, num_layers=3, max_position=128, adapter_bottleneck=8),
    # ALBERT-xxlarge dimensions (used by the scaling benchmarks)
    "xxlarge": AlbertConfig(embedding_size=128, hidden_size=4096, num_heads=64,
                            intermediate_size=16384, num_layers=12),
}

# Parameter groups a task may own (the rest is the shared backbone).
TASK_GROUPS = ("adapters", "layernorm", "head", "pooler", "embeddings")
OFF_RAMPS = ("classifier", "highway")  # an exit classifier on the model's pooler, or with its own pooler


@dataclass(frozen=True)
class AdapterConfig:
    """Where adapter-ALBERT's task-specific parameters are.

    placement "shared": one adapter pair per task serves every repetition of
    ALBERT's single layer (the layer is one module, as in AdapterHub);
    "per_layer": one pair per layer position.
    """

    bottleneck: int | None = None  # None: the model size's default (64 for base)
    placement: str = "shared"
    task_specific: frozenset[str] = field(default_factory=lambda: frozenset({"adapters", "layernorm", "head"}))

    def __post_init__(self) -> None:
        if self.placement not in ("shared", "per_layer"):
            raise ValueError(f"adapter placement must be 'shared' or 'per_layer', got {self.placement!r}")
        if self.bottleneck is not None and self.bottleneck < 1:
            raise ValueError(f"adapter bottleneck must be >= 1, got {self.bottleneck}")
        unknown = set(self.task_specific) - set(TASK_GROUPS)
        if unknown:
            raise ValueError(f"unknown task-specific group{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; "
                             f"known: {', '.join(TASK_GROUPS)}")


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


