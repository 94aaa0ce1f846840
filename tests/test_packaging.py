"""The install: one top-level package, each module imported under one name, registries filled explicitly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .helpers import needs

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("ir", "passes", "targets", "mapper", "examples")


def _python(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter outside the repository (so only the installed package is found)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_holds_one_top_level_package(tmp_path):
    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                 ".pytest_cache", ".hypothesis"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("aalbert-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"aalbert", wheel.name.split("-py3")[0] + ".dist-info"}
    for folder in FOLDERS:
        assert any(n.startswith(f"aalbert/{folder}/") for n in names), folder
    # package data travels with it; tests and benchmarks do not
    assert "aalbert/ir/ir.lark" in names and "aalbert/targets/builtin/edge_accel.toml" in names
    assert not any(n.startswith(("aalbert/tests/", "aalbert/benchmarks/")) for n in names)


@needs("torch", "onnx")  # the frontends and the example models import them
def test_every_module_is_imported_under_one_name(tmp_path):
    """Import every module of the package; no file may be loaded twice, nor a folder as a top-level name."""
    out = _python("""
import importlib, json, pkgutil, sys
import aalbert
import aalbert.ir, aalbert.passes, aalbert.targets, aalbert.mapper, aalbert.examples
for sub in (aalbert.ir, aalbert.passes, aalbert.targets, aalbert.mapper, aalbert.examples):
    for info in pkgutil.walk_packages(sub.__path__, sub.__name__ + "."):
        importlib.import_module(info.name)
names = {}
for name, mod in list(sys.modules.items()):
    if name == "aalbert" or name.startswith("aalbert."):
        names.setdefault(mod.__file__, []).append(name)
stray = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps({"modules": len(names), "twice": {f: n for f, n in names.items() if len(n) > 1}, "stray": stray}))
""" % (FOLDERS,), tmp_path)  # noqa: UP031 (the template holds braces)
    found = json.loads(out)
    assert found["modules"] > 40
    assert found["twice"] == {}
    assert found["stray"] == []


def test_importing_the_ir_registers_every_op_and_the_passes_every_pass(tmp_path):
    alone = _python("import aalbert.ir.registry as r, aalbert.passes.base as b\n"
                    "print(sorted(r.REGISTRY)); print(sorted(b.PASSES))", tmp_path)
    everything = _python("import aalbert.mapper.cli.compile, aalbert.mapper.cli.opt, aalbert.mapper.cli.run\n"
                         "import aalbert.ir.registry as r, aalbert.passes.base as b\n"
                         "print(sorted(r.REGISTRY)); print(sorted(b.PASSES))", tmp_path)
    assert alone == everything
    ops, passes = alone.splitlines()
    assert "'linear'" in ops and "'allocate'" in passes


def test_the_ir_and_the_passes_need_neither_torch_nor_onnx(tmp_path):
    out = _python("""
import sys
sys.modules["torch"] = None   # any import of torch or onnx now fails
sys.modules["onnx"] = None
import aalbert
from aalbert.ir.parser import parse_module
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.hardware.spec import load_target
m = parse_module('module { graph @t(%x: tensor<2x3xf32>) -> ("y": tensor<2x3xf32>) { '
                 '%0 = relu(%x) : tensor<2x3xf32>\\n return %0 } }')
PassManager(parse_pipeline("canonicalize,share,plan-activations")).run(m)
print(load_target("edge_accel").name, m.graphs["t"].arena.size)
""", tmp_path)
    assert out.split()[0] == "edge_accel" and int(out.split()[1]) > 0


def _imports(tree, name: str, is_package: bool) -> set[str]:
    """Every module `name` imports, at any depth of its code but under `if TYPE_CHECKING:`."""
    import ast

    found: set[str] = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.update([base] + [f"{base}.{a.name}" for a in node.names])
        stack.extend(ast.iter_child_nodes(node))
    return found


def test_no_two_modules_import_each_other_even_inside_functions():
    """Layers import downward: no cycle of imports among the package's modules, counting imports inside
    functions (a lazy import must not hide a cycle); package __init__ files that only hand names on aside."""
    import ast
    import tomllib

    import networkx as nx

    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in sorted(dirs.items(), key=lambda kv: len(kv[1])):
        for f in (ROOT / folder).rglob("*.py"):
            parts = [p for p in f.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = f
    graph = nx.DiGraph()
    for name, f in modules.items():
        for target in _imports(ast.parse(f.read_text()), name, f.name == "__init__.py"):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and modules[target].name != "__init__.py":
                graph.add_edge(name, target)
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)
    assert not cycles, cycles
