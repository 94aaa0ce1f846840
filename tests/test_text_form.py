"""The IR text form: exact round trips, property-based printer/parser tests, error positions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aalbert.errors import IRParseError, IRVerifyError
from aalbert.ir.builder import Builder
from aalbert.ir.fileio import load_module, save_module
from aalbert.ir.graph import Graph
from aalbert.ir.module import Module
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.ir.types import DType, TensorType
from aalbert.ir.verifier import verify
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example

from .helpers import SEQ


def roundtrip(module: Module) -> str:
    text = print_module(module)
    again = print_module(parse_module(text))
    assert again == text
    return text


@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
@pytest.mark.parametrize("placement", ["shared", "per_layer"])
def test_examples_roundtrip(family, placement):
    module = load_example(ExampleSpec(family, 3, "tiny", adapter_placement=placement), DimSpec(1, SEQ))
    text = roundtrip(module)
    verify(parse_module(text))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_imported_onnx_roundtrips(tiny_exports, exporter):
    from aalbert.mapper.frontends import import_onnx

    module = Module()
    for task, path in tiny_exports["adapter-albert", exporter].items():
        import_onnx(path, module, task, DimSpec(1, SEQ))
    roundtrip(module)


def test_save_and_load_with_sidecar(tmp_path):
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 8))
    save_module(module, tmp_path / "m.ir")
    loaded = load_module(tmp_path / "m.ir")
    assert loaded.has_data
    assert print_module(loaded) == print_module(module)
    for name, w in module.weights.items():
        np.testing.assert_array_equal(loaded.weights[name].data, w.data)
    # the sidecar is reproducible byte for byte
    first = (tmp_path / "m.npz").read_bytes()
    save_module(loaded, tmp_path / "m.ir")
    assert (tmp_path / "m.npz").read_bytes() == first


def test_module_without_data_is_still_analysable(tmp_path):
    module = load_example(ExampleSpec("albert", 1, "tiny"), DimSpec(1, 8))
    (tmp_path / "m.ir").write_text(print_module(module))
    loaded = load_module(tmp_path / "m.ir")
    assert not loaded.has_data
    verify(loaded)
    from aalbert.mapper.reports.summary import graph_work
    assert graph_work(loaded, "cola").macs == graph_work(module, "cola").macs > 0


# --- generated modules ----------------------------------------------------------------------------
NAMES = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.$/-]{0,8}", fullmatch=True),
                  st.text(min_size=1, max_size=6))
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def modules(draw):
    module = Module()
    n_graphs = draw(st.integers(1, 2))
    names = draw(st.lists(NAMES, min_size=n_graphs + 3, max_size=n_graphs + 3, unique=True))
    for gname in names[:n_graphs]:
        graph = Graph(gname)
        b = Builder(module, graph)
        b.fold = False
        shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
        x = b.input(names[-1], TensorType(shape, DType.F32))
        values = [x]
        data = np.array(draw(st.lists(FLOATS, min_size=math.prod(shape), max_size=math.prod(shape))),
                        dtype=np.float32).reshape(shape)
        w = module.add_weight(data, names[-2])
        values.append(b.weight(w))
        for _ in range(draw(st.integers(1, 8))):
            kind = draw(st.sampled_from(["unary", "binary", "const", "reshape", "transpose", "attrs"]))
            a = draw(st.sampled_from([v for v in values if v.type.dtype is DType.F32]))
            if kind == "unary":
                values.append(b.op1(draw(st.sampled_from(["neg", "exp", "tanh", "relu"])), [a]))
            elif kind == "binary":
                same = [v for v in values if v.type == a.type]
                values.append(b.op1(draw(st.sampled_from(["add", "mul", "max"])), [a, draw(st.sampled_from(same))]))
            elif kind == "const":
                dtype = draw(st.sampled_from([np.float32, np.int64, np.bool_, np.float16, np.float64]))
                n = draw(st.integers(0, 4))
                if dtype is np.bool_:
                    items = draw(st.lists(st.booleans(), min_size=n, max_size=n))
                elif dtype is np.int64:
                    items = draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=n, max_size=n))
                else:
                    width = {np.float16: 16, np.float32: 32, np.float64: 64}[dtype]
                    items = draw(st.lists(st.floats(allow_nan=True, width=width), min_size=n, max_size=n))
                arr = np.array(items, dtype=dtype)
                if draw(st.booleans()) and n:
                    arr = np.full((2, n), arr[0], dtype=dtype)  # a splat
                b.constant(arr)
            elif kind == "reshape":
                values.append(b.op1("reshape", [a], {"shape": (a.type.numel,)}))
            elif kind == "transpose":
                values.append(b.op1("transpose", [a], {"perm": tuple(reversed(range(a.type.rank)))}))
            else:
                eps = draw(st.floats(allow_nan=False, allow_infinity=False, min_value=1e-30, max_value=1.0))
                if a.type.rank >= 1:
                    values.append(b.op1("softmax", [a], {"axis": a.type.rank - 1}))
                    hi = float(draw(FLOATS.filter(lambda f: f == f)))
                    values.append(b.op1("clip", [a], {"min": -eps, "max": hi}))
                    values.append(b.op1("cast", [a], {"to": draw(st.sampled_from(["f16", "i64", "bool"]))}))
        outs = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
        graph.set_outputs((draw(st.text(max_size=5)) + str(i), v) for i, v in enumerate(outs))
        module.add_graph(graph)
    return module


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_generated_modules_roundtrip(module):
    verify(module)
    text = roundtrip(module)
    parsed = parse_module(text)
    verify(parsed)
    # constants survive exactly, bit for bit
    for g0, g1 in zip(module.graphs.values(), parsed.graphs.values()):
        for n0, n1 in zip(g0.nodes, g1.nodes):
            if n0.op == "constant":
                a0, a1 = n0.attrs["value"], n1.attrs["value"]
                assert a0.dtype == a1.dtype and a0.shape == a1.shape
                assert np.array_equal(a0, a1, equal_nan=a0.dtype.kind == "f")
                if a0.dtype.kind == "f":  # -0.0 stays -0.0 (a NaN's sign is not kept)
                    keep = ~np.isnan(a0)
                    assert np.array_equal(np.signbit(a0[keep]), np.signbit(a1[keep]))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parser_never_crashes_on_garbage(text):
    try:
        verify(parse_module("module {\n" + text + "\n}", "g.ir"))
    except (IRParseError, IRVerifyError):
        pass


# --- errors ---------------------------------------------------------------------------------------
GOOD = """module {
  weight @w : tensor<4x2xf32> hash "0000000000000000"

  graph @t(%x: tensor<3x4xf32>) -> ("y": tensor<3x2xf32>) {
    %0 = weight {name = @w} : tensor<4x2xf32>
    %1 = matmul(%x, %0) : tensor<3x2xf32>
    return %1
  }
}
"""


def test_good_text_parses():
    verify(parse_module(GOOD))


@pytest.mark.parametrize("bad, where, message", [
    (GOOD.replace("matmul(%x, %0)", "matmul(%x %0)"), "6:20", "unexpected '%0'; expected ')', ','"),
    (GOOD.replace("hash ", ""), "2:31", "unexpected '\"0000000000000000\"'; expected 'hash'"),
    (GOOD.replace("%1 = matmul(%x, %0)", "%1 = matmul(%x, %9)"), "6:21", "use of undefined value %9"),
    (GOOD.replace("tensor<3x2xf32>\n", "tensor<3x2xq32>\n"), "6:", "unknown element type 'q32'"),
    (GOOD.split("    return")[0], "7:1", "unexpected end of input; expected "),
    (GOOD.replace("return %1", "return %1, %0"), "7:5", "return has 2 values"),
    (GOOD.replace("%1 = matmul", "%x = matmul"), "6:5", "%x defined twice"),
])
def test_syntax_errors_point_at_file_line_col(bad, where, message):
    with pytest.raises(IRParseError) as e:
        parse_module(bad, "m.ir")
    text = str(e.value)
    assert text.startswith("m.ir:" + where), text
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("bad, message", [
    (GOOD.replace("tensor<3x2xf32>", "tensor<3x3xf32>"),
     "m.ir:6:5: graph @t, node '%1 = matmul(%x, %0)': result %1 is declared tensor<3x3xf32> but matmul gives "
     "tensor<3x2xf32>"),
    (GOOD.replace("matmul(%x, %0)", "frobnicate(%x, %0)"), "unknown op 'frobnicate'"),
    (GOOD.replace("matmul(%x, %0)", "matmul(%x, %0) {axis = 1}"), "unknown attribute 'axis' for matmul"),
    (GOOD.replace("{name = @w}", "{name = @v}"), "unknown weight @v"),
    (GOOD.replace("{name = @w}", "{name = \"w\"}"), "attribute 'name' must be symbol"),
    (GOOD.replace("weight {name = @w} : tensor<4x2xf32>", "weight {name = @w} : tensor<4x3xf32>")
     .replace("tensor<3x2xf32>", "tensor<3x3xf32>"),
     "declared tensor<4x3xf32> but weight gives tensor<4x2xf32>"),
])
def test_type_errors_are_reported_at_the_node(bad, message):
    module = parse_module(bad, "m.ir")
    with pytest.raises(IRVerifyError) as e:
        verify(module)
    assert message in str(e.value)


def test_tensor_types_are_interned_immutable_and_copy_to_themselves():
    """Equal types are one object (the passes compare and hash them by identity), whatever spelled them."""
    import copy
    import pickle

    from aalbert.ir.types import parse_tensor_type

    t = TensorType((2, 3), DType.F32)
    assert TensorType([2, 3], "f32") is t and TensorType((np.int64(2).item(), 3), DType.F32) is t
    assert parse_tensor_type("tensor<2x3xf32>") is t and TensorType.of(np.zeros((2, 3), np.float32)) is t
    assert pickle.loads(pickle.dumps(t)) is t and copy.deepcopy(t) is t
    assert TensorType((2, 3), DType.F16) is not t and t != TensorType((3, 2), DType.F32)
    assert (t.numel, t.nbytes, t.rank, str(t)) == (6, 24, 2, "tensor<2x3xf32>")
    assert len({t, TensorType((2, 3), DType.F32), TensorType((2, 3), DType.I8)}) == 2
    with pytest.raises(AttributeError):
        t.shape = (6,)
    for bad in [(2, -1), (2.0, 3), (np.int64(2), 3)]:
        with pytest.raises(ValueError, match="bad tensor shape"):
            TensorType(bad, DType.F32)
