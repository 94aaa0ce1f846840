"""The main torch path: `torch.export`, decomposition to functional Core ATen where needed, and a walk.

`capture` exports a module non-strictly (torch runs the Python forward, so
Hugging Face and AdapterHub models export as written). A program whose
operators are all functional is walked as recorded, composite operators
(`layer_norm`, `softmax`, `reshape`...) included: the table imports each as
its decomposition would (`aten_composite`). Otherwise, or when the table
lacks one of them, `decompose` runs torch's Core ATen decompositions first,
which leave no in-place or aliasing operator (a re-trace of the whole
program: seconds). Five composite operators are kept whole because the IR
has them as ops and the canonical graph is written with them: `linear`,
`matmul` and `scaled_dot_product_attention` (decomposed, they would come
back as reshaped 2-D or 3-D products to be reassembled), `silu`, and
`index_copy` (a state update in place, which would come back as a general
`index_put`).

A buffer the program writes (a decoder's KV cache, `examples/decoders.py`)
is state (`ir/state.py`): a graph input named by the buffer and an output
of the same name, after the user outputs.

`AtenWalker` walks a `Program` (what the walk needs of an `ExportedProgram`,
or of a `.pt2` file read by `pt2_reader`): user inputs become graph inputs,
parameters and float buffers weights (read lazily, so a matrix only read
transposed is stored transposed), integer buffers and lifted constants
concrete tensors. Each node goes through the `aten_ops` table; its result is
checked against the dtype and shape torch recorded for the node. A `.pt2`
file is read by `load_pt2`, safely: tensors only.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import torch
import torch.fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from aalbert.errors import FrontendError, UnsupportedOpError
from aalbert.ir.registry import InferError
from aalbert.ir.types import DType, TensorType
from aalbert.limits import open_regular
from aalbert.mapper.frontends.aten_ops import ATEN_OPS
from aalbert.mapper.frontends.dims import DimSpec
from aalbert.mapper.frontends.program import Program, TensorMeta
from aalbert.mapper.frontends.pt2_archive import allowed_target, check_archive
from aalbert.mapper.frontends.pt2_reader import read_program
from aalbert.mapper.frontends.torch_common import (
    BFLOAT16,
    Fail,
    Param,
    T,
    TorchEmitter,
    dtype_of,
    first_line,
    has_ir,
    load,
    source_line,
    spec_names,
)
from aalbert.outputs import note_read

KEPT_WHOLE = ("linear.default", "matmul.default", "scaled_dot_product_attention.default", "silu.default",
              "index_copy.default")
# ATen operators outside the table that a program walked as recorded may call: they only make a tensor from
# their arguments, known at import, so the walk runs them on the spot, as it does in a decomposed program.
MADE_ON_THE_SPOT = frozenset(("arange.default", "arange.start", "arange.start_step", "full.default", "ones.default",
                              "zeros.default", "scalar_tensor.default"))


def decompositions() -> dict:
    """torch's Core ATen decomposition table, less the composite operators the IR has as ops."""
    table = torch.export.default_decompositions()
    for name in KEPT_WHOLE:
        packet, overload = name.split(".")
        table.pop(getattr(getattr(torch.ops.aten, packet), overload), None)
    return table


def capture(model: torch.nn.Module, inputs: Mapping[str, torch.Tensor], where: str) -> ExportedProgram:
    """`torch.export` of `model` called with keyword `inputs`, as recorded; one line on failure."""
    try:
        return torch.export.export(model, (), dict(inputs), strict=False)
    except Exception as e:
        raise FrontendError(f"{where}: torch.export cannot capture {type(model).__name__} "
                            f"({type(e).__name__}: {first_line(e)})") from None


def decompose(ep: ExportedProgram, where: str) -> ExportedProgram:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations, nothing the user can act on
            return ep.run_decompositions(decompositions())
    except Exception as e:
        raise FrontendError(f"{where}: torch cannot decompose the program to Core ATen "
                            f"({type(e).__name__}: {first_line(e)})") from None


def load_pt2(path: str | os.PathLike) -> Program | ExportedProgram:
    """The program saved by `torch.export.save` in `path`, or one line saying why not.

    Every entry of the archive is checked first (`pt2_archive.check_archive`). A program of the common form
    is then read from the checked entries (`pt2_reader`: a `Program`), any other by torch, as
    `load_exported` reads it."""
    note_read(path)
    with _checked(path) as f:
        program = read_program(f)
        return program if program is not None else _torch_load(f, path)


def load_exported(path: str | os.PathLike) -> ExportedProgram:
    """The program in `path` as torch.export.load reads it (an `ExportedProgram`, which torch can decompose),
    after the same check, with tensors-only unpickling forced for anything it unpickles."""
    note_read(path)
    with _checked(path) as f:
        return _torch_load(f, path)


@contextlib.contextmanager
def _checked(path: str | os.PathLike):
    """The open `.pt2` file at `path`, every entry of which the archive check accepted."""
    with open_regular(path, "a .pt2 model") as f:
        check_archive(f, str(path))
        yield f


def _torch_load(f: BinaryIO, path: str | os.PathLike) -> ExportedProgram:
    """torch.export.load of the checked open file `f`, its failures one line naming `path`."""
    records: list[logging.LogRecord] = []
    try:
        with _quiet_torch_export(records), _tensors_only():
            ep = torch.export.load(f)
    except Exception as e:  # a zip reader, a JSON decoder, a schema check: each fails its own way
        cause = next((r.exc_info[1] for r in records if r.exc_info and r.exc_info[1] is not None), None)
        reason = f"{type(cause).__name__}: {first_line(cause)}" if cause is not None and \
            "error when deserializing" in str(e) else f"{type(e).__name__}: {first_line(e)}"
        raise FrontendError(f"{path}: not a readable torch.export program ({reason})") from None
    if not isinstance(ep, ExportedProgram):
        raise FrontendError(f"{path}: holds a {type(ep).__name__}, not a torch.export program")
    # The guards would become Python run on decomposition; they were checked, and shapes are fixed and
    # checked against the program's ranges here (input_types), so they are not needed at all.
    ep._guards_code = []
    return ep


@contextlib.contextmanager
def _quiet_torch_export(records: list):
    """Keep torch.export's deserialization traceback off the terminal, but keep its reason."""
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
    logger = logging.getLogger("torch.export")
    saved = logger.handlers, logger.level, logger.propagate
    logger.handlers, logger.propagate = [Keep()], False
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.handlers, _, logger.propagate = saved
        logger.setLevel(saved[1])


@contextlib.contextmanager
def _tensors_only():
    """torch.load inside torch.export.load may fall back to full unpickling: forbid that."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


def input_types(program: Program, where: str, dims: DimSpec | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, TensorType]:
    """Static types of the program's user inputs: given shapes, or the recorded ones with
    dynamic dimensions fixed by `dims` (default: batch 1, sequence 128), each checked against the program's
    range constraints."""
    dims = DimSpec() if dims is None else dims  # a fresh one: a DimSpec records the names it met
    shapes = shapes or {}
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    users = [s for s in program.input_specs if s.kind == InputKind.USER_INPUT]
    state = state_shapes(program)
    unknown = set(shapes) - {s.arg.name for s in users} - set(state)
    if unknown:
        raise FrontendError(f"{where}: the program has no input named '{sorted(unknown)[0]}'")
    for name in sorted(set(shapes) & set(state)):
        if tuple(int(d) for d in shapes[name]) != state[name]:
            raise FrontendError(f"{where}: input '{name}' has shape {list(shapes[name])}, the program's state "
                                f"'{name}' is {list(state[name])}")
    seen: dict[str, int] = {}
    types = {}
    for spec in users:
        name = spec.arg.name
        val = TensorMeta.of(placeholders[name].meta.get("val")) if name in placeholders else None
        if val is None:
            raise FrontendError(f"{where}: input '{name}' is not a tensor; only tensor inputs are supported")
        try:
            dtype = dtype_of(val.dtype)
        except Fail as e:
            raise FrontendError(f"{where}: input '{name}': {e}") from None
        recorded = [(d, None) if isinstance(d, int) else (None, d) for d in val.shape]
        if name in shapes:
            shape = tuple(int(d) for d in shapes[name])
            if len(shape) != len(recorded) or any(v is not None and v != s for (v, _), s in zip(recorded, shape)):
                want = [v if v is not None else p for v, p in recorded]
                raise FrontendError(f"{where}: input '{name}' has shape {list(shape)}, the program expects {want}")
            for (_, sym), s in zip(recorded, shape):
                if sym and seen.setdefault(sym, s) != s:
                    raise FrontendError(f"{where}: input '{name}': dimension '{sym}' is {s} here but "
                                        f"{seen[sym]} in another input")
        else:
            shape = dims.resolve(where, name, recorded, seen)
        for i, ((_, sym), n) in enumerate(zip(recorded, shape)):
            lo, hi = program.ranges.get(sym, (None, None)) if sym else (None, None)
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                raise FrontendError(f"{where}: input '{name}' dimension {i} is {n}, but the program accepts "
                                    f"{lo if lo is not None else '-inf'} to {hi if hi is not None else 'inf'}")
        types[name] = TensorType(tuple(shape), dtype)
    return types


def state_shapes(program: Program) -> dict[str, tuple[int, ...]]:
    """The shapes of the buffers the program writes (its state, read and written under their names)."""
    written = {out.target for out in program.output_specs if out.kind == OutputKind.BUFFER_MUTATION}
    return {s.target: tuple(program.state_dict.get(s.target, program.constants.get(s.target)).shape)
            for s in program.input_specs if s.kind == InputKind.BUFFER and s.target in written}


class AtenWalker(TorchEmitter):
    """Walks a functional `Program` into one task's graph."""

    def run(self, program: Program, types: Mapping[str, TensorType], where: str) -> list[tuple[str, Any]]:
        """Builds the graph; returns the outputs as (name, value) pairs: the user outputs, named by the
        program, then the state it writes (a buffer the program mutates: an input and an output named by the
        buffer, as `ir/state.py` has it)."""
        self.where = where
        placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        for out in program.output_specs:
            if out.kind not in (OutputKind.USER_OUTPUT, OutputKind.BUFFER_MUTATION):
                raise UnsupportedOpError(f"{where}: the program writes {out.target or out.arg.name} "
                                         f"({out.kind.name}); only models without side effects, or whose "
                                         "side effects are on their own buffers (state), are supported")
        state = [out.target for out in program.output_specs if out.kind == OutputKind.BUFFER_MUTATION]
        env: dict[torch.fx.Node, Any] = {}
        for spec in program.input_specs:
            if spec.kind == InputKind.USER_INPUT:
                env[placeholders[spec.arg.name]] = T(self.b.input(spec.arg.name, types[spec.arg.name]))
        for spec in program.input_specs:
            node = placeholders[spec.arg.name]
            if spec.kind == InputKind.USER_INPUT:
                continue
            if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
                tensor = program.state_dict.get(spec.target)
                if tensor is None:  # non-persistent buffers live in `constants`
                    tensor = program.constants[spec.target]
                if tensor.dtype == torch.bfloat16:
                    raise FrontendError(f"{where}: {spec.kind.name.lower()} '{spec.target}' is {BFLOAT16}")
                if spec.target in state:
                    env[node] = T(self.b.input(spec.target, _state_type(tensor, spec.target)))
                else:
                    env[node] = Param(tensor, spec.target) if tensor.is_floating_point() else tensor
            elif spec.kind == InputKind.CONSTANT_TENSOR:
                env[node] = program.constants[spec.target]
            else:
                raise UnsupportedOpError(f"{where}: program input {spec.arg.name} of kind {spec.kind.name} "
                                         "is not supported")
        for node in program.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                results = list(load(node.args[0], env))
                written = {out.target: r for out, r in zip(program.output_specs, results)
                           if out.kind == OutputKind.BUFFER_MUTATION}
                users = [r for out, r in zip(program.output_specs, results) if out.kind == OutputKind.USER_OUTPUT]
                return list(zip(spec_names(program.out_spec, len(users)), users)) + \
                    [(name, written[name]) for name in self.state_order(program, state)]
            if node.op != "call_function":
                raise UnsupportedOpError(f"{where}: fx node '{node.name}' ({node.op} {node.target}) is not "
                                         "supported: control flow and submodule calls cannot be imported")
            env[node] = self.call(node, load(node.args, env), load(node.kwargs, env))
        raise FrontendError(f"{where}: the program has no output")

    @staticmethod
    def state_order(program: Program, state: list[str]) -> list[str]:
        """The state buffers in the order the program reads them (so outputs pair up with inputs)."""
        return [s.target for s in program.input_specs if s.kind == InputKind.BUFFER and s.target in state]

    def call(self, node: torch.fx.Node, args, kwargs):
        if node.target is operator.getitem and isinstance(args[0], (tuple, list)):
            return args[0][args[1]]
        name = overload_name(node.target)
        at = f"fx node '{node.name}' (aten.{name})"
        line = source_line(node)
        if line:
            at += f" from {line}"
        if not has_ir(args, kwargs):  # sizes, shapes, full(), arange(): run on the spot
            try:
                return node.target(*args, **kwargs)
            except Exception as e:
                raise FrontendError(f"{self.where}: {at}: {type(e).__name__}: {first_line(e)}") from None
        handler = ATEN_OPS.get(name)
        if handler is None:
            raise UnsupportedOpError(f"{self.where}: ATen operator {name} is not supported; {at}; "
                                     f"{len(ATEN_OPS)} operators are supported (docs/aten_ops.md)")
        val = TensorMeta.of(node.meta.get("val"))
        self.out_dtype = _dtype_or_none(val)
        self.node_target = name.split(".")[0]
        try:
            result = handler(self, *args, **kwargs)
            if isinstance(result, T) and val is not None:
                _check(result, val)
        except (Fail, InferError, ValueError, TypeError, IndexError) as e:
            raise FrontendError(f"{self.where}: {at}: {first_line(e)}") from None
        finally:
            self.out_dtype, self.node_target = None, ""
        return result


def _state_type(tensor: torch.Tensor, name: str) -> TensorType:
    try:
        return TensorType(tuple(tensor.shape), dtype_of(tensor.dtype))
    except Fail as e:
        raise FrontendError(f"state buffer '{name}': {e}") from None


def _dtype_or_none(val: TensorMeta | None) -> DType | None:
    if val is None:
        return None
    try:
        return dtype_of(val.dtype)
    except Fail:
        return None


def _check(result: T, val: TensorMeta) -> None:
    """The imported node's type must be the one torch recorded."""
    want = dtype_of(val.dtype)
    if result.type.dtype != want:
        raise Fail(f"imports as {result.type.dtype.value}, torch computes {want.value}")
    shape = tuple(val.shape)
    if all(isinstance(d, int) for d in shape) and shape != result.type.shape:
        raise Fail(f"imports with shape {list(result.type.shape)}, torch computes {list(shape)}")


def walkable(program: Program) -> bool:
    """Whether `program` may be walked as recorded: every call is to an ATen operator the table takes or one
    of `MADE_ON_THE_SPOT`, none writing to its arguments, or size arithmetic. Any other program goes through
    torch's decomposition first, as every program did: its trace refuses operators it cannot trace (such as
    `aten.from_file`, which reads a file), which the walk would otherwise run on the spot."""
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue  # placeholders, the output; the walk refuses anything else
        target = node.target
        if isinstance(target, torch._ops.OpOverload):
            name = overload_name(target)
            if target.namespace != "aten" or target._schema.is_mutable or \
                    (name not in ATEN_OPS and name not in MADE_ON_THE_SPOT):
                return False
        elif not allowed_target(f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', '')}"):
            return False
    return True


def overload_name(target) -> str:
    """`add.Tensor` for torch.ops.aten.add.Tensor; the Python name of anything else."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name.split('::')[-1]}.{target._overloadname}"
    return getattr(target, "__name__", str(target))
