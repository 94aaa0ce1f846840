"""Whole models through the ONNX frontend, checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from onnx import helper  # noqa: E402

from aalbert.errors import FrontendError  # noqa: E402
from aalbert.examples.zoo import FamilySpec, build_family, distinct_parameters  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.mapper.frontends import DimSpec, import_onnx  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, import_torch  # noqa: E402

from .helpers import SEQ, assert_clean_error  # noqa: E402
from .onnx_helpers import compare_with_ort, make_model  # noqa: E402


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_example_exports_match_onnxruntime(tiny_exports, tiny_inputs, family, exporter):
    for path in tiny_exports[family, exporter].values():
        compare_with_ort(path, tiny_inputs)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_other_sequence_lengths_and_batch(tiny_exports, exporter):
    # the exports have dynamic batch and sequence: fix them differently at import
    path = tiny_exports["adapter-albert", exporter]["cola"]
    rng = np.random.default_rng(3)
    feeds = {"input_ids": rng.integers(0, 100, (3, 9)), "attention_mask": np.ones((3, 9), np.int64),
             "token_type_ids": np.zeros((3, 9), np.int64)}
    feeds["attention_mask"][1, 5:] = 0
    compare_with_ort(path, feeds)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_frontends_agree_on_weights(tiny_models, tiny_exports, tiny_inputs, family, exporter):
    """TorchScript, dynamo and fx give the same pool: same hashes, same layouts."""
    onnx_module = Module()
    for task, path in tiny_exports[family, exporter].items():
        import_onnx(path, onnx_module, task, DimSpec(1, SEQ))
    fx_module = Module()
    for task, model in tiny_models[family].items():
        import_torch(model, {k: torch.from_numpy(v) for k, v in tiny_inputs.items()},
                     fx_module, task, ImportOptions(("logits",)))
    assert {w.hash for w in onnx_module.weights.values()} == {w.hash for w in fx_module.weights.values()}
    assert sum(w.numel for w in onnx_module.weights.values()) == distinct_parameters(tiny_models[family].values())


def test_finetuned_albert_files_share_nothing(tiny_exports):
    module = Module()
    for task, path in tiny_exports["albert", "torchscript"].items():
        import_onnx(path, module, task, DimSpec(1, SEQ))
    used = [{w.hash for w in module.used_weights(t)} for t in module.graphs]
    assert not set.intersection(*used)


def test_adapter_albert_base_two_files_count_each_parameter_once(tmp_path):
    """Base size, two per-task files: the pool holds exactly the torch model's distinct parameters."""
    from aalbert.examples.export import export_model

    models = build_family(FamilySpec("adapter-albert", "base", ("sst2", "mnli")))
    module = Module()
    for task, model in models.items():
        path = export_model(model, tmp_path / f"{task}.onnx", "torchscript", seq_len=8)
        import_onnx(path, module, task, DimSpec(1, 128))
    assert sum(w.numel for w in module.weights.values()) == distinct_parameters(models.values())
    # the shared layer's weights are one weight each, read 12 times per inference
    graph = module.graphs["sst2"]
    users = graph.users()
    reads = sorted(len(users[n.output]) for n in graph.nodes if n.op == "weight")
    assert reads.count(12) >= 16  # q, k, v, o, ffn, ffn_out weights and biases, 2 LayerNorms x 2, adapters


# --- Hugging Face encoders (random init from a config; nothing downloaded) ------------------
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["albert", "bert"])
def test_hugging_face_encoders_match_onnxruntime(hf_exports, name, exporter, attention, tiny_inputs):
    compare_with_ort(hf_exports(name, attention, exporter, ("last_hidden_state", "pooler_output")), tiny_inputs)


# --- a hand-written encoder layer (another producer, newer ops, odd names) ------------------
def _handmade_layer(tmp_path, external: bool):
    rng = np.random.default_rng(0)
    h, heads, s = 16, 2, 6
    w = {n: rng.standard_normal(shape).astype(np.float32) * 0.3 for n, shape in [
        ("enc/qkv::weight", (3 * h, h)), ("enc/qkv::bias", (3 * h,)), ("enc/out.weight", (h, h)),
        ("ln/g", (h,)), ("ln/b", (h,))]}
    consts = {"shape_heads": np.array([0, 0, heads, h // heads], np.int64), "split": np.array([h, h, h], np.int64),
              "shape_back": np.array([0, 0, h], np.int64), "scale": np.array(1 / np.sqrt(h // heads), np.float32),
              "zero": np.array(0, np.int64), "neg": np.array(-1e4, np.float32), "zf": np.array(0.0, np.float32)}
    N = helper.make_node
    nodes = [
        N("Identity", ["x"], ["x::copy"]),
        N("Gemm", ["x2d", "enc/qkv::weight", "enc/qkv::bias"], ["qkv2d"], transB=1, alpha=1.0, beta=1.0),
        N("Flatten", ["x::copy"], ["x2d"], axis=2),
        N("Reshape", ["qkv2d", "qkv_shape"], ["qkv"]),
        N("Split", ["qkv", "split"], ["q", "k", "v"], axis=2),
        N("Reshape", ["q", "shape_heads"], ["q4"]), N("Reshape", ["k", "shape_heads"], ["k4"]),
        N("Reshape", ["v", "shape_heads"], ["v4"]),
        N("Transpose", ["q4"], ["qt"], perm=[0, 2, 1, 3]), N("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
        N("Transpose", ["v4"], ["vt"], perm=[0, 2, 1, 3]),
        N("MatMul", ["qt", "kt"], ["scores"]), N("Mul", ["scores", "scale"], ["scaled"]),
        N("Equal", ["mask", "zero"], ["pad"]), N("Unsqueeze", ["pad", "axes12"], ["pad4"]),
        N("Where", ["pad4", "neg", "zf"], ["bias"]), N("Add", ["scaled", "bias"], ["masked"]),
        N("Softmax", ["masked"], ["p"], axis=-1), N("MatMul", ["p", "vt"], ["ctx"]),
        N("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]), N("Reshape", ["ctx_t", "shape_back"], ["ctx3"]),
        N("Transpose", ["enc/out.weight"], ["out_wt"], perm=[1, 0]), N("MatMul", ["ctx3", "out_wt"], ["o"]),
        N("Add", ["o", "x"], ["res"]),
        N("LayerNormalization", ["res", "ln/g", "ln/b"], ["normed"], axis=-1, epsilon=1e-6),
        N("Gelu", ["normed"], ["y::out"]),
        N("Shape", ["x"], ["xshape"]), N("Slice", ["xshape", "s0", "s2"], ["bs"]),
        N("Concat", ["bs", "three_h"], ["qkv_shape"], axis=0),
    ]
    consts.update({"axes12": np.array([1, 2], np.int64), "s0": np.array([0], np.int64),
                   "s2": np.array([2], np.int64), "three_h": np.array([3 * h], np.int64)})
    feeds = {"x": rng.standard_normal((1, s, h)).astype(np.float32), "mask": np.ones((1, s), np.int64)}
    feeds["mask"][0, -2:] = 0
    # topological order is required by ONNX: sort the nodes the way a careful producer would
    order = ["Identity", "Flatten", "Shape", "Slice", "Concat"]
    nodes = sorted(nodes, key=lambda n: order.index(n.op_type) if n.op_type in order else len(order))
    model = make_model(nodes, feeds, ["y::out", "x::copy"], {**w, **consts}, opset=20,
                       dynamic={"x": ["batch", "seq", h], "mask": ["batch", "seq"]})
    path = tmp_path / "layer.onnx"
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="layer.onnx.data", size_threshold=256)
    else:
        onnx.save_model(model, str(path))
    return path, feeds


@pytest.mark.parametrize("external", [False, True])
def test_handmade_encoder_layer(tmp_path, external):
    path, feeds = _handmade_layer(tmp_path, external)
    module = compare_with_ort(path, feeds)
    graph = module.graphs["t"]
    # a graph output that is an input passed through stays exactly that
    assert dict(graph.outputs)["x::copy"] is graph.inputs[0]
    # Gemm's transB and the explicit Transpose were folded into the stored weights
    assert not any(n.op == "transpose" and n.inputs[0].producer is not None
                   and n.inputs[0].producer.op == "weight" for n in graph.nodes)
    assert {w.type.shape for w in module.weights.values()} >= {(16, 48), (16, 16)}


def test_an_output_onto_the_external_data_is_refused(tmp_path, capsys, monkeypatch):
    """The external data file is an input like the model: nothing may be written over it."""
    from aalbert.mapper.cli import compile as compile_cli

    path, _ = _handmade_layer(tmp_path, external=True)
    data = tmp_path / "layer.onnx.data"
    before = data.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert_clean_error(compile_cli.main, [str(path), "--seq-len", "6",
                                          "--target", "edge_accel", "--report-json", str(data)],
                       capsys, "layer.onnx.data: refusing to overwrite")
    assert data.read_bytes() == before


def test_external_data_file_missing_is_a_clear_error(tmp_path):
    path, _ = _handmade_layer(tmp_path, external=True)
    (tmp_path / "layer.onnx.data").unlink()
    with pytest.raises(FrontendError, match="external weight data"):
        import_onnx(path, Module(), "t")
