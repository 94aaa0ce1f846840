"""Gathering a compiler's input into one module: ONNX, `.pt2` and IR files, or the built-in example.

Each ONNX or `.pt2` file (a `torch.export` program) is one graph, keyed by
the file's stem or by `--task NAME=PATH`: a task, or one phase of a decoder
task (`ir/phases.py`) when the stem ends in `.prefill` or `.decode`
(`chat.prefill.pt2` is `chat/prefill`), or when NAME is `chat/prefill`. IR
files bring all their tasks.
Weights shared between files are stored once. A batch, sequence length or
named dimension asked for that no file can take is refused (`DimSpec`): an IR
file's shapes are all static. What the built-in example will take
(`example_bytes`: its parameters and its graphs' nodes) is checked against
the memory budget before any of it is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from aalbert.caches import cache_dir, cache_enabled, code_hash
from aalbert.errors import AalbertError, OptionError
from aalbert.ir.fileio import load_module
from aalbert.ir.module import Module
from aalbert.ir.phases import PHASES, check_phases
from aalbert.ir.snapshot import VERSION as SNAPSHOT_VERSION
from aalbert.ir.snapshot import load_snapshot, save_snapshot
from aalbert.limits import check_bytes
from aalbert.mapper.frontends import DimSpec


@dataclass(frozen=True)
class ExampleSpec:
    family: str = "adapter-albert"
    tasks: int = 8
    size: str = "base"
    bottleneck: int | None = None  # None: the size's default
    adapter_placement: str = "shared"
    task_specific: tuple[str, ...] = ("adapters", "layernorm", "head")
    seed: int = 0
    layers: int | None = None  # times the shared layer is applied; None: the size's (12; 3 for tiny)
    off_ramps: str | None = None  # exit classifiers after every layer but the last: classifier | highway


def parse_task_arg(text: str) -> tuple[str, str]:
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise OptionError(f"--task expects NAME=PATH, got {text!r}")
    return name, path


def graph_key(path: str) -> str:
    """The graph key a model file's name gives: its stem, `<task>/<phase>` for a stem `<task>.<phase>`."""
    stem = Path(path).stem
    task, dot, phase = stem.rpartition(".")
    return f"{task}/{phase}" if dot and task and phase in PHASES else stem


def load_files(named: list[tuple[str | None, str]], dims: DimSpec, check_names: bool = True) -> Module:
    """Import (task name or None, path) pairs into one module; with `check_names`, a `--dim` name that no
    file's input has is refused."""
    module = Module()
    origin: dict[str, str] = {}
    for name, path in named:
        suffix = Path(path).suffix.lower()
        if suffix == ".ir":
            if name is not None:
                raise OptionError(f"--task names one task, but {path} is an IR file holding its own tasks")
            other = load_module(path)
            for task, graph in other.graphs.items():
                _claim(origin, task, path)
                for v in graph.inputs:
                    dims.check_static(f"{path}, task '{task}'", v.name, v.type.shape)
            module.merge(other)
        elif suffix in (".onnx", ""):
            task = name or graph_key(path)
            _claim(origin, task, path)
            from aalbert.mapper.frontends.onnx_import import import_onnx  # onnx only when an ONNX file asks

            import_onnx(path, module, task, dims)
        elif suffix == ".pt2":
            from aalbert.mapper.frontends.torch_import import import_pt2  # torch only when a .pt2 file asks for it

            task = name or graph_key(path)
            _claim(origin, task, path)
            import_pt2(path, module, task, dims)
        else:
            raise AalbertError(f"{path}: unknown file type '{suffix}' (expected .onnx, .pt2 or .ir)")
    if check_names:
        dims.check_names()
    check_phases(module.graphs)
    return module


def _claim(origin: dict[str, str], task: str, path: str) -> None:
    if task in origin:
        raise OptionError(f"task '{task}' comes from both {origin[task]} and {path}; "
                          "name tasks with --task NAME=PATH")
    origin[task] = path


# What building the example holds, measured with aalbert-compile's peak resident set (benchmarks/bounds.py
# compares the estimate with it): each parameter in torch, in the module, and compressed and decoded once each;
# the graph nodes of one task while it is traced and imported, and each task's nodes kept after that.
BYTES_PER_PARAMETER = 16
BYTES_PER_TRACED_NODE = 6 * 1024
BYTES_PER_NODE = 1536
NODES_PER_LAYER, NODES_PER_OFF_RAMP, NODES_OUTSIDE_LAYERS = 40, 8, 64


def example_bytes(spec: ExampleSpec, dims: DimSpec) -> int:
    """What building the example family of `spec` takes at most, about, before it is compiled further."""
    from aalbert.examples.config import SIZES

    c = SIZES.get(spec.size)
    if c is None:
        return 0  # refused by name when the family is made
    layers = spec.layers if spec.layers is not None else c.num_layers
    e, h, f, labels = c.embedding_size, c.hidden_size, c.intermediate_size, 3
    embeddings = (c.vocab_size + c.max_position + c.type_vocab_size) * e
    linear = lambda n_in, n_out: n_in * n_out + n_out  # noqa: E731
    backbone = embeddings + 2 * e + 4 * h + linear(e, h) + 4 * linear(h, h) + linear(h, f) + linear(f, h) \
        + linear(h, h)
    ramps = (layers - 1) * (linear(h, labels) + (linear(h, h) if spec.off_ramps == "highway" else 0)) \
        if spec.off_ramps else 0
    own = linear(h, labels) + ramps
    if spec.family == "albert":
        parameters = spec.tasks * (backbone + own)
    else:
        width = spec.bottleneck or c.adapter_bottleneck
        pairs = layers if spec.adapter_placement == "per_layer" else 1
        groups = {"adapters": 2 * pairs * (linear(h, width) + linear(width, h)), "layernorm": 2 * e + 4 * h,
                  "pooler": linear(h, h), "embeddings": embeddings}
        own += sum(n for g, n in groups.items() if g in spec.task_specific)
        parameters = backbone + spec.tasks * own
    nodes = NODES_OUTSIDE_LAYERS + layers * (NODES_PER_LAYER + (NODES_PER_OFF_RAMP if spec.off_ramps else 0))
    inputs = 3 * 8 * dims.batch * dims.seq_len  # ids, mask and token types, in torch and in numpy
    return BYTES_PER_PARAMETER * parameters + BYTES_PER_TRACED_NODE * nodes + BYTES_PER_NODE * spec.tasks * nodes \
        + 2 * inputs


def load_example(spec: ExampleSpec, dims: DimSpec) -> Module:
    """The built-in example family: from the user's cache when this code built it before at these shapes,
    otherwise built in PyTorch, imported through the torch.fx frontend and cached (`example_cache`)."""
    from aalbert.examples.config import AdapterConfig, FamilySpec, task_names

    layers = f", {spec.layers:,} layers" if spec.layers is not None else ""
    check_bytes(example_bytes(spec, dims), f"the example {spec.family} ({spec.size}, {spec.tasks:,} "
                f"task{'s' if spec.tasks != 1 else ''}{layers}, batch {dims.batch:,}, sequence {dims.seq_len:,})")
    try:
        adapters = AdapterConfig(spec.bottleneck, spec.adapter_placement, frozenset(spec.task_specific))
        family = FamilySpec(spec.family, spec.size, tuple(task_names(spec.tasks)), adapters, seed=spec.seed,
                            layers=spec.layers, off_ramps=spec.off_ramps)
    except ValueError as e:
        raise OptionError(str(e)) from None
    path = example_cache(spec, dims)
    if path is not None and path.exists():
        try:
            return load_snapshot(path)
        except AalbertError:
            pass  # written by an interrupted run or damaged: built again below
    module = _build_example(family, dims, spec.seed)
    if path is not None:
        _keep(module, path)
    return module


def example_cache(spec: ExampleSpec, dims: DimSpec) -> Path | None:
    """Where the example of `spec` at these shapes is cached: a file named by a digest of the spec, the shapes
    and `caches.code_hash()` (None when caching is off: AALBERT_CACHE=off)."""
    if not cache_enabled():
        return None
    what = json.dumps({"spec": dataclasses.asdict(spec), "batch": dims.batch, "seq_len": dims.seq_len,
                       "code": code_hash(), "format": SNAPSHOT_VERSION},
                      sort_keys=True, default=list)
    return cache_dir("examples") / f"{hashlib.sha256(what.encode()).hexdigest()[:24]}.json"


def _build_example(family, dims: DimSpec, seed: int) -> Module:
    from aalbert.examples.zoo import build_family, example_inputs
    from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch

    inputs = example_inputs(family.config, dims.batch, dims.seq_len, seed=seed)
    module = Module()
    seen: dict = {}  # the backbone's parameters are read once for all tasks
    for task, model in build_family(family).items():
        import_torch(model, inputs, module, task, ImportOptions(model.output_names, seen=seen))
    return module


def _keep(module: Module, path: Path) -> None:
    """Cache the example now, whatever the command does next; a cache that cannot be written is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_snapshot(module, path, durable=True)
    except (OSError, AalbertError):
        pass
