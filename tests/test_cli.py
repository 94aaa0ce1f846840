"""The command-line tools: summaries, dumps, running models, and one-line errors on bad input."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from aalbert.ir.fileio import load_module, write_npz
from aalbert.ir.printer import print_module
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.cli import opt as opt_cli
from aalbert.mapper.cli import run as run_cli
from aalbert.mapper.cli import study as study_cli
from aalbert.mapper.cli import sweep as sweep_cli

from .helpers import SEQ, LazyImport, assert_clean_error, call, needs

onnx = LazyImport("onnx")
helper = LazyImport("onnx.helper")
make_model = LazyImport("tests.onnx_helpers").function("make_model")


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
    from aalbert.examples.zoo import distinct_parameters

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
TINY2 = ["--size", "tiny", "--tasks", "2", "--seq-len", "8"]


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
    ([*TINY, "-p", "quantize{bits=4}"],
     "pass 'quantize': unknown option 'bits' (options: format, granularity, kinds, role)"),
    # placement, on the tiny model
    ([*TINY, "--spill"], "--spill needs --target"),
    ([*TINY, "--switch-rate", "0.5"], "--switch-rate needs --target"),
    ([*TINY, "--memory-map", "x.png"], "--memory-map needs --target"),
    ([*TINY, "--target", "edge_accel", "--memory-map", "map.jpg"], "the picture must be a .png or .svg file"),
    ([*TINY, "--target", "edge_accel", "--switch-rate", "3"],
     "argument --switch-rate: expected a number in [0, 1], got '3'"),
    ([*TINY, "--target", "edge_accel", "--switch-rate", "-1"],
     "argument --switch-rate: expected a number in [0, 1], got '-1'"),
    ([*TINY, "--target", "edge_accel", "--wakeup", "nan"],
     "argument --wakeup: expected a finite number >= 1, got 'nan'"),
    ([*TINY, "--target", "edge_accel", "--wakeup", "inf"],
     "argument --wakeup: expected a finite number >= 1, got 'inf'"),
    ([*TINY, "--target", "edge_accel", "--wakeup", "-1"], "argument --wakeup: expected a finite number >= 1, got '-1'"),
    # the backend, on the tiny model
    ([*TINY, "--emit", "asm"], "--emit needs --target"),
    ([*TINY, "--target", "edge_accel", "--emit", "asm"], "--emit and -o go together"),
    ([*TINY, "--target", "edge_accel", "--requests", "-1"], "--requests must be >= 0"),
    ([*TINY, "--target", "edge_accel", "--pattern", "zigzag"], "zigzag: no such request trace"),
    ([*TINY, "--target", "tpu_like", "--quantize", "int4"], "tpu_like does not run int4"),
    # every option honoured or refused: one value given twice, a mistyped option or choice, flags that do not apply
    ([*TINY, "--target", "edge_accel", "--target", "tpu_like"], "argument --target: given twice"),
    (["--tasks", "2", "--tasks", "3"], "argument --tasks: given twice"),
    ([*TINY, "--spill", "--spill", "--target", "edge_accel"], "argument --spill: given twice"),
    ([*TINY, "--tragets", "edge_accel"], "unrecognized arguments: --tragets; did you mean --target?"),
    (["--size", "tinny"], "invalid choice: 'tinny' (choose from 'base', 'tiny', 'xxlarge'); did you mean 'tiny'?"),
    ([*TINY, "--dim", "seq=4"], "--dim fixes dimensions of model files; the built-in example takes --batch"),
    ([*TINY, "--dim", "seq=4", "--dim", "seq=5"], "--dim seq given twice (4 and 5)"),
    ([*TINY, "--explain", "query"], "--explain needs --target"),
    (["--list-targets", "model.onnx"], "--list-targets and --list-policies take no model files"),
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
    (GOOD_IR.replace('"y": tensor<3x4xf32>', '"y": tensor<4x3xf32>')
     .replace(": tensor<3x4xf32>\n", ": tensor<4x3xf32>\n"),
     "bad.ir:3:5: graph @t, node '%0 = tanh(%x)': result %0 is declared tensor<4x3xf32> but tanh gives "
     "tensor<3x4xf32>"),
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


@needs("onnx")  # a missing .onnx file is reported by the ONNX frontend
def test_console_scripts_installed(tmp_path):
    """The installed entry points run, and a user error exits 2 without a traceback."""
    bindir = __import__("pathlib").Path(sys.executable).parent
    for tool in ("aalbert-compile", "aalbert-opt", "aalbert-run"):
        r = subprocess.run([str(bindir / tool), "--help"], capture_output=True, text=True)
        assert r.returncode == 0 and "usage:" in r.stdout
    r = subprocess.run([str(bindir / "aalbert-compile"), str(tmp_path / "missing.onnx")], capture_output=True,
                       text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"aalbert-compile: error: {tmp_path / 'missing.onnx'}: no such file"


# --- every flag honoured or refused -------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, match", [
    (["--tasks", "3"], "--tasks shapes the built-in example, which is not compiled when model files are given"),
    (["--size", "tiny"], "--size shapes the built-in example"),
    (["--example", "albert"], "--example shapes the built-in example"),
    (["--bottleneck", "4"], "--bottleneck shapes the built-in example"),
    (["--dim", "nosuch=5"], "--dim nosuch=5: no model input has a dynamic dimension named 'nosuch' (the dynamic "
                            "dimensions: batch, seq)"),
])
def test_compile_refuses_flags_model_files_cannot_take(capsys, tiny_exports, extra, match):
    path = tiny_exports["adapter-albert", "torchscript"]["cola"]
    assert_clean_error(compile_cli.main, [path, "--seq-len", SEQ, *extra], capsys, match)


def test_compile_header_prints_the_shapes_compiled(capsys, tiny_exports):
    path = tiny_exports["adapter-albert", "torchscript"]["cola"]
    code, out, err = call(compile_cli.main, [path, "--dim", "seq=8", "--dim", "batch=2"], capsys)
    assert code == 0, err
    assert out.startswith("aalbert-compile: 1 task from 1 file, batch 2, sequence 8\n")


def test_compile_refuses_shapes_a_static_ir_file_cannot_take(tmp_path, capsys):
    code, _, err = call(compile_cli.main, [*TINY, "--dump-ir", tmp_path / "d"], capsys)
    assert code == 0, err
    ir = tmp_path / "d" / "module.ir"
    code, out, err = call(compile_cli.main, [ir], capsys)
    assert code == 0 and out.startswith("aalbert-compile: 1 task from 1 file, batch 1, sequence 8\n"), err
    assert_clean_error(compile_cli.main, [ir, "--seq-len", 16], capsys,
                       f"{ir}, task 'cola': input 'input_ids' has the static shape [1, 8], so --seq-len 16 cannot "
                       "apply (its dimension 1 is 8)")


def test_the_api_refuses_a_dimension_no_input_has(tiny_exports):
    import aalbert
    from aalbert.errors import OptionError

    path = tiny_exports["adapter-albert", "torchscript"]["cola"]
    with pytest.raises(OptionError, match="--dim width=3: no model input has a dynamic dimension named 'width'"):
        aalbert.compile({"cola": path}, dims={"width": 3})


@pytest.mark.parametrize("tool, argv, match", [
    (opt_cli, ["m.ir", "-p", "dce", "-p", "verify"], "argument -p/--passes: given twice"),
    (opt_cli, ["m.ir", "-o", "a.ir", "--output", "b.ir"], "argument -o/--output: given twice"),
    (opt_cli, ["m.ir", "--pases", "dce"], "unrecognized arguments: --pases dce; did you mean --passes?"),
    (run_cli, ["m.ir", "--inputs", "a.npz", "--inputs", "b.npz", "-o", "o.npz"], "argument --inputs: given twice"),
    (run_cli, ["m.ir", "--inputs", "a.npz", "-o", "o.npz", "--taget", "edge_accel"], "did you mean --target?"),
    (study_cli, ["--tasks", "1", "--tasks", "2"], "argument --tasks: given twice"),
    (study_cli, ["--size", "tinyy"], "did you mean 'tiny'?"),
    (sweep_cli, ["s.toml", "--jobs", "1", "--jobs", "2"], "argument --jobs: given twice"),
])
def test_every_tool_refuses_an_option_given_twice_or_mistyped(tmp_path, capsys, tool, argv, match):
    out = ["--out", tmp_path / "out"] if tool in (study_cli, sweep_cli) else []  # were it to run, not here
    assert_clean_error(tool.main, argv + out, capsys, match, must_not_exist=[tmp_path / "out"])


@pytest.mark.parametrize("tool", [compile_cli, opt_cli, run_cli, study_cli, sweep_cli])
def test_every_tool_has_version_and_states_its_exit_statuses(capsys, tool):
    from importlib.metadata import version

    code, out, _ = call(tool.main, ["--version"], capsys)
    assert code == 0 and out == f"{tool.build_parser().prog} {version('aalbert')}\n"
    code, out, _ = call(tool.main, ["--help"], capsys)
    assert code == 0 and "exit status: 0 done; 2 bad input" in out
    assert ("3 a result, comparison or fidelity" in " ".join(out.split())) == (tool in (compile_cli, run_cli))


def test_compile_lists_targets_and_policies(capsys):
    from aalbert.passes.compress import BUILTIN_POLICIES
    from aalbert.targets.hardware.spec import builtin_targets, load_target

    code, out, err = call(compile_cli.main, ["--list-targets", "--list-policies"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    for name in builtin_targets():
        assert any(line.split()[:1] == [name] and load_target(name).description in line for line in lines), name
    for name in BUILTIN_POLICIES:
        assert any(line.split()[:1] == [name] for line in lines), name
    assert "60 % pruned (bitmask)" in out and "no compression" in out


def test_explain_says_why_a_weight_is_where_it_is(capsys):
    code, out, err = call(compile_cli.main, [*TINY2, "--target", "edge_accel",
                                             "--explain", "@backbone.layer.query.weight",
                                             "--explain", "adapter layer 2 sst2"], capsys)
    assert code == 0, err
    text = out.split("why these weights are where they are on edge_accel")[1]
    assert "@backbone.layer.query.weight: attention, layers 1-3, shared by 2 tasks, 3 reads per inference" in text
    assert "  placed: resident in rram at byte " in text
    assert "  next best: resident in sram, " in text
    adapters = [line for line in text.splitlines() if line.startswith("@sst2/adapters.")]
    assert len(adapters) == 8 and all(", task sst2, 3 reads per inference" in a for a in adapters)
    assert "ruled out: may not live in rram: task-specific weights change in the field" in text


def test_errors_name_weights_by_kind_layer_and_task(capsys, tiny_exports):
    import re

    path = tiny_exports["adapter-albert", "torchscript"]["cola"]
    line = assert_clean_error(compile_cli.main, [path, "--seq-len", SEQ, "--target", "tpu_like"], capsys,
                              "tpu_like does not run f32 (weight @")
    assert re.search(r"\(weight @\S+ \[(embedding|projection|attention|ffn|adapter|layernorm|head)"
                     r"(, layers? [\d-]+)?, task cola\]\)", line), line


# --- no silent non-numbers: NaN or inf is printed as such, says where it arose, and exits 3 ----------------------
@pytest.fixture
def non_finite(tmp_path):
    """A model with a NaN weight, one whose outputs overflow to inf, and an input for both."""
    x = np.ones((1, 4), np.float32)
    w = np.ones((4, 3), np.float32)
    w[1, 2] = np.nan
    onnx.save(make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": x}, ["y"], {"w": w}),
              tmp_path / "nan.onnx")
    onnx.save(make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": x}, ["y"],
                         {"w": np.full((4, 3), 3e38, np.float32)}), tmp_path / "inf.onnx")
    write_npz(tmp_path / "x.npz", {"x": x})
    return tmp_path


def assert_not_finite(code: int, err: str, match: str) -> None:
    assert code == 3, err
    assert "Traceback" not in err and "Warning" not in err
    (line,) = err.strip().splitlines()
    assert match in line, line


@pytest.mark.parametrize("extra", [[], ["--target", "edge_accel"]])
def test_run_reports_nan_outputs_and_exits_3(capsys, non_finite, extra):
    out_file = non_finite / "out.npz"
    code, out, err = call(run_cli.main, [non_finite / "nan.onnx", "--inputs", non_finite / "x.npz", "-o", out_file,
                                         *extra], capsys)
    assert_not_finite(code, err, "aalbert-run: not finite: output 'y' of task 'nan': it comes from weight @w "
                                 "[" if not extra else "aalbert-run: not finite: output 'y' of task 'nan': it comes "
                                                      "from weight @w [head, task nan], which holds NaN")
    assert "y: [1, 3] float32 (holds NaN)" in out
    if extra:
        assert "largest difference from the interpreter on the same compiled module: nan" in out
    assert np.isnan(np.load(out_file)["y"]).sum() == 1  # the outputs are written, as they are


def test_fidelity_of_infinite_outputs_is_nan_and_exits_3(capsys, non_finite):
    code, out, err = call(compile_cli.main, [non_finite / "inf.onnx", "--quantize", "int8", "--fidelity"], capsys)
    assert_not_finite(code, err, "aalbert-compile: not finite: task 'inf': the uncompressed model's output 'y' holds "
                                 "inf; it arises at node '%1 = linear(%x, %0)' (linear), whose result holds inf while "
                                 "its operands are finite")
    table = out.split("fidelity against the uncompressed model")[1].splitlines()
    assert table[1].split() == ["task", "cosine", "max", "abs", "error", "top-1", "agreement"]
    assert table[2].split() == ["inf", "nan", "nan", "nan"]


# --- placements read from files are verified against the target before use ---------------------------------------
@pytest.fixture(scope="module")
def placed_dump(tmp_path_factory):
    """A tiny two-task module placed on edge_accel, with inputs for it."""
    d = tmp_path_factory.mktemp("placed")
    assert compile_cli.main([*TINY2, "--target", "edge_accel", "--dump-ir", str(d / "p")]) == 0
    write_npz(d / "in.npz", {"input_ids": np.zeros((1, 8), np.int64), "attention_mask": np.ones((1, 8), np.int64),
                             "token_type_ids": np.zeros((1, 8), np.int64)})
    return d


def _second_rram_weight(text: str) -> str:
    decls = [line for line in text.splitlines() if 'level = "rram", residency = "resident", offset = ' in line]
    return decls[1]


@pytest.mark.parametrize("change, match", [
    (lambda line: re.sub(r"offset = \d+}", "offset = 0}", line), ") overlap in rram"),
    (lambda line: re.sub(r"offset = \d+}", "offset = 99999999999}", line),
     "occupies bytes [99999999999, 100000008191) of rram, which has 8,388,608"),
    (lambda line: line.replace('level = "rram"', 'level = "dram"'),
     "is in dram, off chip, where edge_accel keeps weights only when spilling (--spill)"),
])
def test_placed_modules_are_verified_before_they_run(tmp_path, capsys, placed_dump, change, match):
    text = (placed_dump / "p" / "module.ir").read_text()
    old = _second_rram_weight(text)
    (tmp_path / "bad.ir").write_text(text.replace(old, change(old)))
    (tmp_path / "bad.npz").write_bytes((placed_dump / "p" / "module.npz").read_bytes())
    out = tmp_path / "out.npz"
    line = assert_clean_error(run_cli.main, [tmp_path / "bad.ir", "--task", "cola", "--inputs", placed_dump / "in.npz",
                                             "-o", out, "--target", "edge_accel"], capsys, match, must_not_exist=[out])
    assert line.startswith(f"aalbert-run: error: {tmp_path / 'bad.ir'}: placement: ") and "[embedding, " in line
    assert_clean_error(opt_cli.main, [tmp_path / "bad.ir", "--target", "edge_accel"], capsys, match)
    assert_clean_error(opt_cli.main, [tmp_path / "bad.ir"], capsys, "its weights are placed (in ")


def test_a_valid_placed_module_runs_and_passes_opt(capsys, placed_dump):
    ir = placed_dump / "p" / "module.ir"
    code, out, err = call(opt_cli.main, [ir, "--target", "edge_accel"], capsys)
    assert code == 0 and out == ir.read_text(), err
    code, out, err = call(run_cli.main, [ir, "--task", "sst2", "--inputs", placed_dump / "in.npz", "-o",
                                         placed_dump / "o.npz", "--target", "edge_accel"], capsys)
    assert code == 0 and "largest difference from the interpreter on the same compiled module: " in out, err


def test_run_on_a_target_shows_progress_on_a_terminal(capsys, monkeypatch, placed_dump):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = call(run_cli.main, [placed_dump / "p" / "module.ir", "--task", "cola", "--inputs",
                                       placed_dump / "in.npz", "-o", placed_dump / "o2.npz", "--target", "edge_accel"],
                        capsys)
    assert code == 0 and "importing" in err and "/5 " in err
    assert re.search(r"instructions: +\d+%.*\d+/\d+ ", err), err  # the program's instructions as they run
