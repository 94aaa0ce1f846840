"""Shared fixtures: tiny example models and their ONNX exports, made once per session.

torch is imported inside the fixtures that need it, so that tests which do
not run without torch and onnx. `AALBERT_TEST_BLOCK=1 python -m pytest` runs
the suite with torch, onnx and the libraries built on them blocked from import
(`tests/blocked/sitecustomize.py`), in this process and in the processes the
tests start: what needs them skips, and the built-in example is built apart (see
there).
"""

from __future__ import annotations

import importlib.util
import os
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

from .helpers import SEQ, TINY_TASKS  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory):
    """The tools' caches (the sweep's points) go to a fresh folder, not the user's ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
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
    """{(family, exporter): {task: path}}; every tiny model exported once by each exporter."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")  # the dynamo exporter's
    from aalbert.examples.export import export_model

    result = {}
    for fam, models in tiny_models.items():
        for exporter in ("torchscript", "dynamo"):
            out = tmp_path_factory.mktemp(f"{fam}-{exporter}")
            result[fam, exporter] = {task: export_model(m, out / f"{task}.onnx", exporter, seq_len=SEQ)
                                     for task, m in models.items()}
    return result
