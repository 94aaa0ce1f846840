"""What a change touches: a new elementwise op, a new memory technology and a new default pass, each added to a
copy of the package exactly as the architecture says (and nothing else), then taken through ONNX import, the
interpreter, compile and simulation in a fresh interpreter that imports that copy.

The copy is the installed layout (`aalbert/`, `aalbert/ir/`, ...) built from pyproject.toml's package-dir
table; each trace lists the files it adds or changes, and the test checks that the copy differs from the
repository in those files only.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def package_copy(tmp: Path, added: dict[str, str], edited: dict[str, tuple[str, str]]) -> Path:
    """The package laid out as it installs under `tmp/site`, with files `added` (path -> text) and `edited`
    (path -> (old, new): one replacement each); returns the folder to put on PYTHONPATH."""
    site = tmp / "site"
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(dirs.items(), key=lambda kv: len(kv[0])):
        dest = site.joinpath(*package.split("."))
        shutil.copytree(ROOT / folder, dest, ignore=IGNORE, dirs_exist_ok=True)
    for rel, text in added.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    for rel, (old, new) in edited.items():
        text = (site / rel).read_text()
        assert text.count(old) == 1, (rel, old)
        (site / rel).write_text(text.replace(old, new))
    changed = _differences(site, dirs)
    assert changed == set(added) | set(edited), changed
    return site


def _differences(site: Path, dirs: dict[str, str]) -> set[str]:
    """Files of the copy that are new or differ from the repository's."""
    out = set()
    for f in site.rglob("*"):
        if not f.is_file() or "__pycache__" in f.parts:
            continue
        rel = f.relative_to(site).as_posix()
        package = ".".join(Path(rel).parent.parts)
        best = max((p for p in dirs if package == p or package.startswith(p + ".")), key=len)
        origin = ROOT / dirs[best] / Path(rel).relative_to(Path(*best.split(".")))
        if not origin.exists() or not filecmp.cmp(origin, f, shallow=False):
            out.add(rel)
    return out


def run(site: Path, args: list[str], tmp: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh interpreter that imports aalbert from the copy."""
    environ = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp / "cache"), **(env or {})}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp, env=environ,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def linear_model(path: Path, middle: str) -> Path:
    """x[1, 8, 32] -> MatMul -> `middle` (one ONNX op) -> MatMul -> y: an op between two products."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, w2 = (numpy_helper.from_array(rng.normal(0, 0.2, s).astype(np.float32), n)
              for n, s in (("w1", (32, 64)), ("w2", (64, 32))))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node(middle, ["h"], ["a"]),
             helper.make_node("MatMul", ["a", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32])], [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    np.savez(path.with_suffix(".npz"), x=rng.normal(0, 1, (1, 8, 32)).astype(np.float32))
    return path


def test_a_new_elementwise_op_is_its_declaration_and_its_importer_line(tmp_path):
    site = package_copy(tmp_path, added={"aalbert/ir/ops/softsign.py": textwrap.dedent('''\
        """`softsign`: x / (1 + |x|)."""

        from aalbert.ir.ops.elementwise import _unary

        _unary("softsign", lambda x: x / (1 + abs(x)), domain="float", doc="x / (1 + |x|)")
        ''')}, edited={"aalbert/mapper/frontends/onnx_ops.py": ('"Sigmoid": "sigmoid",',
                                                               '"Sigmoid": "sigmoid", "Softsign": "softsign",')})
    model = linear_model(tmp_path / "m.onnx", "Softsign")
    run(site, ["-c", textwrap.dedent("""\
        from aalbert.mapper.cli import compile, run
        assert run.main(["m.onnx", "--inputs", "m.npz", "-o", "out.npz"]) == 0
        assert run.main(["m.onnx", "--inputs", "m.npz", "-o", "chip.npz", "--target", "edge_accel"]) == 0
        assert compile.main(["m.onnx", "--target", "edge_accel", "--emit", "asm", "-o", "prog.s"]) == 0
        """)], tmp_path)  # imported, interpreted, then lowered, placed and run on the target; compiled
    onnxruntime = pytest.importorskip("onnxruntime")
    x = np.load(tmp_path / "m.npz")["x"]
    want = onnxruntime.InferenceSession(str(model)).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "chip.npz")["y"], want, rtol=1e-4, atol=1e-5)
    assert "vec   softsign 512 x1" in (tmp_path / "prog.s").read_text()  # on the SFU, one scan by default


FERAM = '''\
# A ferroelectric RAM array, numbers made up for the test: a technology the project has never seen
technology = "feram"
capacity_bytes = 2097152
word_bits = 64
read_energy_pj = 3.0
write_energy_pj = 9.0
read_latency_ns = 2.0
write_latency_ns = 4.0
leakage_mw = 2.5
area_mm2 = 0.4
write_endurance = 1e14
volatile = false
source = "a test's own numbers"

[power_states]
off_leakage_fraction = 0.01
wakeup_ns = 5.0
wakeup_pj = 100.0
source = "a test's own numbers"
'''


def test_a_new_memory_technology_is_one_file(tmp_path):
    site = package_copy(tmp_path, added={"aalbert/targets/hardware/technologies/feram.toml": FERAM}, edited={})
    target = (ROOT / "targets" / "builtin" / "edge_accel.toml").read_text()
    start = target.index('name = "rram"')
    block = target[start:target.index("[[memory]]", start)]
    chip = target.replace(block, block.replace('technology = "rram"', 'technology = "feram"')
                          .replace('model = "rram"', 'model = "feram"'))
    assert chip != target
    (tmp_path / "chip.toml").write_text(chip.replace('name = "edge_accel"', 'name = "edge_feram"'))
    model = linear_model(tmp_path / "m.onnx", "Relu")
    out = run(site, ["-m", "aalbert.mapper.cli.compile", str(model), "--target", "chip.toml", "--report-json",
                     "r.json"], tmp_path)
    assert "edge_feram" in out.stdout
    level = next(m for m in json.loads((tmp_path / "r.json").read_text())["levels"] if m["name"] == "rram")
    assert level["technology"] == "feram" and level["shared_weights"] > 0  # the backbone went to the new memory
    builtin = run(site, ["-m", "aalbert.mapper.cli.compile", str(model), "--target", "edge_accel"], tmp_path)
    assert out.stdout.replace("edge_feram", "edge_accel") != builtin.stdout  # priced with the file's numbers


PASS = '''\
"""`mark-tasks`: a pass the project has never seen; it records every module it runs on."""

import os
from dataclasses import dataclass

from aalbert.passes.base import Analyses, Pass, register_pass


@register_pass
@dataclass(frozen=True)
class MarkTasks(Pass):
    name = "mark-tasks"
    summary = "record the tasks of every module the pipeline runs on"
    changes_nothing = True

    def run(self, module, analyses: Analyses):
        with open(os.environ["MARKS"], "a") as f:
            f.write(",".join(module.graphs) + "\\n")
        return module
'''
CASE = '''\
// RUN: mark-tasks
module {
  graph @t(%x: tensor<2xf32>) -> ("y": tensor<2xf32>) {
    %0 = neg(%x) : tensor<2xf32>
    return %0
  }
}
// CHECK: %0 = neg(%x)
'''


def test_a_new_default_pass_is_its_module_its_case_and_one_line(tmp_path):
    site = package_copy(tmp_path, added={"aalbert/passes/mark_tasks.py": PASS}, edited={
        "aalbert/passes/pipelines.py": ('PREPARE: tuple[str, ...] = ("canonicalize", "share")',
                                        'PREPARE: tuple[str, ...] = ("canonicalize", "share", "mark-tasks")')})
    tests = tmp_path / "tests"
    shutil.copytree(ROOT / "tests", tests, ignore=IGNORE)
    (tests / "passes" / "mark-tasks.ir").write_text(CASE)
    marks = tmp_path / "marks.txt"
    env = {"MARKS": str(marks)}
    run(site, ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/passes/test_ir_files.py", "-k",
               "mark-tasks or every_registered_pass"], tmp_path, env)
    linear_model(tmp_path / "m.onnx", "Relu")
    # the example the study builds does not depend on the pipeline: cache this process's copy where the copy's
    # study looks for it, so that it need not build it with torch again
    from aalbert.ir.snapshot import save_snapshot
    from aalbert.mapper.frontends import DimSpec
    from aalbert.mapper.loading import ExampleSpec, load_example

    spec, dims = ExampleSpec("adapter-albert", 1, "tiny"), DimSpec(1, 8)
    where = run(site, ["-c", "from aalbert.mapper.frontends import DimSpec\n"
                             "from aalbert.mapper.loading import ExampleSpec, example_cache\n"
                             "print(example_cache(ExampleSpec('adapter-albert', 1, 'tiny'), DimSpec(1, 8)))"],
                tmp_path).stdout.strip()
    Path(where).parent.mkdir(parents=True)
    save_snapshot(load_example(spec, dims), where)
    run(site, ["-c", textwrap.dedent("""\
        import aalbert
        from aalbert.mapper.cli import compile, run
        from aalbert.mapper.study.evaluate import ModelSpec, prepared
        assert compile.main(["m.onnx", "--target", "edge_accel"]) == 0
        assert run.main(["m.onnx", "--inputs", "m.npz", "-o", "o.npz", "--target", "edge_accel"]) == 0
        aalbert.compile({"api": "m.onnx"}, seq_len=8)
        prepared(ModelSpec(tasks=1, size="tiny", seq_len=8))
        """)], tmp_path, env)  # the compile and run commands, the Python API and the study: all run the new pass
    assert marks.read_text().split() == ["t", "m", "m", "api", "cola"]
