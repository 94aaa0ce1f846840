"""Hostile inputs: every loader turns a malformed file into one clean AalbertError.

Each loader gets mutated copies of a real input: the IR text and its `.npz`,
ONNX files from both exporters (bytes flipped, truncated, and structurally
broken: cycles, removed nodes, inconsistent initializers, huge or negative
dimensions, unknown ops, bad attributes) and their external data references
(locations, offsets, lengths, types and file sizes), `.pt2` files (the zip's bytes, or
one member rewritten: the program's JSON, the weight table, the version),
target, workload, sweep and policy
TOML files (text mutations and typed value swaps), request traces, the
`--inputs` arrays of aalbert-run, the sample inputs a workload's `[exits]`
measures early exit on, and the sweep's cache entries. A case
passes if the loader succeeds or raises an AalbertError whose message is one
line; any other exception, or a case running past its time limit, fails.

By default a short, fixed (derandomized) set of cases runs with the suite.
The long mode draws fresh random cases, N per loader:

    AALBERT_FUZZ=10000 python -m pytest -q tests/test_fuzz.py
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aalbert.errors import AalbertError
from aalbert.ir.fileio import load_module, read_npz, save_module
from aalbert.ir.interpreter import check_inputs
from aalbert.ir.module import Module
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.mapper.study.sweep import cached, load_sweep
from aalbert.passes.compress import load_policy
from aalbert.targets.hardware.spec import load_target
from aalbert.targets.sim.requests import read_trace
from aalbert.targets.sim.workload import load_workload

from .fuzzing import (
    CASE_SECONDS,
    FUZZ,
    IR_TOKENS,
    NUMBERS,
    TOML_TOKENS,
    Hang,
    fuzz_files,
    loads_cleanly,
    mutated,
    time_limit,
    toml_mutated,
    write,
)
from .helpers import LazyImport

onnx = LazyImport("onnx")
import_onnx = LazyImport("aalbert.mapper.frontends.onnx_import").function("import_onnx")

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["cola", "stsb"]

# ---------------------------------------------------------------- seeds

TARGET_SEED = (ROOT / "targets" / "builtin" / "edge_accel.toml").read_bytes()
SWEEP_SEED = (ROOT / "examples" / "sweeps" / "edge_memory.toml").read_bytes()
WORKLOAD_SEED = b"""[workload]
mix = { cola = 3, stsb = 1 }
switch_rate = 0.5
inferences_per_wakeup = 20
task_weights_change = false
inferences_per_second = 10
lifetime_years = 5
latency_target_ms = 100

[exits]
threshold = 0.28
histogram = [153, 177, 128, 136, 105, 58, 31, 18, 5, 3, 3, 55]
predicted = [[153, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
             [0, 177, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
             [0, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 136, 0, 0, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 105, 0, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 58, 0, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 31, 0, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 0, 18, 0, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0],
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0],
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0],
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 55]]
source = "EdgeBERT's SST-2 entropies"

[exits.task.stsb]
histogram = [0.5, 0.25, 0.25]
predicted = [[0.5, 0, 0], [0, 0.25, 0], [0, 0.05, 0.2]]

[exits.task.cola]
threshold = 0.5
samples = "cola.npz"
"""
POLICY_SEED = b"""[[rule]]
kinds = ["attention", "ffn"]
role = "shared"
format = "afloat<8,3>"
sparsity = 0.5
block = [16, 16]
storage = "bitmask"

[[rule]]
kinds = ["embedding"]
format = "int8"
granularity = "channel"
"""
TRACE_SEED = b"# task, arrival (s)\ncola 0.0\nstsb, 0.25\ncola\nstsb 1.5\n"


@pytest.fixture(scope="module")
def ir_seed(tmp_path_factory):
    """A tiny one-task adapter-ALBERT with one layer, printed and saved: (text, npz bytes)."""
    module = load_example(ExampleSpec("adapter-albert", 1, "tiny", layers=1), DimSpec(1, 8))
    out = tmp_path_factory.mktemp("ir-seed") / "m.ir"
    save_module(module, out)
    return out.read_bytes(), out.with_suffix(".npz").read_bytes()


@pytest.fixture(scope="module")
def onnx_seeds(tiny_exports):
    """The tiny adapter-ALBERT from both exporters, external data pulled in: {exporter: ModelProto}."""
    return {exp: onnx.load(str(tiny_exports["adapter-albert", exp]["cola"])) for exp in ("torchscript", "dynamo")}


# ---------------------------------------------------------------- the loaders

def npz_variants(blob: bytes, arrays: dict[str, np.ndarray], dtypes: list) -> st.SearchStrategy[bytes]:
    """An archive's bytes mutated, or its arrays changed one way (dropped, reshaped, retyped, NaN, extra, a
    scalar, huge values) and saved again, plain or compressed."""
    @st.composite
    def variant(draw):
        if draw(st.booleans()):
            return draw(mutated(blob, (b"\x00", b"\xff", b"PK", b"NUMPY")))
        changed = dict(arrays)
        key = draw(st.sampled_from(sorted(changed)))
        action = draw(st.sampled_from(["drop", "shape", "dtype", "nan", "extra", "scalar", "huge"]))
        if action == "drop":
            del changed[key]
        elif action == "shape":
            changed[key] = np.zeros(changed[key].shape + (2,), changed[key].dtype)
        elif action == "dtype":
            changed[key] = changed[key].astype(draw(st.sampled_from(dtypes)))
        elif action == "nan" and changed[key].dtype.kind == "f":
            changed[key] = np.full_like(changed[key], np.nan)
        elif action == "extra":
            changed["stray"] = np.zeros(3)
        elif action == "scalar":
            changed[key] = changed[key].dtype.type(1)
        elif action == "huge" and changed[key].dtype.kind in "iu":
            changed[key] = np.full(changed[key].shape, np.iinfo(changed[key].dtype).max, changed[key].dtype)
        out = io.BytesIO()
        (np.savez_compressed if draw(st.booleans()) else np.savez)(out, **changed)
        return out.getvalue()
    return variant()


def test_ir_parser_text(tmp_path_factory, ir_seed):
    text, npz = ir_seed

    @FUZZ
    @given(st.data())
    def case(data):
        d = tmp_path_factory.mktemp("ir")
        write(d, "m.npz", npz)
        path = write(d, "m.ir", data.draw(mutated(text, IR_TOKENS)))
        loads_cleanly(load_module, path)
    case()


def test_ir_weights_sidecar(tmp_path_factory, ir_seed):
    text, npz = ir_seed
    sidecar = npz_variants(npz, dict(np.load(io.BytesIO(npz))), [np.int8, np.float64, np.int64, np.bool_])

    @FUZZ
    @given(sidecar)
    def case(npz_bytes):
        d = tmp_path_factory.mktemp("npz")
        write(d, "m.npz", npz_bytes)
        loads_cleanly(load_module, write(d, "m.ir", text))
    case()


def _onnx_structural(draw, model: onnx.ModelProto) -> onnx.ModelProto:  # noqa: C901 (one case per breakage)
    """One to three structural breakages of a real export."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["dim", "remove", "cycle", "self", "init_dims", "init_dtype", "op", "attr",
                                     "drop_attr", "elem_type", "opset", "dup_output", "constant", "drop_input"]))
        nodes = list(g.node)
        n = draw(st.integers(0, max(len(nodes) - 1, 0)))
        if kind == "dim" and g.input:
            dims = g.input[draw(st.integers(0, len(g.input) - 1))].type.tensor_type.shape.dim
            if dims:
                dim = dims[draw(st.integers(0, len(dims) - 1))]
                dim.dim_value = draw(st.sampled_from([0, -1, -7, 2**40, 2**62, 1]))
        elif kind == "remove" and nodes:
            g.node.remove(g.node[n])
        elif kind == "cycle" and len(nodes) > 1:
            # an early node consumes a later node's output
            later = draw(st.integers(n, len(nodes) - 1))
            if g.node[n].input and g.node[later].output:
                g.node[n].input[0] = g.node[later].output[0]
        elif kind == "self" and nodes and g.node[n].input and g.node[n].output:
            g.node[n].input[0] = g.node[n].output[0]
        elif kind == "init_dims" and g.initializer:
            init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            if init.dims:
                i = draw(st.integers(0, len(init.dims) - 1))
                init.dims[i] = draw(st.sampled_from([0, -1, init.dims[i] * 2, 2**40, init.dims[i] + 1]))
            else:
                init.dims.append(draw(st.sampled_from([0, 2, 2**33])))
        elif kind == "init_dtype" and g.initializer:
            init = g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
            init.data_type = draw(st.sampled_from([0, 2, 6, 7, 9, 10, 11, 16, 99]))
        elif kind == "op" and nodes:
            g.node[n].op_type = draw(st.sampled_from(["Frobnicate", "MatMul", "Add", "Softmax", "Reshape", "Gather",
                                                      "Transpose", "Concat", "ConstantOfShape", "Range", "Expand",
                                                      "Slice", "Where", ""]))
        elif kind == "attr" and nodes and g.node[n].attribute:
            a = g.node[n].attribute[draw(st.integers(0, len(g.node[n].attribute) - 1))]
            if a.type == onnx.AttributeProto.INT:
                a.i = draw(st.sampled_from([-100, -1, 0, 5, 2**40]))
            elif a.type == onnx.AttributeProto.INTS:
                a.ints[:] = draw(st.lists(st.sampled_from([-9, -1, 0, 1, 2, 7, 2**40]), max_size=5))
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = draw(st.sampled_from([math.nan, math.inf, -1.0, 0.0]))
            elif a.type == onnx.AttributeProto.TENSOR:
                a.t.dims[:] = draw(st.lists(st.sampled_from([0, 1, 3, 2**40, -1]), max_size=3))
            else:
                a.type = onnx.AttributeProto.INT
        elif kind == "drop_attr" and nodes and g.node[n].attribute:
            del g.node[n].attribute[draw(st.integers(0, len(g.node[n].attribute) - 1))]
        elif kind == "elem_type" and g.input:
            g.input[draw(st.integers(0, len(g.input) - 1))].type.tensor_type.elem_type = \
                draw(st.sampled_from([0, 1, 2, 7, 9, 11, 16, 99]))
        elif kind == "opset" and m.opset_import:
            m.opset_import[0].version = draw(st.sampled_from([1, 7, 13, 17, 18, 21, 99, -1]))
        elif kind == "dup_output" and len(nodes) > 1 and g.node[n].output:
            g.node[draw(st.integers(0, len(nodes) - 1))].output[0] = g.node[n].output[0]
        elif kind == "constant":
            # a shape-producing constant turned huge or negative
            big = onnx.helper.make_node("Constant", [], [f"fuzz_c{len(g.node)}"], value=onnx.helper.make_tensor(
                "v", onnx.TensorProto.INT64, [3], draw(st.sampled_from([[2**20, 2**20, 2**20], [-5, 3, 2],
                                                                       [0, 0, 0], [1, -1, -1]]))))
            g.node.insert(0, big)
            user = g.node[draw(st.integers(1, len(g.node) - 1))]
            if user.input:
                user.input[-1] = big.output[0]
        elif kind == "drop_input" and nodes and g.node[n].input:
            del g.node[n].input[-1]
    return m


def test_onnx_importer(tmp_path_factory, onnx_seeds):
    raw = {exp: m.SerializeToString() for exp, m in onnx_seeds.items()}

    @st.composite
    def onnx_file(draw):
        exporter = draw(st.sampled_from(sorted(onnx_seeds)))
        how = draw(st.sampled_from(["structural", "structural", "structural", "bytes", "both"]))
        data = raw[exporter]
        if how in ("structural", "both"):
            data = _onnx_structural(draw, onnx_seeds[exporter]).SerializeToString()
        if how in ("bytes", "both"):
            data = draw(mutated(data, (b"\x00", b"\xff", b"\x08\x01", b"MatMul", b"\x12\x00")))
        return data

    fuzz_files(onnx_file(), tmp_path_factory, "cola.onnx", lambda p: import_onnx(p, Module(), "cola", DimSpec(1, 16)))


def test_onnx_external_data(tmp_path_factory):
    """A model whose weight lives in an external data file: the reference (location, offset, length), the
    tensor's type and the file's size, each drawn from the plausible and the hostile."""
    TensorProto, helper = onnx.TensorProto, onnx.helper

    weight = np.arange(16, dtype=np.float32).tobytes()

    @st.composite
    def case(draw):
        location = draw(st.sampled_from(["w.data", "w.data", "", "w\0.data", "../w.data", "/etc/hostname", "sub/w.data",
                                         "missing.data", ".", "w.data/", "./w.data"]))
        offset = draw(st.sampled_from([None, "0", "8", "-8", "x", "64", str(2 ** 62), "1e3", ""]))
        length = draw(st.sampled_from([None, "64", "0", "32", "-1", str(2 ** 63), "y", "72"]))
        size = draw(st.sampled_from([0, 8, 64, 72, 80]))
        dims = draw(st.sampled_from([[4, 4], [4, 2], [2 ** 40, 4], [-1, 4], [4, 4, 1], []]))
        dtype = draw(st.sampled_from([TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64, TensorProto.BFLOAT16,
                                      TensorProto.STRING, TensorProto.UINT4, 99]))
        return location, offset, length, size, dims, dtype

    @FUZZ
    @given(case())
    def run(drawn):
        location, offset, length, size, dims, dtype = drawn
        d = tmp_path_factory.mktemp("external")
        w = TensorProto(name="w", data_type=dtype, dims=dims, data_location=TensorProto.EXTERNAL)
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            if value is not None:
                w.external_data.add(key=key, value=value)
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        (d / "w.data").write_bytes((b"\x01" * 8 + weight + b"\x02" * 8)[:size])
        path = write(d, "m.onnx", model.SerializeToString())
        loads_cleanly(lambda p: import_onnx(p, Module(), "m", DimSpec(1, 4)), path)
    run()


@pytest.fixture(scope="module")
def pt2_seed(tmp_path_factory, tiny_models):
    """The tiny adapter-ALBERT's first task saved by torch.export.save: the archive's members."""
    from aalbert.examples.export import export_pt2

    path = export_pt2(tiny_models["adapter-albert"]["cola"], tmp_path_factory.mktemp("pt2") / "cola.pt2", seq_len=8)
    with zipfile.ZipFile(path) as z:
        return [(info, z.read(info.filename)) for info in z.infolist()]


def _zip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info, data in members:
            z.writestr(info, data)
    return buf.getvalue()


def _import_pt2(path) -> None:
    """import_pt2 (which reads a program of the common form itself), then torch.export.load's reading of the
    same file after the same check (`load_exported`), which such a file would not reach otherwise."""
    from aalbert.mapper.frontends.aten_import import load_exported
    from aalbert.mapper.frontends.torch_import import import_pt2

    import_pt2(path, Module(), "cola", DimSpec(1, 8))
    load_exported(path)


def test_pt2_importer(tmp_path_factory, pt2_seed):
    whole = _zip(pt2_seed)
    texts = [i for i, (info, _) in enumerate(pt2_seed) if info.filename.endswith((".json", "version", "format"))]

    @st.composite
    def pt2_file(draw):
        if draw(st.booleans()):
            return draw(mutated(whole, (b"\x00", b"\xff", b"PK", b"PK\x03\x04", b"{", b"}")))
        members = list(pt2_seed)
        i = draw(st.sampled_from(texts))
        info, data = members[i]
        members[i] = (info, draw(mutated(data, NUMBERS + (b'"', b"{", b"}", b"[", b"]", b",", b":", b"null",
                                                           b'"aten.sort.default"', b'"as_tensor"', b"-1"))))
        return _zip(members)

    fuzz_files(pt2_file(), tmp_path_factory, "cola.pt2", _import_pt2)


@pytest.fixture(scope="module")
def placed_seed(tmp_path_factory, ir_seed):
    """The IR seed placed on edge_accel (a placement fact on every weight and arena), saved: (text, npz)."""
    from aalbert.passes.base import PassManager, parse_pipeline

    d = tmp_path_factory.mktemp("placed")
    write(d, "m.npz", ir_seed[1])
    module = load_module(write(d, "m.ir", ir_seed[0]))
    module = PassManager(parse_pipeline("canonicalize,share,plan-activations{target=edge_accel},"
                                        "allocate{target=edge_accel}")).run(module)
    save_module(module, d / "placed.ir")
    return (d / "placed.ir").read_bytes(), (d / "placed.npz").read_bytes()


PLACEMENT_VALUES = ("0", "1", "63", "64", "4096", "1048576", "8388607", "8388608", "99999999999", "-1",
                    '"rram"', '"sram"', '"dram"', '"nowhere"', '"resident"', '"staged"', '"spilled"', '"swapped"')


def test_placement_verifier(tmp_path_factory, placed_seed, ir_seed):
    """Placement facts of a placed module changed (weights' offsets, levels and residencies, arenas,
    activations' offsets): the verifier refuses
    the module in one line, or the module lowers and runs on the target."""
    import re

    from aalbert.ir.interpreter import run
    from aalbert.passes.allocation.verify import verify_placement
    from aalbert.targets.codegen.lower import lower
    from aalbert.targets.hardware.spec import load_target
    from aalbert.targets.sim.functional import execute

    from .helpers import random_feeds

    target = load_target("edge_accel")
    text, npz = placed_seed
    facts = [m.span(2) for m in re.finditer(rb"\b(offset|level|residency|size|swap_offset) = (-?[0-9]+|\"[a-z]+\")",
                                            text)]
    facts += [m.span(1) for m in re.finditer(rb" at ([0-9]+)", text)]  # activations' arena offsets

    @st.composite
    def moved(draw):
        data = bytearray(text)
        for start, end in sorted(draw(st.lists(st.sampled_from(facts), min_size=1, max_size=3, unique=True)),
                                 reverse=True):
            data[start:end] = draw(st.sampled_from(PLACEMENT_VALUES)).encode()
        return bytes(data)

    def load_check_run(path):
        module = load_module(path)
        verify_placement(module, target, spill=False)
        for task, graph in module.graphs.items():
            feeds = random_feeds(graph)
            got = execute(lower(module, target, task), module, target, feeds)
            want = run(module, task, feeds)
            for name, value in want.items():  # an accepted placement computes what the module means
                np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5)

    d = tmp_path_factory.mktemp("placed-npz")
    write(d, "m.npz", npz)

    @FUZZ
    @given(moved())
    def case(data):
        loads_cleanly(load_check_run, write(d, "m.ir", data))
    case()


# values that make torch.export.load run code, each planted where the archive's JSON has a string
HOSTILE_STRINGS = ("__import__('os').system('touch {m}')", "Symbol('s0') + __import__('os').system('touch {m}')",
                   "torch.os.system", "torch.ops.aten.__class__.__init__", "opaque_obj_0", "custom_obj_0",
                   "Pow(Integer(9), Integer(99999999999))", "L['x'].__class__", "exec('touch {m}')")


def test_pt2_archive_check(tmp_path_factory, pt2_seed):
    """Hostile strings and flags planted anywhere in the archive's JSON entries: the file loads or is refused
    in one line, and no planted code runs."""
    marker = tmp_path_factory.mktemp("marker") / "ran"
    tables = [i for i, (info, _) in enumerate(pt2_seed) if info.filename.endswith(".json")]

    def places(doc, path=()):
        items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
        for k, v in items:
            if isinstance(v, (str, bool)) or v is None:
                yield path + (k,)
            yield from places(v, path + (k,))

    @st.composite
    def planted(draw):
        members = list(pt2_seed)
        i = draw(st.sampled_from(tables))
        info, data = members[i]
        doc = json.loads(data)
        for _ in range(draw(st.integers(1, 3))):
            spots = list(places(doc))
            if not spots:
                break
            *parents, key = draw(st.sampled_from(spots))
            node = doc
            for k in parents:
                node = node[k]
            hostile = draw(st.sampled_from(HOSTILE_STRINGS + (True,)))  # use_pickle and such flags, too
            node[key] = hostile.format(m=marker) if isinstance(hostile, str) else hostile
        members[i] = (info, json.dumps(doc).encode())
        return _zip(members)

    fuzz_files(planted(), tmp_path_factory, "cola.pt2", _import_pt2)
    assert not marker.exists()


@pytest.mark.parametrize("name, seed, load, args", [
    ("target", TARGET_SEED, load_target, ()),
    ("workload", WORKLOAD_SEED, load_workload, (TASKS,)),
    ("sweep", SWEEP_SEED, load_sweep, ()),
    ("policy", POLICY_SEED, load_policy, ()),
])
def test_toml_loaders(tmp_path_factory, name, seed, load, args):
    fuzz_files(st.one_of(mutated(seed, TOML_TOKENS), toml_mutated(seed)), tmp_path_factory, f"{name}.toml",
               lambda path, *rest: load(str(path), *rest), *args)


def test_request_traces(tmp_path_factory):
    @FUZZ
    @given(mutated(TRACE_SEED, NUMBERS + (b"cola", b"stsb", b"mnli", b",", b"#", b"\n", b" ", b"\xff")),
           st.sampled_from([1.0, 10.0, 1e-9, 1e9]))
    def case(data, rate):
        path = write(tmp_path_factory.mktemp("trace"), "t.trace", data)
        loads_cleanly(read_trace, str(path), TASKS, rate)
    case()


def test_input_arrays(tmp_path_factory, ir_seed):
    """aalbert-run's --inputs: the archive, then its arrays matched to the graph's inputs."""
    text, _ = ir_seed
    d = tmp_path_factory.mktemp("inputs-seed")
    graph = next(iter(load_module(write(d, "m.ir", text)).graphs.values()))
    good = {v.name: np.zeros(v.type.shape, v.type.dtype.np) for v in graph.inputs}
    buf = io.BytesIO()
    np.savez(buf, **good)

    fuzz_files(npz_variants(buf.getvalue(), good, [np.float32, np.int8, np.bool_, np.float16]), tmp_path_factory,
               "in.npz", lambda p: check_inputs(graph, read_npz(p, "inputs")))


def test_exit_samples(tmp_path_factory):
    """The sample inputs a workload's [exits] measures early exit on: the archive, then its rows matched to the
    graph's inputs."""
    from aalbert.ir.parser import parse_module
    from aalbert.mapper.exit_samples import sample_feeds

    graph = parse_module(EXIT_IR, "exits.ir").graphs["t"]
    good = {"x": np.zeros((4, 2), np.float32)}

    @st.composite
    def arrays(draw):
        buf = io.BytesIO()
        if draw(st.booleans()):
            np.savez(buf, **good)
            return draw(mutated(buf.getvalue(), (b"\x00", b"\xff", b"PK", b"NUMPY")))
        changed = dict(good)
        action = draw(st.sampled_from(["drop", "shape", "dtype", "extra", "scalar", "empty", "stack"]))
        if action == "drop":
            del changed["x"]
        elif action == "shape":
            changed["x"] = np.zeros((4, 3), np.float32)
        elif action == "dtype":
            changed["x"] = changed["x"].astype(draw(st.sampled_from([np.float64, np.int8, np.bool_, np.float16])))
        elif action == "extra":
            changed["stray"] = np.zeros(3)
        elif action == "scalar":
            changed["x"] = np.float32(1)
        elif action == "empty":
            changed["x"] = np.zeros((0, 2), np.float32)
        else:
            changed["x"] = np.zeros((4, 1, 2), np.float32)
        np.savez(buf, **changed)
        return buf.getvalue()

    fuzz_files(arrays(), tmp_path_factory, "s.npz", lambda p: sample_feeds(graph, read_npz(p, "exit samples"), str(p)))


EXIT_IR = """module {
  graph @t(%x: tensor<1x2xf32>) -> ("exit_logits_1": tensor<1x2xf32>, "logits": tensor<1x2xf32>) {
    %0 = tanh(%x) : tensor<1x2xf32>
    %1 = exp(%0) : tensor<1x2xf32>
    return %0, %1
  }
}
"""


def test_sweep_cache_entries(tmp_path_factory):
    """A truncated or forged cache entry is not this point's: computed again, never fatal."""
    point = {"memory.sram.capacity_bytes": 4194304, "model.bottleneck": 32}
    seed = (json.dumps({"point": point, "metrics": {"feasible": True, "energy_mj": 1.5, "area_mm2": 2.0,
                                                    "latency_ms": 3.0, "dram_bytes_per_inference": 0,
                                                    "dram_bytes_per_switch": 4.0}}, sort_keys=True) + "\n").encode()

    @FUZZ
    @given(mutated(seed, NUMBERS + (b"true", b"false", b"null", b"{", b"}", b"[", b"]", b'"', b":", b",")))
    def case(data):
        path = write(tmp_path_factory.mktemp("cache"), "entry.json", data)
        with time_limit(CASE_SECONDS):
            got = cached(path, point)
        assert got is None or (got["feasible"] is False and isinstance(got["reason"], str)) or all(
            isinstance(got[m], (int, float)) and math.isfinite(got[m]) and got[m] >= 0
            for m in ("energy_mj", "area_mm2", "latency_ms"))
    case()


# ---------------------------------------------------------------- every loader has a target

# the functions that read what a user gives (each calls note_read: support/outputs.py), and the tests fuzzing them
FUZZED = {
    "read_text": [test_ir_parser_text], "load_module": [test_ir_parser_text, test_ir_weights_sidecar],
    "open_npz": [test_ir_weights_sidecar, test_input_arrays, test_exit_samples], "read_toml": [test_toml_loaders],
    "target_text": [test_toml_loaders], "load_model": [test_onnx_importer],
    "load_pt2": [test_pt2_importer, test_pt2_archive_check],
    "load_exported": [test_pt2_importer, test_pt2_archive_check], "_external_place": [test_onnx_external_data],
    "read_trace": [test_request_traces],
}


def test_every_loader_has_a_fuzz_target():
    import ast

    readers = set()
    for path in (ROOT / d for d in ("ir", "passes", "targets", "mapper", "examples")):
        for f in path.rglob("*.py"):
            if "cli" in f.parts:
                continue  # the tools declare files; the loaders they call read them
            for fn in ast.walk(ast.parse(f.read_text())):
                if isinstance(fn, ast.FunctionDef) and any(
                        isinstance(c, ast.Call) and getattr(c.func, "id", None) == "note_read" for c in ast.walk(fn)):
                    readers.add(fn.name)
    assert readers and readers <= set(FUZZED), sorted(readers - set(FUZZED))


def test_the_harness_can_fail():
    """A loader that crashes, or hangs, is caught; a clean error passes."""
    def boom(_):
        raise KeyError("x")

    def clean(_):
        raise AalbertError("x.toml: bad key")

    with pytest.raises(KeyError):
        loads_cleanly(boom, None)
    loads_cleanly(clean, None)
    with pytest.raises(AssertionError, match="one line"):
        loads_cleanly(lambda _: (_ for _ in ()).throw(AalbertError("two\nlines")), None)
    with pytest.raises(Hang):
        with time_limit(0.05):
            while True:
                pass
