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
import pytest

from aalbert.ir.fileio import load_module
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.cli import opt as opt_cli
from aalbert.mapper.cli import run as run_cli
from aalbert.mapper.cli import sweep as sweep_cli
from aalbert.passes.base import PassManager, parse_pipeline

from .helpers import LazyImport, assert_clean_error, call, needs, random_feeds

onnx = LazyImport("onnx")
helper = LazyImport("onnx.helper")
make_model = LazyImport("tests.onnx_helpers").function("make_model")

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
    assert_clean_error(compile_cli.main, [path], capsys,
                       "index 9223372036854775807 is out of range for axis 1 of size 4")


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
    code, _, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", "16",
                                           "--target", "edge_accel",
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


@pytest.mark.parametrize("ops, says", [
    ([("Neg", "x")], "defines 'x', which is already a graph input"),
    ([("Neg", "y"), ("Abs", "y")], "defines 'y', which is already another node's result"),
])
def test_an_onnx_value_defined_twice_is_refused(tmp_path, capsys, ops, says):
    nodes = [helper.make_node(op, ["x"], [out]) for op, out in ops]  # (op, its result), each reading x
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


# --- inputs that are not regular files --------------------------------------------------------------------------
def _fifo(path) -> Path:
    os.mkfifo(path)  # opening it for reading the usual way waits for a writer: the test would hang
    return Path(path)


def _bounded(main, argv, capsys, says, seconds: float = 60):
    """assert_clean_error, failing (not hanging) if the tool blocks on what it reads."""
    from .fuzzing import time_limit

    with time_limit(seconds):
        return assert_clean_error(main, argv, capsys, says)


@pytest.mark.parametrize("tool, argv, says", [
    (compile_cli, ["model.onnx"], "model.onnx: is not a regular file (a FIFO); an ONNX model must be a file"),
    (opt_cli, ["model.ir"], "model.ir: is not a regular file (a FIFO); an IR module must be a file"),
    (opt_cli, ["side.ir"], "side.npz: is not a regular file (a FIFO); weights must be a file"),
    (sweep_cli, ["sweep.toml"], "sweep.toml: is not a regular file (a FIFO); a sweep must be a file"),
    (run_cli, ["neg.ir", "--inputs", "in.npz", "-o", "out.npz"], "in.npz: is not a regular file (a FIFO); inputs"),
    (compile_cli, ["neg.ir", "--target", "chip.toml"], "chip.toml: is not a regular file (a FIFO); a target must"),
    (compile_cli, ["neg.ir", "--target", "edge_accel", "--workload", "w.toml"], "w.toml: is not a regular file"),
    (compile_cli, ["neg.ir", "--compress", "policy.toml"], "policy.toml: is not a regular file (a FIFO); a policy"),
    (compile_cli, ["neg.ir", "--target", "edge_accel", "--pattern", "trace.txt"], "trace.txt: is not a file"),
    (compile_cli, ["ext.onnx"], "w.data: is not a regular file (a FIFO); external weight data must be a file"),
])
def test_a_fifo_given_as_an_input_is_refused_without_waiting(tmp_path, monkeypatch, capsys, tool, argv, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "neg.ir").write_text(NEG)
    (tmp_path / "side.ir").write_text(NEG)
    _save_external(tmp_path / "ext.onnx", "w.data", None)
    for name in ("model.onnx", "model.ir", "side.npz", "sweep.toml", "in.npz", "chip.toml", "w.toml", "policy.toml",
                 "trace.txt", "w.data"):
        _fifo(tmp_path / name)
    _bounded(tool.main, argv, capsys, says)


def test_a_fifo_as_a_workloads_exit_samples_is_refused(tmp_path, capsys):
    _fifo(tmp_path / "s.npz")
    (tmp_path / "w.toml").write_text('[workload]\nlatency_target_ms = 100\n\n[exits]\nthreshold = 0.3\n'
                                     'samples = "s.npz"\n')
    _bounded(compile_cli.main, ["--size", "tiny", "--tasks", "1", "--seq-len", "8", "--off-ramps", "--target",
                                "edge_accel", "--workload", tmp_path / "w.toml", "--requests", "4"], capsys,
             "s.npz: is not a regular file (a FIFO); exit samples must be a file")


@pytest.mark.parametrize("tool, argv, says", [
    pytest.param(compile_cli, ["/dev/zero"], "/dev/zero: is not a regular file (a character device); an ONNX model",
                 marks=needs("onnx")),
    (opt_cli, ["/dev/zero"], "/dev/zero: is not a regular file (a character device); an IR module"),
    (compile_cli, ["--size", "tiny", "--tasks", "1", "--target", "/dev/zero"], "a target must be a file"),
    (run_cli, ["neg.ir", "--inputs", "/dev/zero", "-o", "out.npz"], "inputs must be a file"),
])
def test_a_device_given_as_an_input_is_refused_without_reading_it(tmp_path, monkeypatch, capsys, tool, argv, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "neg.ir").write_text(NEG)
    _bounded(tool.main, argv, capsys, says)
    if tool is opt_cli:
        _bounded(sweep_cli.main, ["/dev/zero"], capsys, "/dev/zero: is not a regular file (a character device)")


# --- ONNX external data: declared sizes first ---------------------------------------------------------------------
def _save_external(path, location: str, data_bytes: int | None, cols: int = 4, offset: int | None = None,
                   length: int | None = None):
    """A 4 x `cols` float32 MatMul weight in external data at `location` (a sparse file of `data_bytes`)."""
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4, cols],
                         data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            w.external_data.add(key=key, value=str(value))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, cols])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    Path(path).write_bytes(model.SerializeToString())
    if data_bytes is not None:
        with open(Path(path).parent / location, "wb") as f:
            f.truncate(data_bytes)
    return path


def test_external_data_beyond_the_budget_is_refused_before_it_is_read(tmp_path, capsys):
    """A 100-byte model naming 2 GiB (sparse, no disk used) of external data."""
    path = _save_external(tmp_path / "m.onnx", "m.data", 2 ** 31, cols=2 ** 27)
    assert path.stat().st_size < 200
    assert_clean_error(compile_cli.main, [path, "--max-memory", "1G"], capsys,
                       "m.onnx's external weight data (1 tensor) needs 4 GiB, more than the memory budget of 1 GiB")


@pytest.mark.parametrize("location, size, offset, length, says", [
    ("w\0.data", 64, None, None, "external data location 'w\\x00.data' is not a file name inside the model's folder"),
    ("/etc/passwd", 64, None, None, "external data location '/etc/passwd' is not a file name inside"),
    ("../w.data", 64, None, None, "external data location '../w.data' is not a file name inside"),
    ("w.data", 64, 60, 16, "external data at bytes 60..76 of w.data, which holds 64 bytes"),
    ("w.data", 64, None, 32, "its external data holds 32 bytes, its type [4, 4] of FLOAT needs 64"),
    ("w.data", 64, -8, None, "external data at bytes -8"),
    ("w.data", 64, "x", None, "external data offset or length is not a number"),
    ("w.data", None, None, None, "w.data: no such file"),
])
def test_bad_external_data_references_are_one_line(tmp_path, capsys, location, size, offset, length, says):
    path = _save_external(tmp_path / "m.onnx", location if "\0" not in location and "/" not in location else "x",
                          None, offset=offset, length=length)
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].external_data[0].value = location
    path.write_bytes(model.SerializeToString())
    if size is not None:
        (tmp_path / "w.data").write_bytes(bytes(size))
    assert_clean_error(compile_cli.main, [path], capsys, says)


@needs("onnx")
def test_external_data_is_read_into_arrays_not_handed_to_onnx(tmp_path):
    """onnx's own loader copies external data into the protobuf (which crashed past 2 GiB); aalbert reads each
    plain tensor straight into its array, at its offset."""
    from aalbert.ir.module import Module
    from aalbert.mapper.frontends import DimSpec
    from aalbert.mapper.frontends.onnx_import import import_onnx, load_model

    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    path = _save_external(tmp_path / "m.onnx", "w.data", None, offset=8, length=64)
    (tmp_path / "w.data").write_bytes(b"\xff" * 8 + w.tobytes() + b"\xff" * 8)
    model, arrays = load_model(path)
    assert not model.graph.initializer[0].raw_data and np.array_equal(arrays["w"], w)
    module = Module()
    import_onnx(path, module, "t", DimSpec())
    assert [np.array_equal(x.data, w) or np.array_equal(x.data, w.T) for x in module.weights.values()] == [True]


def test_an_onnx_input_declared_twice_is_one_line(tmp_path, capsys):
    model = make_model([helper.make_node("Neg", ["x"], ["y"])], {"x": X}, ["y"])
    model.graph.input.append(model.graph.input[0])
    onnx.save(model, tmp_path / "m.onnx")
    assert_clean_error(compile_cli.main, [tmp_path / "m.onnx"], capsys, "m.onnx: input 'x' is declared twice")


# --- one budget for everything --------------------------------------------------------------------------------
def _wide(path, batch: int = 3000, width: int = 32768):
    """x [batch, 64] through a [64, width] layer and back: one large intermediate after another."""
    rng = np.random.default_rng(0)
    model = make_model([helper.make_node("MatMul", ["x", "a"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                        helper.make_node("MatMul", ["r", "b"], ["y"])], {"x": np.ones((batch, 64), np.float32)}, ["y"],
                       {"a": rng.standard_normal((64, width)).astype(np.float32),
                        "b": rng.standard_normal((width, 64)).astype(np.float32)})
    onnx.save(model, path)
    np.savez(Path(path).with_suffix(".npz"), x=np.ones((batch, 64), np.float32))
    return path


def _splat_file(path, count: int = 10, n: int = 2 ** 27):
    """`count` splats of `n` f32 (512 MiB each by default) in about a kilobyte of text."""
    lines = ["module {", f'  graph @t(%x: tensor<{n}xf32>) -> ("y": tensor<{n}xf32>) {{']
    prev = "%x"
    for i in range(count):
        lines += [f"    %c{i} = constant {{value = dense<1.5> : tensor<{n}xf32>}} : tensor<{n}xf32>",
                  f"    %a{i} = add({prev}, %c{i}) : tensor<{n}xf32>"]
        prev = f"%a{i}"
    Path(path).write_text("\n".join(lines + [f"    return {prev}", "  }", "}"]) + "\n")
    return path


def _one_line(path, n: int = 2_500_000):
    """A 5 MB one-line IR file: a dense list literal of n elements."""
    Path(path).write_text(f'module {{ graph @t(%x: tensor<{n}xi32>) -> ("y": tensor<{n}xi32>) {{ %0 = constant '
                          f'{{value = dense<[{",".join(["1"] * n)}]> : tensor<{n}xi32>}} : tensor<{n}xi32> '
                          f'%1 = add(%x, %0) : tensor<{n}xi32> return %1 }} }}\n')
    return path


def _peak(tool: str, argv: list, budget: int, tmp_path) -> tuple[int, int, str]:
    """(exit status, peak resident bytes, stderr) of a tool run in a process of its own, its address space
    capped a little above the budget so that a runaway fails instead of taking the machine. The peak is the
    process's own high-water mark (VmHWM), read as it ends: its rusage would count the forked test process."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (budget + 3 * 2 ** 30, resource.RLIM_INFINITY))

    run_and_report = (f"import sys; from aalbert.mapper.cli.{tool} import main; code = main(sys.argv[1:]); "
                      "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", run_and_report, *map(str, argv)], cwd=tmp_path, capture_output=True,
                          text=True, preexec_fn=cap)
    last = done.stdout.strip().splitlines()[-1:] or ["0"]
    return done.returncode, int(last[0]) * 1024 if last[0].isdigit() else 0, done.stderr


G = 2 ** 30


@pytest.mark.parametrize("case, tool, argv, budget, code, says", [
    ("external", "compile", ["m.onnx", "--max-memory", "1G"], G, 2, "external weight data (1 tensor) needs 4 GiB"),
    ("splats", "opt", ["splats.ir", "--max-memory", "1G"], G, 2, "with the 1 before it, needs 1 GiB"),
    ("one-line", "opt", ["line.ir", "--max-memory", "100M"], 100 * 2 ** 20, 2, "line.ir (5,000,"),
    ("batch", "run", ["wide.onnx", "--inputs", "wide.npz", "-o", "out.npz", "--max-memory", "1G"], G, 2,
     "running task 'wide' (its values at the busiest point of its schedule) needs"),
    ("burst", "compile", ["--size", "tiny", "--tasks", "1", "--seq-len", "8", "--target", "edge_accel", "--pattern",
                          "bursts", "--burst", "100000000", "--max-memory", "1G"], G, 0, ""),
    ("tasks", "compile", ["--tasks", "100000", "--max-memory", "1G"], G, 2, "(base, 100,000 tasks, batch 1, "),
    ("gelu", "compile", ["gelu.onnx", "--batch", "1000000000", "--max-memory", "1G"], G, 0, ""),
])
def test_hostile_cases_stay_within_the_budget(tmp_path, case, tool, argv, budget, code, says):
    {"external": lambda: _save_external(tmp_path / "m.onnx", "m.data", 2 ** 31, cols=2 ** 27),
     "splats": lambda: _splat_file(tmp_path / "splats.ir"), "one-line": lambda: _one_line(tmp_path / "line.ir"),
     "batch": lambda: _wide(tmp_path / "wide.onnx"), "gelu": lambda: _gelu(tmp_path / "gelu.onnx")}.get(
        case, lambda: None)()
    status, peak, err = _peak(tool, argv, budget, tmp_path)
    assert status == code and "Traceback" not in err and says in err and len(err.strip().splitlines()) <= 1, err
    assert peak < budget, (peak, budget)


@pytest.mark.parametrize("argv, says", [
    (["--tasks", "100000"], "the example adapter-albert (base, 100,000 tasks, batch 1, sequence 128) needs 38"),
    (["--layers", "10000000"], "(base, 8 tasks, 10,000,000 layers, batch 1, sequence 128) needs 6.71 TiB"),
    (["--bottleneck", "1000000000"], "(base, 8 tasks, batch 1, sequence 128) needs 358 TiB"),
    (["--size", "tiny", "--tasks", "1", "--batch", "20000", "--sparsity", "0.5", "--fidelity"],
     "comparing the outputs of 8 samples per task needs 20.3 GiB"),
    (["--size", "tiny", "--tasks", "1", "--sparsity", "0.5", "--fidelity", "--samples", "1000000000"],
     "comparing the outputs of 1,000,000,000 samples per task needs 2.8 TiB"),
])
def test_size_flags_are_checked_by_what_they_will_allocate(capsys, argv, says):
    assert_clean_error(compile_cli.main, argv + ["--max-memory", "1G"], capsys, says)


def _gelu(path):
    """A tanh GELU spelled out in ONNX ops, on x [batch, 4]: canonicalize recognizes it by running the nodes on
    a probe."""
    k = {name: np.array(v, np.float32) for name, v in (("three", 3.0), ("c", 0.044715), ("s", 0.7978845608028654),
                                                         ("one", 1.0), ("half", 0.5))}
    nodes = [helper.make_node(op, ins, [out]) for op, ins, out in (
        ("Pow", ["x", "three"], "x3"), ("Mul", ["x3", "c"], "a"), ("Add", ["x", "a"], "b"), ("Mul", ["b", "s"], "t0"),
        ("Tanh", ["t0"], "t"), ("Add", ["t", "one"], "u"), ("Mul", ["x", "u"], "v"), ("Mul", ["v", "half"], "y"))]
    onnx.save(make_model(nodes, {"x": X}, ["y"], k, dynamic={"x": ["batch", 4]}), path)
    return path


def test_the_gelu_probe_is_as_small_as_the_constants_allow():
    """Only axes that some constant spans are probed at their size (a batch of 10^9 made a 16 GB probe)."""
    from aalbert.passes.fusion import _probe_shape

    assert _probe_shape((1000000000, 128, 64), [(), (64,), (1, 1)]) == (1, 1, 64)
    assert _probe_shape((8, 128, 64), [(128, 1), ()]) == (1, 128, 1)
    assert _probe_shape((8, 4), []) == (1, 1)

def test_a_study_of_a_hundred_million_task_counts_is_refused(tmp_path, capsys):
    from aalbert.mapper.cli import study as study_cli

    assert_clean_error(study_cli.main, ["--tasks", "1-100000000", "--out", tmp_path / "s", "--max-memory", "1G"],
                       capsys, "--tasks 1-100000000: a study of 100,000,000 task counts needs 381 GiB",
                       must_not_exist=[tmp_path / "s"])


@pytest.mark.parametrize("text, says", [
    ("[parameters]\n" + "".join(f'"{k}" = [{", ".join(str(1000 + i) for i in range(30))}]\n' for k in (
        "memory.rram.capacity_bytes", "memory.sram.capacity_bytes", "compute.array", "model.bottleneck", "model.tasks",
        "model.seq_len")) + '"workload.inferences_per_wakeup" = [' + ", ".join(f"{i}.0" for i in range(1, 11)) + "]\n",
     "a sweep of 7,290,000,000 points needs 27.2 TiB"),
    ('[sweep]\nsize = "tiny"\ntasks = 100000\n[parameters]\n"model.bottleneck" = [8]\n',
     "s.toml: each point of the sweep needs 28.4 GiB"),
    ('[sweep]\nsize = "tiny"\n[parameters]\n"model.tasks" = [1, 100000]\n', "s.toml: each point of the sweep needs"),
    ('[sweep]\nsize = "tiny"\n[parameters]\n"workload.switch_rate" = 0.5\n',
     "[parameters] 'workload.switch_rate': expected a non-empty list of values"),
])
def test_sweeps_are_checked_before_their_points_are_made(tmp_path, capsys, text, says):
    (tmp_path / "s.toml").write_text(text)
    assert_clean_error(sweep_cli.main, [tmp_path / "s.toml", "--out", tmp_path / "out", "--max-memory", "1G"], capsys,
                       says, must_not_exist=[tmp_path / "out"])


def test_the_workers_share_the_budget(monkeypatch):
    """The sweep's and the study's workers: as many as asked, as there are jobs and as the budget holds."""
    from aalbert import limits
    from aalbert.mapper.study.workers import Workers

    monkeypatch.setattr(limits, "in_use", lambda: 0)
    monkeypatch.setattr("aalbert.mapper.study.workers.room", limits.room)
    each = 300 * 2 ** 20
    with limits.budget(G):
        assert Workers(8, each).size(100) == 3 and Workers(2, each).size(100) == 2
        assert Workers(8, each).size(1) == 1
    with limits.budget(100 * 2 ** 20):
        assert Workers(8, each).size(100) == 1


def test_a_workload_mix_near_the_largest_float_is_a_uniform_mix(tmp_path, capsys):
    (tmp_path / "w.toml").write_text("[workload]\nmix = {cola = 1e308, sst2 = 1e308}\n")
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "8", "--target",
                                             "edge_accel", "--workload", tmp_path / "w.toml", "--switch-rate", "0",
                                             "--pattern", "random", "--requests", "10"], capsys)
    assert code == 0, err


DEEP = ["x = " + "[" * 5000 + "]" * 5000 + "\n", "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
        ".".join(["a"] * 3000) + " = 1\n"]


@pytest.mark.parametrize("deep", DEEP)
@pytest.mark.parametrize("flag", ["--target", "--workload", "--compress", "sweep"])
def test_deeply_nested_toml_is_one_line_in_every_reader(tmp_path, capsys, deep, flag):
    path = tmp_path / "deep.toml"
    path.write_text(deep)
    if flag == "sweep":
        assert_clean_error(sweep_cli.main, [path], capsys, "deep.toml: not valid TOML (nested deeper than 32 levels)")
        return
    argv = [tmp_path / "neg.ir", flag, path] + (["--target", "edge_accel"] if flag == "--workload" else [])
    (tmp_path / "neg.ir").write_text(NEG)
    assert_clean_error(compile_cli.main, argv, capsys, "nested deeper than 32 levels")
