"""Shared fixtures: tiny example models and their ONNX exports, made once per session."""

from __future__ import annotations

import numpy as np
import pytest

from aalbert.examples.export import export_model
from aalbert.examples.zoo import FamilySpec, build_family, example_inputs
from aalbert.ir.graph import Graph

TINY_TASKS = ("cola", "stsb")  # two heads of different widths (2 labels, 1 output)
SEQ = 16


@pytest.fixture(scope="session")
def tiny_models():
    """{family: {task: torch model}} for the tiny config."""
    return {fam: build_family(FamilySpec(fam, "tiny", TINY_TASKS)) for fam in ("adapter-albert", "albert")}


@pytest.fixture(scope="session")
def tiny_inputs():
    x = example_inputs(FamilySpec(size="tiny").config, batch=1, seq_len=SEQ, seed=1, padding=3)
    return {k: v.numpy() for k, v in x.items()}


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory, tiny_models):
    """{(family, exporter): {task: path}}; every tiny model exported once by each exporter."""
    result = {}
    for fam, models in tiny_models.items():
        for exporter in ("torchscript", "dynamo"):
            out = tmp_path_factory.mktemp(f"{fam}-{exporter}")
            result[fam, exporter] = {task: export_model(m, out / f"{task}.onnx", exporter, seq_len=SEQ)
                                     for task, m in models.items()}
    return result


def random_feeds(graph: Graph, seed: int = 0, vocab: int = 100) -> dict[str, np.ndarray]:
    """Inputs for any graph: ids in [0, vocab), masks of ones with padding, floats normal."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        shape = v.type.shape
        if "mask" in v.name:
            a = np.ones(shape, dtype=v.type.dtype.np)
            if len(shape) == 2 and shape[1] > 2:
                a[:, -2:] = 0
        elif "type" in v.name:
            a = np.zeros(shape, dtype=v.type.dtype.np)
        elif v.type.dtype.is_int:
            a = rng.integers(0, vocab, size=shape).astype(v.type.dtype.np)
        else:
            a = rng.standard_normal(shape).astype(v.type.dtype.np)
        feeds[v.name] = a
    return feeds
