"""Hostile inputs that once crashed or ran away: each is one line and exit 2, or a correct result."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
from onnx import helper

from aalbert.ir.parser import parse_module
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.cli import run as run_cli
from aalbert.passes.base import PassManager, parse_pipeline

from .onnx_helpers import make_model
from .helpers import assert_clean_error, call

X = np.ones((1, 4), dtype=np.float32)


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
                       "needs 16 TiB, more than the memory budget", must_not_exist=[tmp_path / "out.npz"])


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
