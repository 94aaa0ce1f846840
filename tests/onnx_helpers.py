"""Building small ONNX models by hand (a producer other than torch) and comparing with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from aalbert.ir.interpreter import run
from aalbert.ir.module import Module
from aalbert.mapper.frontends import DimSpec, import_onnx

NP_TO_ONNX = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64,
              np.dtype("bool"): TensorProto.BOOL, np.dtype("int32"): TensorProto.INT32,
              np.dtype("float64"): TensorProto.DOUBLE}


def make_model(nodes, inputs: dict[str, np.ndarray], outputs: list[str],
               initializers: dict[str, np.ndarray] | None = None, opset: int = 17,
               dynamic: dict[str, list] | None = None, name: str = "g") -> onnx.ModelProto:
    """A model whose inputs have the example arrays' dtypes and shapes (or the given symbolic dims)."""
    dynamic = dynamic or {}
    vi = [helper.make_tensor_value_info(k, NP_TO_ONNX[v.dtype], dynamic.get(k, list(v.shape)))
          for k, v in inputs.items()]
    vo = [onnx.ValueInfoProto(name=o) for o in outputs]  # types left to inference
    inits = [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, name, vi, vo, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="aalbert-tests")
    model.ir_version = min(model.ir_version, 10)  # what the installed onnxruntime reads
    return model


def compare_with_ort(path: Path, feeds: dict[str, np.ndarray], atol: float = 1e-4) -> Module:
    """Import `path`, run it and onnxruntime on `feeds`, and check every output."""
    module = Module()
    shapes = {k: v.shape for k, v in feeds.items()}
    import_onnx(path, module, "t", DimSpec(), input_shapes=shapes)
    ours = run(module, "t", feeds)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    theirs = dict(zip(names, session.run(None, feeds)))
    assert list(ours) == names
    for name in names:
        got, want = ours[name], theirs[name]
        assert got.shape == want.shape, name
        assert got.dtype == want.dtype, name
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, atol=atol, rtol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)
    return module
