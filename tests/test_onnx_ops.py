"""Every supported ONNX operator, one small model each, against onnxruntime.

Inputs fed to the model exercise the interpreter; inputs given as
initializers exercise the importer's constant folding (the same numpy
semantics, at import time). Old opsets where operators changed form
(attributes that became inputs, Softmax's 2-D coercion) are covered too.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from aalbert.errors import UnsupportedOpError  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.mapper.frontends import DimSpec, import_onnx  # noqa: E402
from aalbert.mapper.frontends.onnx_import import HANDLERS  # noqa: E402

from .onnx_helpers import compare_with_ort, make_model  # noqa: E402

R = np.random.default_rng(7)


def f32(*shape, positive=False):
    a = R.standard_normal(shape).astype(np.float32)
    return np.abs(a) + np.float32(0.1) if positive else a


def i64(*values):
    return np.array(values, dtype=np.int64)


N = helper.make_node
# (id, node, feeds, initializers, opset, outputs)
CASES = [
    *[(op, N(op, ["x"], ["y"]), {"x": f32(2, 3, positive=op in ("Sqrt", "Log"))}, {}, 17, ["y"])
      for op in ("Neg", "Abs", "Sqrt", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Relu", "Reciprocal", "Sign",
                 "Floor", "Ceil", "Sin", "Cos")],
    ("IsNaN", N("IsNaN", ["x"], ["y"]), {"x": np.array([1.0, np.nan, -np.inf], np.float32)}, {}, 17, ["y"]),
    ("Not", N("Not", ["x"], ["y"]), {"x": np.array([True, False])}, {}, 17, ["y"]),
    *[(op, N(op, ["a", "b"], ["y"]), {"a": f32(2, 1, 4), "b": f32(3, 1)}, {}, 17, ["y"])
      for op in ("Add", "Sub", "Mul", "Div", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual")],
    ("Pow", N("Pow", ["a", "b"], ["y"]), {"a": f32(3, 4, positive=True)}, {"b": np.array(3.0, np.float32)}, 17, ["y"]),
    ("Pow-feed", N("Pow", ["a", "b"], ["y"]), {"a": f32(3, 4, positive=True), "b": f32(4)}, {}, 17, ["y"]),
    ("Div-int", N("Div", ["a", "b"], ["y"]), {"a": i64(7, -7, 6, -1), "b": i64(2, 2, -4, 3)}, {}, 17, ["y"]),
    *[(op, N(op, ["a", "b"], ["y"]), {"a": np.array([True, False, True]), "b": np.array([True, True, False])},
       {}, 17, ["y"]) for op in ("And", "Or", "Xor")],
    *[(op, N(op, ["a", "b", "c"], ["y"]), {"a": f32(2, 3), "b": f32(3), "c": f32(1, 3)}, {}, 17, ["y"])
      for op in ("Max", "Min", "Sum")],
    ("Gelu", N("Gelu", ["x"], ["y"]), {"x": f32(2, 5)}, {}, 20, ["y"]),
    ("Gelu-tanh", N("Gelu", ["x"], ["y"], approximate="tanh"), {"x": f32(2, 5)}, {}, 20, ["y"]),
    ("Cast-f2i", N("Cast", ["x"], ["y"], to=TensorProto.INT64), {"x": np.array([1.7, -1.7, 0.2], np.float32)}, {},
     17, ["y"]),
    ("Cast-i2f", N("Cast", ["x"], ["y"], to=TensorProto.FLOAT), {"x": i64(1, -2)}, {}, 17, ["y"]),
    ("Cast-bool", N("Cast", ["x"], ["y"], to=TensorProto.BOOL), {"x": np.array([0.0, 2.0], np.float32)}, {}, 17, ["y"]),
    ("Clip", N("Clip", ["x", "lo", "hi"], ["y"]), {"x": f32(3, 3)}, {"lo": np.array(-0.5, np.float32),
                                                                  "hi": np.array(0.5, np.float32)}, 17, ["y"]),
    ("Clip-min-only", N("Clip", ["x", "lo"], ["y"]), {"x": f32(3, 3)}, {"lo": np.array(0.0, np.float32)}, 17, ["y"]),
    ("Clip-attrs", N("Clip", ["x"], ["y"], min=-0.2, max=0.3), {"x": f32(3, 3)}, {}, 10, ["y"]),
    ("Where", N("Where", ["c", "a", "b"], ["y"]), {"c": np.array([[True], [False]]), "a": f32(2, 3), "b": f32(3)},
     {}, 17, ["y"]),
    ("MatMul-2d", N("MatMul", ["a", "b"], ["y"]), {"a": f32(3, 4), "b": f32(4, 5)}, {}, 17, ["y"]),
    ("MatMul-batch", N("MatMul", ["a", "b"], ["y"]), {"a": f32(2, 1, 3, 4), "b": f32(3, 4, 2)}, {}, 17, ["y"]),
    ("MatMul-1d-left", N("MatMul", ["a", "b"], ["y"]), {"a": f32(4), "b": f32(2, 4, 3)}, {}, 17, ["y"]),
    ("MatMul-1d-right", N("MatMul", ["a", "b"], ["y"]), {"a": f32(2, 3, 4), "b": f32(4)}, {}, 17, ["y"]),
    ("MatMul-weight", N("MatMul", ["a", "w"], ["y"]), {"a": f32(2, 3, 4)}, {"w": f32(4, 6)}, 17, ["y"]),
    ("Gemm", N("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0),
     {"a": f32(4, 3)}, {"b": f32(5, 4), "c": f32(5)}, 17, ["y"]),
    ("Gemm-plain", N("Gemm", ["a", "b"], ["y"]), {"a": f32(2, 3), "b": f32(3, 4)}, {}, 17, ["y"]),
    ("Softmax", N("Softmax", ["x"], ["y"], axis=1), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("Softmax-opset11", N("Softmax", ["x"], ["y"], axis=1), {"x": f32(2, 3, 4)}, {}, 11, ["y"]),
    ("LayerNorm", N("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-3), {"x": f32(2, 3, 8)},
     {"g": f32(8), "b": f32(8)}, 17, ["y"]),
    ("LayerNorm-axis1-nobias", N("LayerNormalization", ["x", "g"], ["y"], axis=1), {"x": f32(2, 3, 4)},
     {"g": f32(3, 4)}, 17, ["y"]),
    ("ReduceMean-attr", N("ReduceMean", ["x"], ["y"], axes=[-1], keepdims=1), {"x": f32(2, 3, 4)}, {}, 13, ["y"]),
    ("ReduceMean-input", N("ReduceMean", ["x", "axes"], ["y"], keepdims=0), {"x": f32(2, 3, 4)},
     {"axes": i64(0, 2)}, 18, ["y"]),
    ("ReduceSum", N("ReduceSum", ["x", "axes"], ["y"]), {"x": f32(2, 3, 4)}, {"axes": i64(1)}, 13, ["y"]),
    ("ReduceSum-all", N("ReduceSum", ["x"], ["y"], keepdims=0), {"x": f32(2, 3)}, {}, 13, ["y"]),
    ("ReduceMax", N("ReduceMax", ["x"], ["y"], axes=[1]), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("ReduceMin", N("ReduceMin", ["x"], ["y"], axes=[0], keepdims=0), {"x": f32(2, 3)}, {}, 17, ["y"]),
    ("ReduceL2", N("ReduceL2", ["x"], ["y"], axes=[-1]), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("CumSum", N("CumSum", ["x", "ax"], ["y"], exclusive=1, reverse=1), {"x": f32(3, 4)},
     {"ax": np.array(1, np.int64)}, 17, ["y"]),
    ("Reshape", N("Reshape", ["x", "s"], ["y"]), {"x": f32(2, 3, 4)}, {"s": i64(0, -1, 2)}, 17, ["y"]),
    ("Flatten-0", N("Flatten", ["x"], ["y"], axis=0), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("Flatten-2", N("Flatten", ["x"], ["y"], axis=2), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("Unsqueeze-attr", N("Unsqueeze", ["x"], ["y"], axes=[0, -1]), {"x": f32(2, 3)}, {}, 11, ["y"]),
    ("Unsqueeze", N("Unsqueeze", ["x", "a"], ["y"]), {"x": f32(2, 3)}, {"a": i64(1, 3)}, 17, ["y"]),
    ("Squeeze", N("Squeeze", ["x", "a"], ["y"]), {"x": f32(1, 3, 1)}, {"a": i64(-1)}, 17, ["y"]),
    ("Squeeze-all", N("Squeeze", ["x"], ["y"]), {"x": f32(1, 3, 1)}, {}, 17, ["y"]),
    ("Transpose-default", N("Transpose", ["x"], ["y"]), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("Transpose", N("Transpose", ["x"], ["y"], perm=[1, 2, 0]), {"x": f32(2, 3, 4)}, {}, 17, ["y"]),
    ("Expand", N("Expand", ["x", "s"], ["y"]), {"x": f32(3, 1)}, {"s": i64(2, 1, 4)}, 17, ["y"]),
    ("Tile", N("Tile", ["x", "r"], ["y"]), {"x": f32(2, 3)}, {"r": i64(2, 3)}, 17, ["y"]),
    ("Concat", N("Concat", ["a", "b"], ["y"], axis=-1), {"a": f32(2, 3), "b": f32(2, 1)}, {}, 17, ["y"]),
    ("Split", N("Split", ["x", "s"], ["y0", "y1"], axis=1), {"x": f32(2, 5)}, {"s": i64(2, 3)}, 17, ["y0", "y1"]),
    ("Split-num-outputs", N("Split", ["x"], ["y0", "y1", "y2"], axis=1, num_outputs=3), {"x": f32(2, 7)}, {}, 18,
     ["y0", "y1", "y2"]),
    ("Split-attr", N("Split", ["x"], ["y0", "y1"], axis=0, split=[1, 2]), {"x": f32(3, 2)}, {}, 11, ["y0", "y1"]),
    ("Slice", N("Slice", ["x", "s", "e", "a", "st"], ["y"]), {"x": f32(4, 6, 5)},
     {"s": i64(-1, 1), "e": i64(-2**63, 100), "a": i64(1, 2), "st": i64(-2, 2)}, 17, ["y"]),
    ("Slice-default-axes", N("Slice", ["x", "s", "e"], ["y"]), {"x": f32(4, 6)}, {"s": i64(1, 2), "e": i64(3, -1)},
     17, ["y"]),
    ("Slice-attrs", N("Slice", ["x"], ["y"], starts=[1], ends=[3], axes=[1]), {"x": f32(2, 4)}, {}, 9, ["y"]),
    ("Gather", N("Gather", ["x", "i"], ["y"], axis=1), {"x": f32(2, 5, 3)}, {"i": i64(-1, 0, 3)}, 17, ["y"]),
    ("Gather-feed", N("Gather", ["t", "i"], ["y"]), {"i": np.array([[1, 4], [0, 2]], np.int64)}, {"t": f32(5, 3)},
     17, ["y"]),
    ("GatherND", N("GatherND", ["x", "i"], ["y"]), {"x": f32(3, 4, 2)}, {"i": np.array([[0, 1], [2, 3]], np.int64)},
     17, ["y"]),
    ("GatherND-batch", N("GatherND", ["x", "i"], ["y"], batch_dims=1), {"x": f32(2, 4, 3)},
     {"i": np.array([[[1]], [[3]]], np.int64)}, 17, ["y"]),
    ("ScatterElements", N("ScatterElements", ["x", "i", "u"], ["y"], axis=2),
     {"x": f32(1, 2, 6, 3), "u": f32(1, 2, 2, 3)},
     {"i": np.broadcast_to(np.array([4, 1], np.int64).reshape(1, 1, 2, 1), (1, 2, 2, 3)).copy()}, 17, ["y"]),
    ("Shape+Size", None, {"x": f32(2, 3, 4)}, {}, 17, ["s", "n"]),
    ("Range", N("Range", ["a", "b", "c"], ["y"]), {}, {"a": np.array(1.0, np.float32), "b": np.array(4.0, np.float32),
                                                     "c": np.array(0.5, np.float32)}, 17, ["y"]),
    ("ConstantOfShape", N("ConstantOfShape", ["s"], ["y"], value=helper.make_tensor("v", TensorProto.INT64, [1], [7])),
     {}, {"s": i64(2, 3)}, 17, ["y"]),
    ("Constant", N("Constant", [], ["y"], value_floats=[1.0, 2.5]), {}, {}, 17, ["y"]),
    ("Identity+Dropout", None, {"x": f32(2, 3)}, {}, 17, ["a", "b"]),
]


def _special(case_id):
    if case_id == "Shape+Size":
        return [N("Shape", ["x"], ["s"], start=1), N("Size", ["x"], ["n"])]
    return [N("Identity", ["x"], ["a"]), N("Dropout", ["a"], ["b"])]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_matches_onnxruntime(tmp_path, case):
    case_id, node, feeds, inits, opset, outputs = case
    nodes = _special(case_id) if node is None else [node]
    if not feeds:  # everything folds: feed a dummy input so the model has one
        feeds = {"unused": np.zeros(1, np.float32)}
    model = make_model(nodes, feeds, outputs, inits, opset=opset)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    compare_with_ort(path, feeds, atol=1e-5)


def test_every_handler_is_covered():
    covered = {c[1].op_type for c in CASES if c[1] is not None} | {"Shape", "Size", "Identity", "Dropout"}
    assert set(HANDLERS) - covered == set()


def test_scatter_elements_other_than_an_index_copy_is_refused_in_one_line(tmp_path):
    """Indices that differ along an axis other than the scatter's are not an index copy."""
    from aalbert.errors import FrontendError

    index = np.array([[0, 1], [1, 0]], np.int64)
    node = N("ScatterElements", ["x", "i", "u"], ["y"], axis=0, name="sc")
    model = make_model([node], {"x": f32(3, 2), "u": f32(2, 2)}, ["y"], {"i": index})
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(FrontendError, match="supported as an index copy") as e:
        import_onnx(path, Module(), "t")
    assert "\n" not in str(e.value) and "'sc'" in str(e.value)


def test_unsupported_op_names_op_node_opset_and_supported_list(tmp_path):
    model = make_model([N("NonMaxSuppression", ["x", "x"], ["y"], name="nms_1")], {"x": f32(1, 2, 4)}, ["y"])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(path, Module(), "t")
    msg = str(e.value)
    assert "node 'nms_1'" in msg and "NonMaxSuppression" in msg and "opset 17" in msg
    assert "supported ops: Abs, Add, And" in msg


def test_custom_domain_is_unsupported(tmp_path):
    node = N("FastGelu", ["x"], ["y"], domain="com.microsoft", name="fg")
    model = make_model([node], {"x": f32(2)}, ["y"])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedOpError, match="domain 'com.microsoft'"):
        import_onnx(path, Module(), "t")


def test_data_dependent_shape_is_a_clear_error(tmp_path):
    model = make_model([N("Reshape", ["x", "s"], ["y"])], {"x": f32(6), "s": i64(2, 3)}, ["y"])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    from aalbert.errors import FrontendError
    with pytest.raises(FrontendError, match="depends on the model's inputs"):
        import_onnx(path, Module(), "t")


def test_dynamic_dims_fixed_by_position_and_name(tmp_path):
    model = make_model([N("Add", ["x", "x"], ["y"])], {"x": f32(1, 1, 1)}, ["y"], dynamic={"x": ["b", "s", "feat"]})
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    from aalbert.errors import FrontendError
    with pytest.raises(FrontendError, match=r"dimension 2 \('feat'\) is dynamic.*--dim feat=N"):
        import_onnx(path, Module(), "t", DimSpec(2, 5))
    module = Module()
    graph = import_onnx(path, module, "t", DimSpec(2, 5, {"feat": 7}))
    assert graph.inputs[0].type.shape == (2, 5, 7)
