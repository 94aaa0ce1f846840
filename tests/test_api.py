"""The Python API: `import aalbert; aalbert.compile(...)`, the README's example, and the same compile as the CLI."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from aalbert.errors import OptionError
from aalbert.mapper.cli import compile as compile_cli

from .conftest import SEQ

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_runs_and_prints_the_report():
    pytest.importorskip("adapters")
    readme = ROOT.joinpath("README.md").read_text()
    start = readme.index("```python\n") + len("```python\n")
    code = readme[start:readme.index("```", start)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    text = out.getvalue()
    assert text.startswith("aalbert.compile: 2 tasks\n")
    assert "shared by all 2 tasks" in text and "memory map" in text.lower()
    cycles, dram, programs = text.strip().splitlines()[-1].split()
    assert float(cycles) > 0 and float(dram) >= 0 and programs == "2"


def test_api_and_cli_print_the_same_compile(capsys, tiny_exports):
    import aalbert

    paths = tiny_exports["adapter-albert", "torchscript"]
    result = aalbert.compile(dict(paths), seq_len=SEQ, pipeline="canonicalize,share,compress{policy=edgebert}",
                             target="edge_accel", requests=20)
    assert compile_cli.main([*map(str, paths.values()), "--seq-len", str(SEQ), "--compress", "edgebert",
                             "--target", "edge_accel", "--requests", "20"]) == 0
    printed = capsys.readouterr().out
    assert result.report.split("\n", 1)[1] == printed.split("\n", 1)[1]  # all but the title line
    assert set(result.programs) == set(result.results) == set(paths)
    assert result.allocation.target == "edge_accel" and result.stream is not None
    assert all(w.placement is not None for w in result.module.weights.values())


def test_api_takes_modules_and_refuses_what_it_cannot_compile(tiny_models, tiny_inputs):
    import torch

    import aalbert

    models = tiny_models["adapter-albert"]
    inputs = {k: torch.from_numpy(v) for k, v in tiny_inputs.items()}
    result = aalbert.compile(dict(models), inputs)
    assert list(result.module.graphs) == list(models) and result.allocation is None and result.programs == {}
    assert "shared by all 2 tasks" in result.report
    with pytest.raises(OptionError, match="give its example inputs"):
        aalbert.compile(dict(models))
    with pytest.raises(OptionError, match="expected an nn.Module"):
        aalbert.compile({"t": 42}, inputs)
    with pytest.raises(OptionError, match="needs a target"):
        aalbert.compile(dict(models), inputs, workload="w.toml")


def test_api_refuses_an_unknown_option_naming_the_nearest_one(tmp_path):
    import aalbert

    with pytest.raises(OptionError, match=r"unknown option 'targt' \(did you mean 'target'\?\)"):
        aalbert.compile({"t": tmp_path / "t.onnx"}, targt="edge_accel")
    with pytest.raises(OptionError, match="unknown option 'hue'; options: pipeline, target, "):
        aalbert.compile({"t": tmp_path / "t.onnx"}, hue="blue")


def test_importing_the_package_or_the_ir_imports_no_torch():
    code = ("import sys, aalbert, aalbert.ir, aalbert.passes.base\n"
            "assert 'torch' not in sys.modules\n"
            "assert callable(aalbert.compile) and 'torch' not in sys.modules\n"
            "try:\n    aalbert.nothing\nexcept AttributeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "has no attribute 'nothing'" in done.stdout
