"""The Python API: `aalbert.compile(tasks, example_inputs, ...)` for notebooks and scripts.

    import aalbert
    result = aalbert.compile({"sst2": model_a, "mnli": "mnli.onnx"}, inputs, target="edge_accel")
    print(result.report)        # what aalbert-compile prints
    result.module, result.allocation, result.programs, result.results, result.stream

A task is an `nn.Module` (imported with its example inputs: symbolic trace
where it works, else torch.export), an `ExportedProgram`, or a path to an
.onnx, .pt2 or .ir file. Weights that several tasks share (a frozen
backbone) are stored once. The compile itself is `driver.compile_module`,
the same function `aalbert-compile` runs. torch is imported only when a task
is a PyTorch object.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aalbert.errors import OptionError
from aalbert.ir.module import Module
from aalbert.mapper.driver import Compiled, Fidelity, Placement, Plan, Stream, compile_module
from aalbert.mapper.frontends.dims import DimSpec
from aalbert.mapper.reports.summary import count
from aalbert.passes.pipelines import DEFAULT, with_lora

__all__ = ["compile", "Compiled", "CompileOptions"]


@dataclass(frozen=True)
class CompileOptions:
    """The keyword options of `compile`, as its docstring describes them."""

    pipeline: str = DEFAULT
    target: str | None = None
    workload: str | None = None
    switch_rate: float | None = None
    wakeup: float | None = None
    spill: bool = False
    solver: str = "auto"
    mapping: str = "search"
    objective: str = "balanced"
    batch: int | None = None
    seq_len: int | None = None
    dims: Mapping[str, int] | None = None
    requests: int = 100
    pattern: str = "round-robin"
    fidelity: bool = False
    prompt: int | None = None
    generate: int | None = None
    lora: str | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> CompileOptions:
        """The options from keyword arguments; an unknown keyword is an `OptionError` naming the nearest."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                near = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise OptionError(f"aalbert.compile: unknown option '{key}'{hint}; options: {', '.join(names)}")
        return cls(**options)

    def placement(self) -> Placement | None:
        """Where to place the module, with a target; a workload, switch rate or wakeup need one."""
        if not self.target:
            if any(v is not None for v in (self.workload, self.switch_rate, self.wakeup, self.prompt,
                                           self.generate)):
                raise OptionError("a workload, switch rate, wakeup, prompt or generate needs a target")
            return None
        return Placement(self.target, self.workload, self.switch_rate, self.wakeup, self.spill, self.solver,
                         self.mapping, self.objective, self.prompt, self.generate)


def compile(tasks: Mapping[str, Any], example_inputs: Mapping[str, Any] | None = None, **options: Any) -> Compiled:
    """Compile one model per task and, with a `target`, place, lower and simulate it.

    `tasks` maps task names to `nn.Module`s, `ExportedProgram`s or file
    paths. `example_inputs` are the keyword inputs of the PyTorch models
    (tensors or numpy arrays by name; or a dict per task name), whose shapes
    fix the graphs'. The keyword options (`CompileOptions`; an unknown one is
    an error):

    - `pipeline`: a pass pipeline (`aalbert-opt --list-passes`), e.g.
      "canonicalize,share,compress{policy=edgebert}" (default: canonicalize,share);
    - `lora`: how LoRA pairs run, "unmerged", "merged" or "merge-on-switch"
      (`aalbert-compile --lora`; default: as imported);
    - `target`: a built-in target or a TOML file; with one, the module is
      placed, lowered and simulated;
    - `workload`: a [workload] TOML file; `switch_rate` and `wakeup`
      (inferences per power-up) override its figures; `spill` allows weights
      off chip; `solver` "auto", "ilp" or "greedy";
    - `mapping`: "search" (the default) or "fixed"; `objective`: what the
      mapping search minimizes ("balanced", "energy", "latency", "edp");
    - `batch`, `seq_len`, `dims`: the files' dynamic dimensions (defaults 1
      and 128; a size asked for that a static file or the example inputs
      contradict, or a `dims` name no input has, is an error);
    - `requests`, `pattern`: the request stream simulated on the target
      (default 100, "round-robin");
    - `fidelity`: compare every task before and after compression;
    - `prompt`, `generate`: a decoder's prompt and generated tokens per
      request (defaults: the prefill graph's tokens; 128, or what the KV
      cache leaves).

    Returns the `Compiled` result: `module`, `allocation`, `programs`,
    `results` (per task), `stream` and `report`; `not_finite` says where any
    NaN or inf of the report arose, and `explain(weight)` why a weight is
    where the allocator put it.
    """
    opts = CompileOptions.of(options)
    if not tasks:
        raise OptionError("no tasks to compile")
    batch, seq_len = opts.batch, opts.seq_len
    given = frozenset(k for k, v in (("batch", batch), ("seq_len", seq_len)) if v is not None)
    spec = DimSpec(1 if batch is None else batch, 128 if seq_len is None else seq_len, dict(opts.dims or {}), given)
    module = Module()
    seen: dict = {}  # a backbone shared by several task models is read once
    files = []
    for task, model in tasks.items():
        if isinstance(model, (str, os.PathLike)):
            files.append((task, os.fspath(model)))
        else:
            _import_model(model, example_inputs, module, task, spec, seen)
    if files:
        from aalbert.mapper.loading import load_files
        module.merge(load_files(files, spec, check_names=False))
    spec.check_names()
    order = [t for t in tasks if t in module.graphs] + [t for t in module.graphs if t not in tasks]
    module.graphs = {t: module.graphs[t] for t in order}  # in the caller's order (an .ir file's own tasks last)
    placement = opts.placement()
    title = f"aalbert.compile: {count(len(tasks), 'task')}"
    plan = Plan(with_lora(opts.pipeline, opts.lora), None, placement, Stream(opts.requests, opts.pattern),
                Fidelity() if opts.fidelity else None)
    return compile_module(module, title, plan)


def _import_model(model, example_inputs, module: Module, task: str, spec: DimSpec, seen: dict) -> None:
    import numpy as np
    import torch

    from aalbert.mapper.frontends.torch_import import ImportOptions, import_exported, import_torch

    if not isinstance(model, (torch.nn.Module, torch.export.ExportedProgram)):
        raise OptionError(f"task {task!r}: expected an nn.Module, an ExportedProgram or a file path, "
                          f"got {type(model).__name__}")
    if example_inputs is None:
        if isinstance(model, torch.export.ExportedProgram):  # its recorded shapes, dynamic ones fixed by spec
            import_exported(model, module, task, spec, options=ImportOptions(seen=seen))
            return
        raise OptionError(f"task {task!r} is a PyTorch module: give its example inputs")
    inputs = example_inputs[task] if isinstance(example_inputs.get(task), Mapping) else example_inputs
    tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise OptionError(f"task {task!r}: example input {bad[0]!r} is not a tensor or numpy array")
    graph = import_torch(model, tensors, module, task, ImportOptions(seen=seen))
    for v in graph.inputs:  # the example inputs fix the shapes: a size asked for must be theirs
        spec.check_static(f"task {task!r}", v.name, v.type.shape)
