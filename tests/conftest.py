"""Shared fixtures: tiny example models and their ONNX exports, made once per session.

torch is imported inside the fixtures that need it, so that tests which do
not (the pass tests under tests/passes) run without torch and onnx.
"""

from __future__ import annotations

import os

import pytest

from .helpers import SEQ, TINY_TASKS


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
    from aalbert.examples.zoo import FamilySpec, build_family

    return {fam: build_family(FamilySpec(fam, "tiny", TINY_TASKS)) for fam in ("adapter-albert", "albert")}


@pytest.fixture(scope="session")
def tiny_inputs():
    from aalbert.examples.zoo import FamilySpec, example_inputs

    x = example_inputs(FamilySpec(size="tiny").config, batch=1, seq_len=SEQ, seed=1, padding=3)
    return {k: v.numpy() for k, v in x.items()}


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory, tiny_models):
    """{(family, exporter): {task: path}}; every tiny model exported once by each exporter."""
    from aalbert.examples.export import export_model

    result = {}
    for fam, models in tiny_models.items():
        for exporter in ("torchscript", "dynamo"):
            out = tmp_path_factory.mktemp(f"{fam}-{exporter}")
            result[fam, exporter] = {task: export_model(m, out / f"{task}.onnx", exporter, seq_len=SEQ)
                                     for task, m in models.items()}
    return result
