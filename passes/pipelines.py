"""The order of a compile, written once: the named pipelines every command, the Python API, the study and the
benchmarks build from, all run through the pass manager.

    prepare   canonicalize, share           one frontend-independent form per task; every weight's role and kind
    lora      lora{mode=...}                how LoRA pairs run, when a compile says (`--lora`)
    exits     early-exit                    when a graph has off-ramps (`ir.offramps`) and the pipeline lacks it
    compress  compress{policy=...}          prune and quantize by a policy, or the passes a user names
    place     plan-activations, allocate    the target's memories (`Placement`)

A compile runs `prepare` (or the pipeline a user gives in its place), `lora` if asked, `exits` where the module
needs it, the compression asked for, then `place`. A new default pass is one line in `PREPARE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aalbert.ir.module import Module
from aalbert.ir.offramps import LOGITS
from aalbert.passes.base import Pass, make_pass, parse_pipeline

if TYPE_CHECKING:
    from aalbert.targets.hardware.spec import Target
    from aalbert.targets.sim.workload import Workload

PREPARE: tuple[str, ...] = ("canonicalize", "share")
DEFAULT = ",".join(PREPARE)  # what aalbert-compile and aalbert.compile run when no pipeline is given
EXITS = "early-exit"
LORA = "lora"                 # after prepare when a compile says how LoRA pairs run (`with_lora`)
COMPRESSING = ("compress", "quantize", "prune")  # the passes that change weights' encodings


@dataclass(frozen=True)
class Placement:
    """Where and how to place the module: a target (built-in name, TOML file or `Target`) and the allocator's
    options; a workload is a [workload] TOML file or a `Workload`."""

    target: str | Target
    workload: str | Workload | None = None
    switch_rate: float | None = None   # overrides the workload's
    wakeup: float | None = None        # inferences per power-up; overrides the workload's
    spill: bool = False
    solver: str = "auto"
    mapping: str = "search"            # search, or fixed: the column-chunk lowering
    objective: str = "balanced"        # what the mapping search minimizes: balanced, energy, latency or edp
    prompt: int | None = None          # decoders: prompt tokens per request (default: the prefill graph's)
    generate: int | None = None        # decoders: tokens generated per request
    cache: str | None = None           # decoders: the one level the KV cache may take (default: the allocator's choice)

    def passes(self) -> list[Pass]:
        """plan-activations and allocate for this placement."""
        options = {"target": self.target, "solver": self.solver, "mapping": self.mapping,
                   "objective": self.objective, "spill": self.spill, "workload": self.workload or "",
                   "switch_rate": self.switch_rate, "inferences_per_wakeup": self.wakeup,
                   "prompt": self.prompt, "generate": self.generate}
        if self.cache is not None:
            options["cache"] = self.cache
        return [make_pass("plan-activations", {"target": self.target}, typed=True),
                make_pass("allocate", options, typed=True)]


def with_lora(pipeline: str, mode: str | None) -> str:
    """`pipeline` followed by the `lora` pass in `mode` (how LoRA pairs run; `passes.lora`), or as it is
    without a mode."""
    if mode is None:
        return pipeline
    step = f"{LORA}{{mode={mode}}}"
    return f"{pipeline},{step}" if pipeline.strip() else step


def prepare() -> list[Pass]:
    """The `prepare` stage: canonical form and sharing."""
    return parse_pipeline(DEFAULT)


def compress(policy: object) -> list[Pass]:
    """The `compress` stage alone: prune and quantize by `policy` (a name, a TOML file or a `Policy`)."""
    return [make_pass("compress", {"policy": policy}, typed=True)]


def has_off_ramps(module: Module) -> bool:
    return any(name.startswith(LOGITS) for g in module.graphs.values() for name, _ in g.outputs)


def compile_passes(module: Module, pipeline: str | Sequence[Pass] = DEFAULT,
                   compression: object | None = None, placement: Placement | None = None) -> list[Pass]:
    """The passes of one compile of `module`: `pipeline` (text or passes; `prepare` by default), the early-exit
    pass when the module has off-ramps and the pipeline lacks it, `compression` (passes, or a policy: a
    built-in name, a TOML file or a `Policy`), then `placement`."""
    passes = _passes(pipeline)
    if has_off_ramps(module) and not any(p.name == EXITS for p in passes):
        passes.append(make_pass(EXITS, {}))
    if compression is not None:
        passes += list(compression) if isinstance(compression, (list, tuple)) else compress(compression)
    if placement is not None:
        passes += placement.passes()
    return passes


def _passes(pipeline: str | Sequence[Pass]) -> list[Pass]:
    if isinstance(pipeline, str):
        return parse_pipeline(pipeline) if pipeline.strip() else []
    return list(pipeline)


def text(passes: Sequence[Pass]) -> str:
    """A pipeline as text (objects given programmatically print as their names)."""
    return ",".join(p.spec() for p in passes)
