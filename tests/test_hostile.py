"""Hostile inputs that once crashed or ran away: each is one line and exit 2, or a correct result."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from aalbert.ir.fileio import load_module
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.cli import opt as opt_cli
from aalbert.mapper.cli import run as run_cli
from aalbert.passes.base import PassManager, parse_pipeline

from .onnx_helpers import make_model
from .helpers import assert_clean_error, call, random_feeds

X = np.ones((1, 4), dtype=np.float32)


def load_target_path(name: str) -> str:
    return str(resources.files("aalbert.targets").joinpath("builtin", f"{name}.toml"))


def _save(tmp_path, name, nodes, initializers):
    path = tmp_path / f"{name}.onnx"
    onnx.save(make_model(nodes, {"x": X}, ["y"], initializers), path)
    return path


def test_a_zero_size_weight_compiles_places_and_runs(tmp_path, capsys):
    path = _save(tmp_path, "zero", [helper.make_node("MatMul", ["x", "w"], ["y"])],
                 {"w": np.zeros((4, 0), dtype=np.float32)})
    code, out, err = call(compile_cli.main, [path, "--target", "edge_accel"], capsys)
    assert code == 0, err
    np.savez(tmp_path / "in.npz", x=X)
    for extra in ([], ["--target", "edge_accel"]):
        code, _, err = call(run_cli.main, [path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz"] + extra,
                            capsys)
        assert code == 0, err
        assert np.load(tmp_path / "out.npz")["y"].shape == (1, 0)


def test_a_constant_gather_index_out_of_range_is_one_line(tmp_path, capsys):
    path = _save(tmp_path, "gather", [helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
                 {"i": np.array([2 ** 63 - 1], dtype=np.int64)})
    assert_clean_error(compile_cli.main, [path], capsys, "index 9223372036854775807 is out of range for axis 1 of size 4")


def test_a_tile_of_two_to_the_forty_is_refused_where_it_would_be_made(tmp_path, capsys):
    path = _save(tmp_path, "tile", [helper.make_node("Tile", ["x", "r"], ["y"])],
                 {"r": np.array([1, 2 ** 40], dtype=np.int64)})
    assert_clean_error(compile_cli.main, [path, "--target", "edge_accel"], capsys,
                       "the activation arena does not fit edge_accel: task 'tile' needs 8,796,093,022,272 bytes")
    np.savez(tmp_path / "in.npz", x=X)
    assert_clean_error(run_cli.main, [path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "out.npz"], capsys,
                       "running task 'tile' (its values at the busiest point of its schedule) needs 48 TiB, more than "
                       "the memory budget", must_not_exist=[tmp_path / "out.npz"])


def test_canonicalizing_a_large_transpose_allocates_no_index_map():
    """[1, 8192, 16384]: an explicit map of its positions would be 1 GiB of int64."""
    module = parse_module('module {\n graph @t(%x: tensor<1x8192x16384xf32>) -> ("y": tensor<1x16384x8192xf32>) {\n'
                          '  %0 = transpose(%x) {perm = [0, 2, 1]} : tensor<1x16384x8192xf32>\n  return %0\n }\n}\n')
    tracemalloc.start()
    try:
        PassManager(parse_pipeline("canonicalize")).run(module)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2 ** 20, peak
    assert [n.op for n in module.graphs["t"].nodes] == ["reshape", "transpose", "reshape"]


# --- inputs are never overwritten ---------------------------------------------------------------------------
@pytest.fixture
def dumped(tmp_path, capsys):
    """A tiny compiled module (m/module.ir + m/module.npz), a target file, inputs and a trace."""
    code, _, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--dump-ir",
                                           tmp_path / "m"], capsys)
    assert code == 0, err
    shutil.copy(load_target_path("edge_accel"), tmp_path / "t.toml")
    (tmp_path / "w.toml").write_text("[workload]\nswitch_rate = 0.5\n")
    (tmp_path / "trace.txt").write_text("cola\nstsb\n")
    module = load_module(tmp_path / "m" / "module.ir")
    np.savez(tmp_path / "in.npz", **random_feeds(module.graphs["cola"]))
    return tmp_path


def _hashes(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("tool, argv, says", [
    (opt_cli, ["m/module.ir", "-p", "quantize{format=int8}", "-o", "m/module"], "m/module.npz: refusing to overwrite"),
    (run_cli, ["m/module.ir", "--task", "cola", "--inputs", "in.npz", "-o", "m/module.npz"], "m/module.npz: refusing"),
    (compile_cli, ["m/module.ir", "--quantize", "int8", "--dump-ir", "m"], "m/module.ir: refusing to overwrite"),
    (compile_cli, ["m/module.ir", "--target", "t.toml", "--sim-json", "t.toml"], "t.toml: refusing to overwrite"),
    (compile_cli, ["m/module.ir", "--target", "edge_accel", "--workload", "w.toml", "--report-json", "w.toml"],
     "w.toml: refusing to overwrite"),
    (compile_cli, ["m/module.ir", "--target", "edge_accel", "--pattern", "trace.txt", "--trace", "trace.txt"],
     "trace.txt: refusing to overwrite"),
    (compile_cli, ["m/module.ir", "--target", "edge_accel", "--sim-json", "m/module.npz"],
     "m/module.npz: refusing to overwrite"),
])
def test_no_output_overwrites_an_input(dumped, monkeypatch, capsys, tool, argv, says):
    monkeypatch.chdir(dumped)
    before = _hashes(dumped)
    assert_clean_error(tool.main, argv, capsys, says)
    assert _hashes(dumped) == before


def test_a_link_to_an_input_is_refused_too(dumped, monkeypatch, capsys):
    monkeypatch.chdir(dumped)
    (dumped / "link.json").symlink_to(dumped / "t.toml")
    before = _hashes(dumped)
    assert_clean_error(compile_cli.main, ["m/module.ir", "--target", "t.toml", "--sim-json", "link.json"], capsys,
                       "link.json: refusing to overwrite")
    assert _hashes(dumped) == before


# --- no debris ------------------------------------------------------------------------------------------------
def test_a_failing_compile_leaves_no_dump_and_no_earlier_output(tmp_path, capsys):
    dump = tmp_path / "d"
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", "16", "--dump-ir", dump,
                                          "--fidelity"], capsys, "--fidelity needs compression",
                       must_not_exist=[dump])
    assert list(tmp_path.iterdir()) == []


def test_a_write_that_fails_part_way_leaves_the_previous_state(tmp_path, monkeypatch, capsys):
    """A full disk on the third file: nothing new appears, and an older output stays as it was."""
    (tmp_path / "sim.json").write_text("old")
    real_replace = os.replace
    calls = []

    def full_disk(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    code, _, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", "16", "--target", "edge_accel",
                                           "--sim-json", tmp_path / "sim.json", "--report-json", tmp_path / "r.json",
                                           "--trace", tmp_path / "trace.json", "--dump-ir", tmp_path / "d"], capsys)
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    assert (tmp_path / "sim.json").read_text() == "old"


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", "16", "--dump-ir",
                                          tmp_path / "file" / "d"], capsys, "cannot create the folder")


def test_sigterm_during_the_study_leaves_nothing_behind(tmp_path):
    out = tmp_path / "study"
    proc = subprocess.Popen([sys.executable, "-m", "aalbert.mapper.cli.study", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # the study takes about a minute: it is running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "aalbert-study: terminated"
    assert not out.exists()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


# --- numbers that would make a figure infinite or silently wrong -----------------------------------------------
@pytest.mark.parametrize("old, new, says", [
    ("frequency_mhz = 500", "frequency_mhz = inf", "key 'frequency_mhz' must be finite"),
    ("frequency_mhz = 500", "frequency_mhz = 1e-308", "outside the range aalbert models"),
    ("energy_pj_per_mac = 0.25", "energy_pj_per_mac = 1e308", "outside the range aalbert models"),
    ("leakage_mw = 5.0", "leakage_mw = inf", "key 'leakage_mw' must be finite"),
    ("dma_bytes_per_cycle = 64", "dma_bytes_per_cycle = nan", "must be positive"),
])
def test_target_numbers_must_be_finite_and_in_range(tmp_path, capsys, old, new, says):
    text = Path(load_target_path("edge_accel")).read_text()
    assert old in text
    (tmp_path / "t.toml").write_text(text.replace(old, new, 1))
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--target", tmp_path / "t.toml"], capsys,
                       says)


@pytest.mark.parametrize("share", ["nan", "inf", "-1"])
def test_a_workload_share_must_be_a_finite_number(tmp_path, capsys, share):
    (tmp_path / "w.toml").write_text(f"[workload]\nmix = {{cola = {share}}}\n")
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--target", "edge_accel", "--workload",
                                          tmp_path / "w.toml"], capsys, "mix share of 'cola' must be a non-negative")


@pytest.mark.parametrize("trace, says", [("cola nan\n", "arrival time 'nan' is not a finite number"),
                                         ("cola inf\n", "arrival time 'inf' is not a finite number")])
def test_trace_arrivals_must_be_finite(tmp_path, capsys, trace, says):
    (tmp_path / "t.txt").write_text(trace)
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--target", "edge_accel", "--pattern",
                                          tmp_path / "t.txt"], capsys, says)


def test_a_folder_given_as_a_trace_is_one_line(tmp_path, capsys):
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--target", "edge_accel", "--pattern",
                                          tmp_path], capsys, "is not a file")


def test_a_huge_request_stream_is_refused_before_it_is_made(capsys):
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--target", "edge_accel", "--requests",
                                          "1000000000"], capsys, "a stream of 1,000,000,000 requests needs")


def test_a_pruning_block_larger_than_the_matrix_covers_it(capsys):
    code, _, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--sparsity", "0.5", "--block",
                                           "1000000x1000000"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("nodes, says", [
    ([helper.make_node("Neg", ["x"], ["x"])], "defines 'x', which is already a graph input"),
    ([helper.make_node("Neg", ["x"], ["y"]), helper.make_node("Abs", ["x"], ["y"])],
     "defines 'y', which is already another node's result"),
])
def test_an_onnx_value_defined_twice_is_refused(tmp_path, capsys, nodes, says):
    path = tmp_path / "dup.onnx"
    onnx.save(make_model(nodes, {"x": X}, ["y" if nodes[-1].output[0] == "y" else "x"]), path)
    assert_clean_error(compile_cli.main, [path], capsys, says)


@pytest.mark.parametrize("dim", [0, -3])
def test_a_non_positive_static_dimension_is_refused(tmp_path, capsys, dim):
    model = make_model([helper.make_node("Neg", ["x"], ["y"])], {"x": X}, ["y"])
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = dim
    onnx.save(model, tmp_path / "d.onnx")
    assert_clean_error(compile_cli.main, [tmp_path / "d.onnx"], capsys,
                       f"input 'x' dimension 1 is declared {dim}; a static dimension must be positive")


# --- outputs that are not plain files ---------------------------------------------------------------------------
NEG = 'module {\n  graph @t(%x: tensor<1x4xf32>) -> ("y": tensor<1x4xf32>) {\n    %0 = neg(%x) : tensor<1x4xf32>\n' \
      '    return %0\n  }\n}\n'
PRINTED = print_module(parse_module(NEG))  # what aalbert-opt writes for it


def _device(path, minor: int) -> None:
    """A character device like /dev/null (minor 3) or /dev/full (minor 7), made where the test may break it."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("making a device node needs privileges")


@pytest.fixture
def neg_ir(tmp_path):
    path = tmp_path / "neg.ir"
    path.write_text(NEG)
    return path


def test_a_device_output_is_written_to_not_replaced(tmp_path, neg_ir, capsys):
    null = tmp_path / "null"
    _device(null, 3)
    code, _, err = call(opt_cli.main, [neg_ir, "-o", null], capsys)
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_a_full_device_is_one_line_and_exit_2(tmp_path, neg_ir, capsys):
    full = tmp_path / "full"
    _device(full, 7)
    assert_clean_error(opt_cli.main, [neg_ir, "-o", full], capsys, f"{full}: cannot write (No space left on device)")
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_a_fifo_output_is_written_to_its_reader(tmp_path, neg_ir, capsys):
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    code, _, err = call(opt_cli.main, [neg_ir, "-o", fifo], capsys)
    if code != 0:  # the command failed before opening the FIFO: release the reader
        with open(fifo, "w"):
            pass
    reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got == [PRINTED]


def test_a_linked_output_replaces_the_file_it_leads_to_and_keeps_the_link(tmp_path, neg_ir, capsys):
    (tmp_path / "real.ir").write_text("old")
    (tmp_path / "link.ir").symlink_to("real.ir")
    code, _, err = call(opt_cli.main, [neg_ir, "-o", tmp_path / "link.ir"], capsys)
    assert code == 0, err
    assert (tmp_path / "link.ir").is_symlink() and os.readlink(tmp_path / "link.ir") == "real.ir"
    assert (tmp_path / "real.ir").read_text() == PRINTED


def test_an_open_descriptor_is_written_to_whatever_it_leads_to(tmp_path, neg_ir, capsys):
    """/dev/stdout is a link to /proc/self/fd/1: here links to a pipe's and a file's descriptors."""
    r, w = os.pipe()
    (tmp_path / "to-pipe").symlink_to(f"/proc/self/fd/{w}")
    with open(tmp_path / "printed.txt", "w") as f:
        f.write("printed before\n")
        f.flush()
        (tmp_path / "to-file").symlink_to(f"/proc/self/fd/{f.fileno()}")
        try:
            for link in ("to-pipe", "to-file"):
                code, _, err = call(opt_cli.main, [neg_ir, "-o", tmp_path / link], capsys)
                assert code == 0, err
                assert (tmp_path / link).is_symlink()
        finally:
            os.close(w)
    with os.fdopen(r) as pipe:
        assert pipe.read() == PRINTED
    assert (tmp_path / "printed.txt").read_text() == "printed before\n" + PRINTED

