"""Same inputs, same bytes: across processes and hash seeds; outputs written whole or not at all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aalbert.ir import fileio
from aalbert.mapper.cli import compile as compile_cli

from .helpers import assert_clean_error, call

COMPILE = ["--size", "tiny", "--tasks", "3", "--seq-len", "16", "--compress", "edgebert", "--target", "edge_accel",
           "--requests", "12", "--pattern", "random"]
OUTPUTS = {"--emit": "prog.s", "--trace": "trace.json", "--sim-json": "sim.json", "--report-json": "report.json",
           "--memory-map": "map.svg", "--roofline": "roofline.png"}


def compile_in_a_process(out_dir, hash_seed: str, extra=()) -> str:
    out_dir.mkdir()
    argv = list(COMPILE) + list(extra) + ["--dump-ir", str(out_dir / "ir"), "-o", str(out_dir / "prog.s")]
    for flag, name in OUTPUTS.items():
        argv += [flag, "asm"] if flag == "--emit" else [flag, str(out_dir / name)]
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    done = subprocess.run([sys.executable, "-m", "aalbert.mapper.cli.compile"] + argv, capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("early_exit", [False, True])
def test_outputs_are_byte_identical_across_processes_and_hash_seeds(tmp_path, early_exit):
    a, b = tmp_path / "a", tmp_path / "b"
    extra = []
    if early_exit:  # off-ramps, every policy's stream and the operating points
        (tmp_path / "w.toml").write_text("[workload]\nlatency_target_ms = 1\n[exits]\nhistogram = [3, 2, 2, 1]\n")
        extra = ["--off-ramps", "--layers", "4", "--workload", str(tmp_path / "w.toml")]
    out_a = compile_in_a_process(a, "1", extra)
    out_b = compile_in_a_process(b, "4242", extra)
    assert ("predict, then scale" in out_a) == early_exit
    assert out_a == out_b
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) >= len(OUTPUTS) + 4  # the outputs, plus the IR after each pass and module.ir/.npz
    assert sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) == files
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with fileio.atomic_writer(target) as f:
            f.write(b"half of a new report")
            raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failing_compile_writes_nothing(tmp_path, capsys):
    """Every output waits for the whole job: an error late in the flow leaves no output behind."""
    outputs = {flag: tmp_path / name for flag, name in OUTPUTS.items() if flag != "--emit"}
    argv = ["--size", "tiny", "--tasks", "1", "--seq-len", "16", "--target", "tpu_like", "--quantize", "int4"]
    for flag, path in outputs.items():
        argv += [flag, path]
    assert_clean_error(compile_cli.main, argv, capsys, "tpu_like does not run int4",
                       must_not_exist=list(outputs.values()))


def test_no_tool_writes_over_its_input(tmp_path, capsys, tiny_exports):
    model = tiny_exports["adapter-albert", "torchscript"]["cola"]
    before = model.read_bytes()
    for flag in ("--report-json", "--trace", "--sim-json"):
        assert_clean_error(compile_cli.main, [model, "--seq-len", "16", "--target", "edge_accel", flag, model],
                           capsys, "refusing to overwrite a file this command reads")
    code, _, err = call(compile_cli.main, [model, "--seq-len", "16", "--target", "edge_accel", "--emit", "asm",
                                           "-o", model], capsys)
    assert code == 2 and "refusing to overwrite a file this command reads" in err
    assert model.read_bytes() == before
