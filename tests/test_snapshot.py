"""Snapshots (a module as flat JSON plus an .npz) and the built-in example's cache built on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aalbert.errors import AalbertError
from aalbert.ir.printer import print_module
from aalbert.ir.snapshot import load_snapshot, save_snapshot
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, example_cache, load_example
from aalbert.passes.base import PassManager
from aalbert.passes.pipelines import Placement, compile_passes

from .helpers import needs

TINY = ExampleSpec("adapter-albert", 2, "tiny", layers=2)


@pytest.fixture(scope="module")
def placed(tmp_path_factory):
    """The tiny example compressed and placed: every kind of fact, mappings, offsets and dense constants."""
    module = load_example(TINY, DimSpec(1, 8))
    return PassManager(compile_passes(module, compression="edgebert", placement=Placement("edge_accel"))).run(module)


def test_a_snapshot_gives_back_the_module_it_was_made_from(tmp_path, placed):
    save_snapshot(placed, tmp_path / "m.json")
    again = load_snapshot(tmp_path / "m.json")
    assert print_module(again) == print_module(placed)
    for w in placed.weights.values():
        assert np.array_equal(again.weights[w.name].data, w.data) and again.weights[w.name].hash == w.hash
    for task, graph in placed.graphs.items():
        assert [(n.mapping, [v.offset for v in n.outputs]) for n in again.graphs[task].nodes] == \
               [(n.mapping, [v.offset for v in n.outputs]) for n in graph.nodes]
        assert again.graphs[task]._counter == graph._counter  # fresh names continue as they would have


@pytest.mark.parametrize("damage, match", [
    ("version", "a snapshot of format 99, not 1"),
    ("weight", "does not match its hash"),
    ("json", "not a readable snapshot"),
])
def test_a_damaged_snapshot_is_refused_in_one_line(tmp_path, placed, damage, match):
    path = tmp_path / "m.json"
    save_snapshot(placed, path)
    if damage == "version":
        doc = json.loads(path.read_text())
        doc["version"] = 99
        path.write_text(json.dumps(doc))
    elif damage == "weight":
        doc = json.loads(path.read_text())
        doc["weights"][0]["hash"] = "0" * 16
        path.write_text(json.dumps(doc))
    else:
        path.write_text(path.read_text()[:-40])
    with pytest.raises(AalbertError, match=match):
        load_snapshot(path)


@needs("torch")
def test_the_example_is_built_once_then_read_from_the_cache_without_torch(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    script = ("import sys\n"
              "if sys.argv[1] == 'blocked':\n"
              "    sys.modules['torch'] = None  # any import of torch fails\n"
              "from aalbert.ir.printer import print_module\n"
              "from aalbert.mapper.frontends import DimSpec\n"
              "from aalbert.mapper.loading import ExampleSpec, load_example\n"
              "m = load_example(ExampleSpec('adapter-albert', 2, 'tiny', layers=2), DimSpec(1, 8))\n"
              "sys.stdout.write(print_module(m))\n")

    def run(mode):
        return subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True)

    blocked = run("blocked")  # nothing cached yet: building it needs torch
    assert blocked.returncode != 0 and "torch" in blocked.stderr
    built, cached = run("torch"), run("blocked")
    assert built.returncode == 0 and cached.returncode == 0, cached.stderr
    assert cached.stdout == built.stdout and "graph @cola" in built.stdout


def test_a_damaged_cache_entry_is_built_again_and_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = print_module(load_example(TINY, DimSpec(1, 8)))
    path = example_cache(TINY, DimSpec(1, 8))
    assert path.exists() and path.with_suffix(".npz").exists()
    path.with_suffix(".npz").write_bytes(b"not an npz")
    assert print_module(load_example(TINY, DimSpec(1, 8))) == first
    assert load_snapshot(path) is not None  # written again, whole
    monkeypatch.setenv("AALBERT_CACHE", "off")
    assert example_cache(TINY, DimSpec(1, 8)) is None
    other = ExampleSpec("albert", 1, "tiny", layers=1)
    load_example(other, DimSpec(1, 8))
    monkeypatch.setenv("AALBERT_CACHE", "on")
    assert not example_cache(other, DimSpec(1, 8)).exists()
