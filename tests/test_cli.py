"""The command-line tools: summaries, dumps, running models, and one-line errors on bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from aalbert.examples.zoo import distinct_parameters
from aalbert.ir.fileio import load_module, write_npz
from aalbert.ir.printer import print_module
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.cli import opt as opt_cli
from aalbert.mapper.cli import run as run_cli

from .helpers import SEQ, assert_clean_error, call
from .onnx_helpers import make_model


# --- aalbert-compile ------------------------------------------------------------------------------
def test_compile_example_summary(capsys, tiny_models):
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", SEQ], capsys)
    assert code == 0, err
    assert "example adapter-albert (tiny, 2 tasks), batch 1, sequence 16" in out
    assert "cola" in out and "sst2" in out
    assert "MACs/inference" in out and "ops over all tasks: " in out


def test_compile_example_layers(capsys):
    macs = {}
    for layers in (2, 4):
        code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", SEQ, "--layers",
                                                 layers], capsys)
        assert code == 0, err
        assert f"(tiny, {layers} layers, 1 task)" in out
        macs[layers] = float(out.split("\ncola ")[1].split()[3])
    # the embedding and head are outside the repeated layer: twice the layers, less than twice the work
    assert macs[2] < macs[4] < 2 * macs[2]


def test_compile_files_counts_shared_weights_once(capsys, tiny_exports, tiny_models):
    paths = tiny_exports["adapter-albert", "torchscript"]
    argv = [f"--task=first={paths['cola']}", f"--task=second={paths['stsb']}", "--seq-len", SEQ]
    code, out, err = call(compile_cli.main, argv, capsys)
    assert code == 0, err
    params = distinct_parameters(tiny_models["adapter-albert"].values())
    assert f"{params:,} parameters" in out
    assert "\nfirst " in out and "\nsecond " in out


def test_compile_dump_ir(tmp_path, capsys):
    dump = tmp_path / "dump"
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", 8, "--dump-ir", dump,
                                             "-p", "fold-transposes,dce"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in dump.iterdir()) == ["00-input.ir", "01-fold-transposes.ir", "02-dce.ir",
                                                       "module.ir", "module.npz"]
    module = load_module(dump / "module.ir")
    assert module.has_data
    assert print_module(module) == (dump / "module.ir").read_text() == (dump / "02-dce.ir").read_text()


def test_compile_is_deterministic(tmp_path, capsys):
    outs = []
    for d in ("a", "b"):
        code, out, _ = call(compile_cli.main, ["--example", "albert", "--size", "tiny", "--tasks", "2", "--seq-len", 8,
                                               "--dump-ir", tmp_path / d], capsys)
        outs.append(out)
    assert outs[0] == outs[1]
    for name in ("module.ir", "module.npz", "00-input.ir"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


# --- aalbert-run ----------------------------------------------------------------------------------
def test_run_onnx_and_ir_agree_with_torch(tmp_path, capsys, tiny_exports, tiny_models, tiny_inputs):
    import torch

    inputs = tmp_path / "in.npz"
    write_npz(inputs, tiny_inputs)
    path = tiny_exports["albert", "dynamo"]["stsb"]
    code, out, err = call(run_cli.main, [path, "--inputs", inputs, "-o", tmp_path / "out.npz"], capsys)
    assert code == 0, err
    assert out.strip() == "logits: [1, 1] float32"
    with torch.no_grad():
        want = tiny_models["albert"]["stsb"](**{k: torch.from_numpy(v) for k, v in tiny_inputs.items()}).numpy()
    got = np.load(tmp_path / "out.npz")["logits"]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)

    call(compile_cli.main, ["--example", "albert", "--size", "tiny", "--tasks", "5", "--seq-len", SEQ,
                            "--dump-ir", tmp_path / "d"], capsys)
    code, out, err = call(run_cli.main, [tmp_path / "d" / "module.ir", "--task", "stsb", "--inputs", inputs,
                                         "-o", tmp_path / "out2.npz"], capsys)
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "out2.npz")["logits"], want, atol=1e-5, rtol=0)


# --- aalbert-opt ----------------------------------------------------------------------------------
def test_opt_runs_a_pipeline(tmp_path, capsys):
    text = """module {
  weight @w : tensor<4x2xf32> hash "0000000000000000"

  graph @t(%x: tensor<3x4xf32>) -> ("y": tensor<3x4xf32>) {
    %0 = weight {name = @w} : tensor<4x2xf32>
    %1 = transpose(%0) {perm = [1, 0]} : tensor<2x4xf32>
    %2 = tanh(%x) : tensor<3x4xf32>
    return %2
  }
}
"""
    (tmp_path / "in.ir").write_text(text)
    code, out, err = call(opt_cli.main, [tmp_path / "in.ir", "-p", "dce"], capsys)
    assert code == 0, err
    assert out == """module {

  graph @t(%x: tensor<3x4xf32>) -> ("y": tensor<3x4xf32>) {
    %2 = tanh(%x) : tensor<3x4xf32>
    return %2
  }
}
"""


def test_opt_lists_passes(capsys):
    code, out, _ = call(opt_cli.main, ["--list-passes"], capsys)
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == sorted(names) and {"canonicalize", "dce", "share", "verify"} <= set(names)


# --- bad inputs: one line, exit 2, no traceback, nothing written ---------------------------------------
@pytest.fixture
def bad_files(tmp_path, tiny_exports):
    good = tiny_exports["adapter-albert", "torchscript"]["cola"]
    files = {"text": tmp_path / "notes.onnx", "truncated": tmp_path / "cut.onnx",
             "unsupported": tmp_path / "nms.onnx", "dynamic": tmp_path / "dyn.onnx"}
    files["text"].write_text("this is not a model\n")
    blob = good.read_bytes()
    files["truncated"].write_bytes(blob[: len(blob) // 2])
    x = np.zeros((1, 2, 4), np.float32)
    onnx.save(make_model([helper.make_node("NonMaxSuppression", ["x", "x"], ["y"], name="nms")], {"x": x}, ["y"]),
              str(files["unsupported"]))
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": x}, ["y"],
                         dynamic={"x": ["b", "s", "width"]}), str(files["dynamic"]))
    return files


@pytest.mark.parametrize("key, match", [
    ("missing", "nothere.onnx: no such file"),
    ("text", "notes.onnx: not a readable ONNX model"),
    ("truncated", "cut.onnx: not a readable ONNX model"),
    ("unsupported", "node 'nms' (NonMaxSuppression) uses op NonMaxSuppression (opset 17), which is not supported"),
    ("dynamic", "input 'x' dimension 2 ('width') is dynamic and cannot be fixed; use --dim width=N"),
])
def test_compile_bad_model_files(tmp_path, capsys, bad_files, key, match):
    path = bad_files.get(key, tmp_path / "nothere.onnx")
    dump = tmp_path / "dump"
    assert_clean_error(compile_cli.main, [path, "--dump-ir", dump], capsys, match, must_not_exist=[dump])


TINY = ["--size", "tiny", "--tasks", "1", "--seq-len", "8"]


@pytest.mark.parametrize("argv, match", [
    (["--tasks", "0"], "argument --tasks: expected a positive integer, got 0"),
    (["--size", "huge"], "argument --size: invalid choice: 'huge'"),
    (["-p", "verify,frobnicate"], "unknown pass 'frobnicate'; known passes: allocate, canonicalize, compress, dce, "),
    (["-p", "verify{strict=1}"], "pass 'verify': unknown option 'strict' (options: none)"),
    (["--dim", "seq"], "--dim expects NAME=N with N >= 1, got 'seq'"),
    (["--task", "nopath"], "--task expects NAME=PATH, got 'nopath'"),
    (["model.txt"], "model.txt: unknown file type '.txt'"),
    # compression, on the tiny model
    ([*TINY, "--quantize", "int40"], "pass 'quantize': int formats take 2 to 16 bits, got 40"),
    ([*TINY, "--quantize", "bf8"], "unknown number format 'bf8'"),
    ([*TINY, "--sparsity", "1.5"], "argument --sparsity: expected a sparsity in [0, 1), got '1.5'"),
    ([*TINY, "--sparsity", "-0.1"], "argument --sparsity: expected a sparsity in [0, 1), got '-0.1'"),
    ([*TINY, "--sparsity", "nan"], "argument --sparsity: expected a sparsity in [0, 1), got 'nan'"),
    ([*TINY, "-p", "prune{sparsity=1.5}"], "pass 'prune': sparsity must be in [0, 1), got 1.5"),
    ([*TINY, "--sparsity", "0.5", "--block", "16"], "block must look like 16x16, got '16'"),
    ([*TINY, "--compress", "nope.toml"], "nope.toml: no such policy file (built-in policies: edgebert, none)"),
    ([*TINY, "--compress", "edgebert", "--quantize", "int8"], "do not combine it with --quantize or --sparsity"),
    ([*TINY, "--fidelity"], "--fidelity needs compression"),
    ([*TINY, "-p", "quantize{bits=4}"], "pass 'quantize': unknown option 'bits' (options: format, granularity, kinds, role)"),
    # placement, on the tiny model
    ([*TINY, "--spill"], "--spill needs --target"),
    ([*TINY, "--switch-rate", "0.5"], "--switch-rate needs --target"),
    ([*TINY, "--memory-map", "x.png"], "--memory-map needs --target"),
    ([*TINY, "--target", "edge_accel", "--memory-map", "map.jpg"], "the picture must be a .png or .svg file"),
    ([*TINY, "--target", "edge_accel", "--switch-rate", "3"], "argument --switch-rate: expected a number in [0, 1], got '3'"),
    ([*TINY, "--target", "edge_accel", "--switch-rate", "-1"], "argument --switch-rate: expected a number in [0, 1], got '-1'"),
    ([*TINY, "--target", "edge_accel", "--wakeup", "nan"], "argument --wakeup: expected a finite number >= 1, got 'nan'"),
    ([*TINY, "--target", "edge_accel", "--wakeup", "inf"], "argument --wakeup: expected a finite number >= 1, got 'inf'"),
    ([*TINY, "--target", "edge_accel", "--wakeup", "-1"], "argument --wakeup: expected a finite number >= 1, got '-1'"),
    # the backend, on the tiny model
    ([*TINY, "--emit", "asm"], "--emit needs --target"),
    ([*TINY, "--target", "edge_accel", "--emit", "asm"], "--emit and -o go together"),
    ([*TINY, "--target", "edge_accel", "--requests", "-1"], "--requests must be >= 0"),
    ([*TINY, "--target", "edge_accel", "--pattern", "zigzag"], "zigzag: no such request trace"),
    ([*TINY, "--target", "tpu_like", "--quantize", "int4"], "tpu_like does not run int4"),
])
def test_compile_bad_options(capsys, argv, match):
    """Every option the compile command refuses, with the one line it says."""
    assert_clean_error(compile_cli.main, argv, capsys, match)


GOOD_IR = """module {
  graph @t(%x: tensor<3x4xf32>) -> ("y": tensor<3x4xf32>) {
    %0 = tanh(%x) : tensor<3x4xf32>
    return %0
  }
}
"""


@pytest.mark.parametrize("text, match", [
    (GOOD_IR.replace("tanh(%x)", "tanh(%x"), "bad.ir:3:18: unexpected ':'; expected ')', ','"),
    (GOOD_IR.replace('"y": tensor<3x4xf32>', '"y": tensor<4x3xf32>').replace(": tensor<3x4xf32>\n", ": tensor<4x3xf32>\n"),
     "bad.ir:3:5: graph @t, node '%0 = tanh(%x)': result %0 is declared tensor<4x3xf32> but tanh gives tensor<3x4xf32>"),
    (GOOD_IR.replace("tanh", "softmax"), "bad.ir:3:5: graph @t, node '%0 = softmax(%x)': missing attribute 'axis'"),
    ("\x00\x01binary", "bad.ir:1:1: unexpected character"),
])
def test_opt_bad_ir(tmp_path, capsys, text, match):
    (tmp_path / "bad.ir").write_text(text)
    out = tmp_path / "out.ir"
    line = assert_clean_error(opt_cli.main, [tmp_path / "bad.ir", "-o", out], capsys, match, must_not_exist=[out])
    assert line.startswith("aalbert-opt: error: " + str(tmp_path / "bad.ir"))


def test_opt_refuses_to_overwrite_its_input(tmp_path, capsys):
    (tmp_path / "m.ir").write_text(GOOD_IR)
    assert_clean_error(opt_cli.main, [tmp_path / "m.ir", "-o", tmp_path / "m.ir"], capsys,
                       "refusing to overwrite a file this command reads")
    assert (tmp_path / "m.ir").read_text() == GOOD_IR


@pytest.fixture
def dumped(tmp_path, capsys):
    call(compile_cli.main, ["--example", "albert", "--size", "tiny", "--tasks", "2", "--seq-len", 8,
                            "--dump-ir", tmp_path / "a"], capsys)
    call(compile_cli.main, ["--example", "adapter-albert", "--size", "tiny", "--tasks", "2", "--seq-len", 8,
                            "--dump-ir", tmp_path / "b"], capsys)
    inputs = tmp_path / "in.npz"
    write_npz(inputs, {"input_ids": np.zeros((1, 8), np.int64), "attention_mask": np.ones((1, 8), np.int64),
                       "token_type_ids": np.zeros((1, 8), np.int64)})
    return tmp_path


def test_run_rejects_sidecar_of_another_model(dumped, capsys):
    (dumped / "a" / "module.npz").write_bytes((dumped / "b" / "module.npz").read_bytes())
    out = dumped / "out.npz"
    assert_clean_error(run_cli.main, [dumped / "a" / "module.ir", "--task", "cola", "--inputs", dumped / "in.npz",
                                      "-o", out], capsys, "module.npz: ", must_not_exist=[out])


@pytest.mark.parametrize("inputs, match", [
    ({"input_ids": np.zeros((1, 8), np.int64)}, "missing inputs attention_mask, token_type_ids"),
    ({"input_ids": np.zeros((1, 9), np.int64), "attention_mask": np.ones((1, 8), np.int64),
      "token_type_ids": np.zeros((1, 8), np.int64)}, "input 'input_ids' has shape [1, 9], the graph expects [1, 8]"),
    ({"input_ids": np.full((1, 8), 500, np.int64), "attention_mask": np.ones((1, 8), np.int64),
      "token_type_ids": np.zeros((1, 8), np.int64)}, "id 500 out of range for a table of 100 rows"),
])
def test_run_bad_inputs(dumped, capsys, inputs, match):
    write_npz(dumped / "bad.npz", inputs)
    out = dumped / "out.npz"
    assert_clean_error(run_cli.main, [dumped / "a" / "module.ir", "--task", "cola", "--inputs", dumped / "bad.npz",
                                      "-o", out], capsys, match, must_not_exist=[out])


def test_run_needs_task_for_multitask_ir(dumped, capsys):
    assert_clean_error(run_cli.main, [dumped / "a" / "module.ir", "--inputs", dumped / "in.npz", "-o",
                                      dumped / "o.npz"], capsys, "holds tasks cola, sst2; choose one with --task")


def test_run_inputs_not_npz(dumped, capsys):
    (dumped / "junk.npz").write_text("junk")
    assert_clean_error(run_cli.main, [dumped / "a" / "module.ir", "--task", "cola", "--inputs", dumped / "junk.npz",
                                      "-o", dumped / "o.npz"], capsys, "junk.npz: not a readable .npz file of inputs")


def test_console_scripts_installed(tmp_path):
    """The installed entry points run, and a user error exits 2 without a traceback."""
    bindir = __import__("pathlib").Path(sys.executable).parent
    for tool in ("aalbert-compile", "aalbert-opt", "aalbert-run"):
        r = subprocess.run([str(bindir / tool), "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage:" in r.stdout
    r = subprocess.run([str(bindir / "aalbert-compile"), str(tmp_path / "missing.onnx")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"aalbert-compile: error: {tmp_path / 'missing.onnx'}: no such file"
