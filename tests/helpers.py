"""Helpers shared by the test modules; numpy and aalbert only (no torch, no onnx)."""

from __future__ import annotations

import numpy as np

from aalbert.ir.graph import Graph

TINY_TASKS = ("cola", "stsb")  # two heads of different widths (2 labels, 1 output)
SEQ = 16


def call(main, argv, capsys):
    """Run a command-line tool's main; (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(main, argv, capsys, match: str, must_not_exist=()):
    """The tool fails with exit status 2 and one line holding `match`, and writes none of `must_not_exist`."""
    code, out, err = call(main, argv, capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]
    for path in must_not_exist:
        assert not path.exists(), path
    return lines[0]


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
