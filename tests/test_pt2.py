""".pt2 files (torch.export.save) on the command line: compile, run, mixed with ONNX, and bad files."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aalbert.examples import export as export_cli  # noqa: E402
from aalbert.examples.export import export_pt2  # noqa: E402
from aalbert.ir.fileio import write_npz  # noqa: E402
from aalbert.mapper.cli import compile as compile_cli  # noqa: E402
from aalbert.mapper.cli import run as run_cli  # noqa: E402

from .conftest import SEQ  # noqa: E402
from .test_cli import assert_clean_error, call  # noqa: E402


@pytest.fixture(scope="session")
def tiny_pt2(tmp_path_factory, tiny_models):
    """{task: path}: the tiny adapter-ALBERT's tasks saved as .pt2 files, once per session."""
    out = tmp_path_factory.mktemp("pt2")
    return {task: export_pt2(m, out / f"{task}.pt2", seq_len=SEQ)
            for task, m in tiny_models["adapter-albert"].items()}


def test_compile_pt2_files_like_their_onnx_exports(capsys, tiny_pt2, tiny_exports):
    onnx = tiny_exports["adapter-albert", "torchscript"]
    code, from_pt2, err = call(compile_cli.main, [*tiny_pt2.values(), "--seq-len", SEQ], capsys)
    assert code == 0, err
    code, from_onnx, err = call(compile_cli.main, [*onnx.values(), "--seq-len", SEQ], capsys)
    assert code == 0, err
    assert from_pt2 == from_onnx
    assert "shared by all 2 tasks" in from_pt2


def test_task_options_mix_pt2_and_onnx(capsys, tiny_pt2, tiny_exports):
    onnx = tiny_exports["adapter-albert", "dynamo"]
    code, out, err = call(compile_cli.main, ["--task", f"a={tiny_pt2['cola']}", "--task", f"b={onnx['stsb']}",
                                             "--seq-len", SEQ, "--batch", 2], capsys)
    assert code == 0, err
    assert "2 tasks from 2 files, batch 2, sequence 16" in out
    assert "\na " in out and "\nb " in out and "shared by all 2 tasks" in out


def test_run_pt2_keys_inputs_and_outputs_by_the_programs_names(tmp_path, capsys, tiny_pt2, tiny_models, tiny_inputs):
    feeds = {k: np.repeat(v[:, :9], 3, axis=0) for k, v in tiny_inputs.items()}  # other batch and sequence
    write_npz(tmp_path / "in.npz", feeds)
    code, out, err = call(run_cli.main, [tiny_pt2["stsb"], "--inputs", tmp_path / "in.npz", "-o",
                                         tmp_path / "out.npz"], capsys)
    assert code == 0, err
    got = dict(np.load(tmp_path / "out.npz"))
    assert list(got) == ["logits"]
    with torch.no_grad():
        want = tiny_models["adapter-albert"]["stsb"](**{k: torch.from_numpy(v) for k, v in feeds.items()})
    np.testing.assert_allclose(got["logits"], want.numpy(), atol=1e-5)


def test_export_script_writes_pt2_files_the_compiler_takes(tmp_path, capsys):
    code, out, err = call(export_cli.main, ["--format", "pt2", "--tasks", 1, "--out", tmp_path / "m", "--quiet"],
                          capsys)
    assert code == 0, err
    path = tmp_path / "m" / "cola.pt2"
    assert out == f"cola: {path}\n" and sorted((tmp_path / "m").iterdir()) == [path]
    code, out, err = call(compile_cli.main, [path, "--seq-len", SEQ], capsys)
    assert code == 0, err
    assert "1 task from 1 file, batch 1, sequence 16" in out


def _rewrite(src, dst, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, change(info.filename, zin.read(info.filename)))


@pytest.mark.parametrize("kind, match", [
    ("truncated", "not a readable torch.export program (BadZipFile"),
    ("version", "does not match our current archive version"),
    ("state_dict", "bad.pt2: is a torch.save file, not a torch.export program"),
    ("saved_module", "bad.pt2: is a torch.save file, not a torch.export program"),
    ("not_a_program", "bad.pt2: holds a dict, not a torch.export program"),
    ("missing", "no such file"),
    ("pickled", "holds a constant that is a pickled Python object"),
    ("outside_range", "dimension 1 is 1, but the program accepts 2"),
])
def test_bad_pt2_files_are_one_line_exit_2(tmp_path, capsys, monkeypatch, tiny_pt2, kind, match):
    path = tmp_path / "bad.pt2"
    argv = [path]
    if kind == "truncated":
        path.write_bytes(tiny_pt2["cola"].read_bytes()[:50_000])
    elif kind == "version":
        _rewrite(tiny_pt2["cola"], path, lambda name, data: b"7" if name.endswith("archive_version") else data)
    elif kind == "pickled":  # a constant torch.export.load would unpickle: refused before torch reads anything
        from torch.export.pt2_archive.constants import OPAQUE_OBJ_FILENAME_PREFIX

        table = json.dumps({"config": {"c": {"path_name": f"{OPAQUE_OBJ_FILENAME_PREFIX}0", "is_param": False,
                                             "use_pickle": True, "tensor_meta": None}}}).encode()
        _rewrite(tiny_pt2["cola"], path, lambda name, data: table if name.endswith("constants_config.json") else data)
    elif kind == "state_dict":  # a torch file, but not an ExportedProgram
        torch.save({"weight": torch.ones(3)}, path)
    elif kind == "saved_module":
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "not_a_program":  # torch.export.load returns a program or raises: a stand-in reaches the check
        path.write_bytes(tiny_pt2["cola"].read_bytes())
        monkeypatch.setattr(torch.export, "load", lambda *args, **kwargs: {"weight": torch.ones(3)})
    elif kind == "outside_range":  # the program was exported for sequences of 2 or more
        path = tiny_pt2["cola"]
        argv = [path, "--seq-len", 1]
    report = tmp_path / "report.json"
    assert_clean_error(compile_cli.main, argv + ["--target", "edge_accel", "--report-json", report], capsys, match,
                       must_not_exist=[report])
    if kind != "outside_range":
        write_npz(tmp_path / "in.npz", {"input_ids": np.zeros((1, 4), np.int64)})
        assert_clean_error(run_cli.main, [path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "o.npz"], capsys,
                           match, must_not_exist=[tmp_path / "o.npz"])


@pytest.fixture(scope="session")
def static_pt2(tmp_path_factory, tiny_models):
    """The tiny cola model exported with static shapes: batch 2, sequence SEQ."""
    from aalbert.examples.export import INPUT_NAMES, NamedOutput
    from aalbert.examples.zoo import example_inputs

    model = tiny_models["adapter-albert"]["cola"]
    inputs = example_inputs(model.config, 2, SEQ)
    ep = torch.export.export(NamedOutput(model).eval(), tuple(inputs[n] for n in INPUT_NAMES), strict=False)
    path = tmp_path_factory.mktemp("static") / "static.pt2"
    torch.export.save(ep, str(path))
    return path


def test_a_static_program_compiles_at_its_own_shapes(capsys, static_pt2):
    code, out, err = call(compile_cli.main, [static_pt2, "--seq-len", SEQ], capsys)  # its own sequence: honoured
    assert code == 0, err
    assert out.startswith("aalbert-compile: 1 task from 1 file, batch 2, sequence 16\n")


@pytest.mark.parametrize("extra, match", [
    (["--seq-len", 8], "static.pt2: input 'input_ids' has the static shape [2, 16], so --seq-len 8 cannot apply (its "
                       "dimension 1 is 16); leave --seq-len out, or export the model with that dimension dynamic"),
    (["--batch", 1], "static.pt2: input 'input_ids' has the static shape [2, 16], so --batch 1 cannot apply (its "
                     "dimension 0 is 2)"),
    (["--dim", "seq=8"], "--dim seq=8: no model input has a dynamic dimension named 'seq' (the dynamic dimensions: "
                         "none)"),
])
def test_a_static_program_refuses_other_shapes(capsys, static_pt2, extra, match):
    assert_clean_error(compile_cli.main, [static_pt2, *extra], capsys, match)


def test_a_program_returning_a_model_output_says_to_return_a_tuple_or_dict(tmp_path, capsys):
    from transformers.modeling_outputs import BaseModelOutput

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            return BaseModelOutput(last_hidden_state=self.proj(x))

    path = tmp_path / "hf.pt2"
    torch.export.save(torch.export.export(Encoder(), (torch.ones(1, 4),), strict=False), str(path))
    # in a process that has not imported transformers (which registers its outputs with torch), as a user's
    r = subprocess.run([str(Path(sys.executable).parent / "aalbert-compile"), str(path)], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert "the program returns a transformers.modeling_outputs.BaseModelOutput, which torch.export.load cannot " \
           "rebuild: export a model that returns a tuple or a dict of tensors" in r.stderr
