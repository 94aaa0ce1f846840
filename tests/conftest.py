"""Shared fixtures: tiny example models and their ONNX exports, made once per session.

torch is imported inside the fixtures that need it, so that tests which do
not run without torch and onnx. `AALBERT_TEST_BLOCK=1 python -m pytest` runs
the suite with torch, onnx and the libraries built on them blocked from import
(`tests/blocked/sitecustomize.py`), in this process and in the processes the
tests start: what needs them skips, and the built-in example is built apart (see
there).
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

BLOCK_DIR = Path(__file__).resolve().parent / "blocked"


def _install_blocker() -> None:
    spec = importlib.util.spec_from_file_location("aalbert_test_block", BLOCK_DIR / "sitecustomize.py")
    block = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(block)  # installs the blocker (the variable is set)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(BLOCK_DIR)]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(BLOCK_DIR), *paths])


if os.environ.get("AALBERT_TEST_BLOCK"):
    _install_blocker()

from .helpers import SEQ, TINY_TASKS, made_once  # noqa: E402

# aalbert's source folders (the package's `package-dir`s in pyproject.toml)
SOURCES = ("support", "ir", "passes", "targets", "mapper", "examples")
_COMPILED: list[Path] = []


# the thread pools of numpy's BLAS and of torch (OpenMP, MKL)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config):
    """With `-n`, a worker runs on each core: each worker, and every command it starts, computes on one thread
    (set before the workers start, which inherit it; a value the user set is kept), as two pools of threads
    per core would spin against each other. Where PYTHONDONTWRITEBYTECODE is set, each of the hundreds of
    processes the tests start would compile aalbert's sources again: they are compiled once, before the
    workers start, and the bytecode folders this wrote are removed when the run ends (those that were there
    before are left as they were)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if getattr(config.option, "numprocesses", None):
        for variable in THREAD_VARIABLES:
            os.environ.setdefault(variable, "1")
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return
    root = Path(__file__).resolve().parents[1]
    before = {d for folder in SOURCES for d in (root / folder).rglob("__pycache__")}
    for folder in SOURCES:
        compileall.compile_dir(root / folder, quiet=2)
    _COMPILED.extend(d for folder in SOURCES for d in (root / folder).rglob("__pycache__") if d not in before)


def pytest_unconfigure(config):
    for folder in _COMPILED:
        shutil.rmtree(folder, ignore_errors=True)


# The longest test modules, longest first (`--durations`): with `-n` each module runs on one worker
# (`--dist loadscope`), in the order collected, so a long one collected late keeps its worker busy after the
# other has finished. Run first, they overlap the many short ones.
LONG_FIRST = ("test_readme.py", "test_study_sweep.py", "test_torch_export.py", "test_decoders.py", "test_pt2.py",
              "test_decoder_tutorial.py", "test_study_signals.py", "test_scripts.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's order is kept


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """The tools' caches (the sweep's points) go to a fresh folder, not the user's ~/.cache. The built-in
    examples' cache is one for all the workers of `pytest -n` (an example is built once a run, not once a
    worker; its files are written atomically and, at one key, are the same whoever writes them); the sweep's
    points stay each worker's own, as its tests count them."""
    old = os.environ.get("XDG_CACHE_HOME")
    cache = tmp_path_factory.mktemp("cache")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "examples-cache"
        shared.mkdir(exist_ok=True)
        (cache / "aalbert").mkdir()
        (cache / "aalbert" / "examples").symlink_to(shared, target_is_directory=True)
    os.environ["XDG_CACHE_HOME"] = str(cache)
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME")
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def tiny_models():
    """{family: {task: torch model}} for the tiny config."""
    pytest.importorskip("torch")
    from aalbert.examples.zoo import FamilySpec, build_family

    return {fam: build_family(FamilySpec(fam, "tiny", TINY_TASKS)) for fam in ("adapter-albert", "albert")}


@pytest.fixture(scope="session")
def tiny_inputs():
    pytest.importorskip("torch")  # the inputs are torch's seeded draws
    from aalbert.examples.zoo import FamilySpec, example_inputs

    x = example_inputs(FamilySpec(size="tiny").config, batch=1, seq_len=SEQ, seed=1, padding=3)
    return {k: v.numpy() for k, v in x.items()}


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory, tiny_models):
    """{(family, exporter): {task: path}}: each tiny model exported by an exporter when a test first asks for
    that pair, once per run (the workers of `pytest -n` share the files)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # the dynamo exporter's
    base = tmp_path_factory.getbasetemp()
    return Exports(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base, tiny_models)


@pytest.fixture(scope="session")
def hf_exports(tmp_path_factory):
    """`hf_models.SharedExports`: the tiny Hugging Face encoders' ONNX exports, each made once per run."""
    pytest.importorskip("onnx")
    from .hf_models import SharedExports

    base = tmp_path_factory.getbasetemp()
    return SharedExports(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


class Exports(Mapping):
    """A lazy {(family, exporter): {task: path}}: the first process to ask for a pair exports it under a file lock,
    and every process of the run reads the same files."""

    def __init__(self, root, models):
        self.root, self.models, self.done = root, models, {}

    def __getitem__(self, key):
        if key not in self.done:
            from aalbert.examples.export import export_model

            family, exporter = key
            folder = self.root / f"exports-{family}-{exporter}"
            paths = {task: folder / f"{task}.onnx" for task in self.models[family]}

            def make():
                for task, model in self.models[family].items():
                    export_model(model, paths[task], exporter, seq_len=SEQ)

            made_once(folder, make)
            self.done[key] = paths
        return self.done[key]

    def __iter__(self):
        return iter((family, exporter) for family in self.models for exporter in ("torchscript", "dynamo"))

    def __len__(self):
        return 2 * len(self.models)
