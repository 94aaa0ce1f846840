"""One compile, from an imported module to its report: what `aalbert-compile` prints and `aalbert.compile` returns.

`compile_module` runs the pipeline (plus plan-activations and allocate when
a `Placement` is given), then, on a target, lowers and simulates every task
and a request stream, and writes the report text. A module whose graphs have
off-ramps (outputs `exit_logits_<k>`, `aalbert.ir.offramps`) gets the
`early-exit` pass after the pipeline unless it names it, and its report the
cost of leaving at each off-ramp and, when the workload says where sentences
leave, every early-exit and DVFS policy. The result, `Compiled`,
holds the objects the report was printed from: the module, the allocation,
the backend's programs, simulation results and stream, the roofline. The
command-line tool writes its files from it; the Python API returns it.

A figure that is not a finite number (a fidelity comparison of outputs that
hold NaN or inf) is printed as such, and `Compiled.not_finite` says where it
arose, one line each (the command exits with status 3). An error a pass or
the backend raises names the weights it mentions by kind, layer and task
(`explain.weights_named`), and `Compiled.explain` says why a weight is
where the allocator put it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aalbert.errors import OptionError
from aalbert.ir.module import Module
from aalbert.mapper.backend import Backend, Stream
from aalbert.mapper.reports.explain import weights_named
from aalbert.mapper.reports.summary import summary_text
from aalbert.passes.lora import LoraRewrite
from aalbert.passes.pipelines import COMPRESSING, DEFAULT, Placement, compile_passes

if TYPE_CHECKING:
    from aalbert.passes.allocation.record import Allocation
    from aalbert.targets.hardware.spec import Target

__all__ = ["Compiled", "Fidelity", "Placement", "Plan", "Stream", "Watch", "compile_module"]

@dataclass(frozen=True)
class Fidelity:
    """Compare every task before and after compression on seeded inputs."""

    samples: int = 8
    activations: str = "f32"  # or fixed16


@dataclass
class Compiled:
    """A compiled module and everything its report was printed from."""

    module: Module
    report: str
    target: Target | None = None
    allocation: Allocation | None = None
    backend: Backend | None = None     # programs, results, stream
    roofline: list = field(default_factory=list)  # the first task's per-layer bounds
    reference: Module | None = None    # the module before compression (with fidelity)
    input_text: str | None = None      # the imported IR, when stages were kept
    dumps: list[tuple[str, str]] = field(default_factory=list)  # (NN-pass.ir, text) per pass
    not_finite: list[str] = field(default_factory=list)  # where each NaN or inf figure arose, one line each

    def explain(self, *weights: str) -> str:
        """Why each named weight (a symbol, words of its label such as 'ffn layer 2 cola', or a part of a
        symbol) is where the allocator put it: its kind, layers, tasks, place, and what every other place
        would cost per inference."""
        from aalbert.mapper.reports.explain import explain_lines

        if self.allocation is None:
            raise OptionError("explaining a weight's place needs a target (--target)")
        return "\n".join(explain_lines(self.module, self.allocation, list(weights))) + "\n"

    @property
    def programs(self) -> dict:
        """The instruction program of every task (lowered on first access)."""
        return {} if self.backend is None else {t: self.backend.program(t) for t in self.module.graphs}

    @property
    def results(self) -> dict:
        """The simulated cycles, energy and traffic of one inference of every task."""
        return {} if self.backend is None else dict(self.backend.results)

    @property
    def stream(self):
        return None if self.backend is None else self.backend.stream


@dataclass(frozen=True)
class Plan:
    """What one compile does: the pass pipeline, the compression passes after it (a list of passes), the
    placement on a target, the request stream simulated there, and the fidelity comparison."""

    pipeline: str = DEFAULT
    compression: object | None = None
    placement: Placement | None = None
    stream: Stream = Stream()
    fidelity: Fidelity | None = None


@dataclass(frozen=True)
class Watch:
    """How a compile is watched: keep each stage's IR text (`Compiled.input_text`, `dumps`), verify after every
    pass, and `stage`, if given, told the name of each stage as it starts (each pass, fidelity, simulation)."""

    keep_text: bool = False
    verify_each: bool = False
    stage: Callable[[str], None] | None = None


def compile_module(module: Module, title: str, plan: Plan = Plan(), watch: Watch = Watch()) -> Compiled:
    """Run the compile's passes (`pipelines.compile_passes`: the pipeline, early exit where the module has
    off-ramps, the compression, the placement if asked) on `module`, simulate on the target, and report."""
    stage = watch.stage or (lambda name: None)
    from aalbert.passes.base import PassManager

    fidelity, placement, stream = plan.fidelity, plan.placement, plan.stream
    if stream.requests < 0:
        raise OptionError(f"--requests must be >= 0, got {stream.requests}")
    manager = PassManager(compile_passes(module, plan.pipeline, plan.compression, placement),
                          verify_each=watch.verify_each, keep_text=watch.keep_text)
    input_text = None
    if watch.keep_text:
        from aalbert.ir.printer import print_module
        input_text = print_module(module)
    reference: list[Module] = []
    latest = [module]  # the module the passes are at, whose weights an error names
    rewrites: list[LoraRewrite] = []  # the lora pass's record, taken before a later pass drops it

    def keep_rewrite() -> None:
        found = manager.analyses.get(LoraRewrite)
        if found is not None:
            rewrites.append(found)

    def before_pass(p, current) -> None:
        stage(p.name)
        latest[0] = current
        keep_rewrite()
        if fidelity is not None and not reference and p.name in COMPRESSING:
            reference.append(current.copy())  # the uncompressed module, for fidelity

    with weights_named(lambda: latest[0]):
        module = latest[0] = manager.run(module, before_pass)
        keep_rewrite()
        text = summary_text(module, title) + lora_text(module, rewrites[-1] if rewrites else None)
        compiled = Compiled(module, "", input_text=input_text, dumps=manager.dumps,
                            reference=reference[0] if reference else None)
        if fidelity is not None:
            stage("fidelity")
            text += _fidelity_text(compiled, fidelity)
        if placement is not None:
            stage("lowering and simulating")
            text += _placement_text(compiled, manager, placement, stream)
    compiled.report = text
    return compiled


def lora_text(module: Module, rewrite: LoraRewrite | None) -> str:
    """How the LoRA pairs run, when the lora pass ran, and what a task switch costs, when it rewrites weights."""
    from aalbert.mapper.reports.lora import mode_lines, switch_lines

    lines = (mode_lines(rewrite) if rewrite is not None else []) + switch_lines(module)
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def _fidelity_text(compiled: Compiled, fidelity: Fidelity) -> str:
    from aalbert.ir.interpreter import fixed_point
    from aalbert.mapper.fidelity import Feeds, compare, fidelity_lines, storage_bytes

    if compiled.reference is None:
        raise OptionError("--fidelity needs compression: use --compress, --quantize or --sparsity")
    acts = fixed_point() if fidelity.activations == "fixed16" else None
    rows = compare(compiled.reference, compiled.module, Feeds(samples=fidelity.samples), activations=acts)
    note = "activations in 16-bit fixed point" if acts else "activations in f32"
    lines = fidelity_lines(rows, storage_bytes(compiled.reference), storage_bytes(compiled.module), note)
    compiled.not_finite += [r.not_finite for r in rows if r.not_finite]
    return "\n" + "\n".join(lines) + "\n"


def _placement_text(compiled: Compiled, manager, placement: Placement, stream: Stream) -> str:
    from aalbert.mapper.backend import run_backend
    from aalbert.mapper.reports.mapping import mapping_lines
    from aalbert.mapper.reports.memory import allocation_lines, memory_lines
    from aalbert.mapper.reports.simulation import breakdown_lines, roofline_lines, stream_lines, task_lines
    from aalbert.passes.allocation.record import Allocation
    from aalbert.targets.hardware.spec import load_target
    from aalbert.targets.sim.roofline import roofline

    module = compiled.module
    target = load_target(placement.target)
    allocation = manager.analyses.get(Allocation)
    text = "\n" + "\n".join(memory_lines(module, target) + [""] + allocation_lines(allocation) + [""]
                            + mapping_lines(module, allocation, next(iter(module.graphs)), target)) + "\n"
    backend = run_backend(module, target, allocation.workload, stream)
    first = next(iter(module.graphs))
    bounds = roofline(backend.program(first), backend.results[first], target)
    lines = task_lines(backend.results, target) + [""] + breakdown_lines(module, backend.results[first], target)
    lines += [""] + roofline_lines(bounds, first)
    wl = allocation.workload
    if backend.generation is not None:
        from aalbert.mapper.reports.generation import generation_lines
        lines += [""] + generation_lines(backend.generation, module, target.clock_mhz)
    elif backend.stream is not None:
        lines += [""] + stream_lines(backend.stream, stream.pattern, wl.inferences_per_second,
                                     wl.inferences_per_wakeup)
    if backend.exits is not None:
        from aalbert.mapper.reports.early_exit import exit_lines, policy_lines
        lines += [""] + exit_lines(backend, first, wl.inferences_per_wakeup <= 1)
        if backend.policies is not None:
            lines += [""] + policy_lines(backend, wl.latency_target_ms)
    compiled.target, compiled.allocation, compiled.backend, compiled.roofline = target, allocation, backend, bounds
    return text + "\n" + "\n".join(lines) + "\n"
