"""PyTorch models into a module's graph: `nn.Module`s, `ExportedProgram`s and `.pt2` files.

`import_torch` takes a module and example inputs. It tries the fast path
first (`fx_trace`: symbolic tracing, for modules written to be traceable,
like the project's own ALBERT) and otherwise, with a `TraceFallback`
warning that says why, the main path (`aten_import`: torch.export).
`import_exported` takes a program already exported, `import_pt2` one saved
with `torch.export.save`. A program is walked as torch.export recorded it
where the ATen table takes every operator and none writes to its
arguments; otherwise (or when that walk fails) it is decomposed to
functional Core ATen and walked again, as before. A `.pt2` of the common
form is read without torch.export.load (`pt2_reader`), and by it only when
it must be decomposed. Outputs are named by the model: a `ModelOutput`'s or
dict's keys, `output` for a lone tensor, `output_0`, `output_1`, ... for a
tuple.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
import torch.fx
from torch import nn
from torch.export import ExportedProgram

from aalbert.errors import FrontendError
from aalbert.ir.graph import Graph
from aalbert.ir.module import Module
from aalbert.mapper.frontends.aten_import import (
    AtenWalker,
    capture,
    decompose,
    input_types,
    load_exported,
    load_pt2,
    walkable,
)
from aalbert.mapper.frontends.dims import DimSpec
from aalbert.mapper.frontends.fx_trace import FxWalker
from aalbert.mapper.frontends.program import Program
from aalbert.mapper.frontends.torch_common import check_count, first_line
from aalbert.passes.layout import fold_weight_transposes

R = TypeVar("R")


class TraceFallback(UserWarning):
    """A module symbolic tracing cannot import goes through torch.export instead (slower)."""


@dataclass(frozen=True)
class ImportOptions:
    """How a PyTorch import runs. `output_names` overrides the names the model gives its outputs. `tracer`
    "symbolic" uses only the fast path, "export" only torch.export, "auto" the fast path where it works.
    `seen`, a dict the caller passes to several imports into the same module, remembers which weight each
    parameter became, so a parameter shared by several task models (a frozen backbone) is copied and hashed
    once rather than once per task. `where` is what errors name (default: the task)."""

    output_names: Sequence[str] | None = None
    tracer: str = "auto"
    seen: dict | None = None
    where: str | None = None


def import_torch(model: nn.Module | ExportedProgram, example_inputs: Mapping[str, torch.Tensor], module: Module,
                 task: str, options: ImportOptions = ImportOptions()) -> Graph:
    """Import `model` called with `example_inputs` (keyword arguments) as task `task`."""
    tracer, seen = options.tracer, options.seen
    if tracer not in ("auto", "symbolic", "export"):
        raise ValueError(f"unknown tracer {tracer!r}")
    where = options.where or f"task {task!r}"
    if isinstance(model, ExportedProgram):
        return import_exported(model, module, task, shapes={k: v.shape for k, v in example_inputs.items()},
                               options=options)
    if tracer != "export":
        try:
            gm = torch.fx.symbolic_trace(model)
            graph = Graph(task)
            FxWalker(module, graph, task, seen).run(gm, example_inputs, options.output_names)
            return _finish(module, graph)
        except Exception as e:
            if tracer == "symbolic":
                if isinstance(e, FrontendError):
                    raise
                raise FrontendError(f"{where}: torch.fx cannot trace {type(model).__name__} "
                                    f"({type(e).__name__}: {first_line(e)})") from None
            module.remove_unused_weights()  # whatever the abandoned walk added
            reason = first_line(e).removeprefix(f"{where}: ")
            warnings.warn(f"{where}: torch.fx cannot import {type(model).__name__} ({reason}); "
                          "importing it through torch.export instead", TraceFallback, stacklevel=2)
    ep = capture(model, example_inputs, where)
    return import_exported(ep, module, task, shapes={k: v.shape for k, v in example_inputs.items()},
                           options=options)


def import_exported(ep: ExportedProgram, module: Module, task: str, dims: DimSpec | None = None,
                    shapes: Mapping[str, Sequence[int]] | None = None,
                    options: ImportOptions = ImportOptions()) -> Graph:
    """Import a `torch.export` program; dynamic dimensions are fixed by `shapes`, else by `dims`."""
    program = _program_of(ep, options.where or f"task {task!r}")
    types = input_types(program, options.where or f"task {task!r}", dims, shapes)
    graph = _walk_whole(program, module, task, types, options)
    return graph if graph is not None else _walk_decomposed(ep, module, task, types, options)


def import_pt2(path: str | os.PathLike, module: Module, task: str | None = None, dims: DimSpec | None = None,
               input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import a `.pt2` file (`torch.export.save`) as task `task` (default: the file's stem)."""
    task, options = task or Path(path).stem, ImportOptions(where=str(path))
    program = _read(load_pt2, path)
    if isinstance(program, ExportedProgram):  # a form only torch reads
        return import_exported(program, module, task, dims, input_shapes, options)
    graph = _walk_whole(program, module, task, input_types(program, str(path), dims, input_shapes), options)
    if graph is not None:
        return graph
    ep = _read(load_exported, path)  # to be decomposed: torch reads the file after all
    return _walk_decomposed(ep, module, task, input_types(_program_of(ep, str(path)), str(path), dims, input_shapes),
                            options)


def _program_of(ep: ExportedProgram, where: str) -> Program:
    try:
        return Program.of(ep)
    except Exception as e:  # torch loaded a file whose parts do not fit together (its own asserts say which)
        raise FrontendError(f"{where}: not a consistent torch.export program ({type(e).__name__}: "
                            f"{first_line(e)})") from None


def _read(load: Callable[[str | os.PathLike], R], path: str | os.PathLike) -> R:
    try:
        return load(path)
    except FrontendError as e:
        raise FrontendError(_with_output_hint(str(e))) from None


def _walk_whole(program: Program, module: Module, task: str, types, options: ImportOptions) -> Graph | None:
    """The graph of `program` walked as recorded, or None where it must be decomposed first: it calls an
    operator the table lacks or one that writes to its arguments (`walkable`), or the walk fails (a form an
    operator's handler takes only as Core ATen spells it), in which case the decomposed program is imported
    as before, errors included."""
    if not walkable(program):
        return None
    try:
        graph = _build(program, module, task, types, options)
    except Exception:  # whatever it was, the decomposed program's walk says it again, or succeeds
        module.remove_unused_weights()  # whatever the abandoned walk added
        return None
    return _finish(module, graph)


def _walk_decomposed(ep: ExportedProgram, module: Module, task: str, types, options: ImportOptions) -> Graph:
    """The graph of `ep` decomposed to functional Core ATen."""
    program = Program.of(decompose(ep, options.where or f"task {task!r}"))
    return _finish(module, _build(program, module, task, types, options))


def _build(program: Program, module: Module, task: str, types, options: ImportOptions) -> Graph:
    """The graph of a functional program whose inputs have `types`, not yet added to the module."""
    where = options.where or f"task {task!r}"
    graph = Graph(task)
    walker = AtenWalker(module, graph, task, options.seen)
    outputs = walker.run(program, types, where)
    if options.output_names is not None:
        outputs = list(zip(check_count(options.output_names, len(outputs), where), (v for _, v in outputs)))
    graph.set_outputs((name, walker.tensor(v)) for name, v in outputs)
    return graph


def _with_output_hint(message: str) -> str:
    """A program whose outputs are a class torch cannot rebuild on load (a Hugging Face `ModelOutput`): say
    how to save one it can."""
    m = re.search(r"Deserializing (\S+) in pytree is not registered", message)
    if m is None:
        return message
    return (f"{message}; the program returns a {m.group(1)}, which torch.export.load cannot rebuild: export a "
            "model that returns a tuple or a dict of tensors (for a Hugging Face model, return_dict=False, or a "
            "wrapper returning dict(outputs)) and save it again")


def _finish(module: Module, graph: Graph) -> Graph:
    graph.remove_dead()
    fold_weight_transposes(module, graph)  # matrices read through a transpose other than linear's
    graph.renumber()
    module.add_graph(graph)
    module.remove_unused_weights()
    return graph
