"""canonicalize's rounds: a sweep that changed nothing ends them; one that rewrote something is followed by
another, until the graph stands still."""

from __future__ import annotations

import pytest

from aalbert.examples.gemm import gemm_ir
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_graph
from aalbert.passes import canonicalize


@pytest.fixture
def sweeps(monkeypatch):
    """How many sweeps canonicalize_graph ran."""
    count = [0]
    run = canonicalize._Sweep.run

    def counted(self):
        count[0] += 1
        return run(self)
    monkeypatch.setattr(canonicalize._Sweep, "run", counted)
    return count


@pytest.mark.parametrize("text, rounds", [
    (gemm_ir(4, 8, 16), 1),                                        # already canonical: one sweep
    (gemm_ir(4, 8, 16).replace("linear(", "matmul("), 2),          # rewritten to linear, then checked
])
def test_a_sweep_that_changed_nothing_ends_the_rounds(sweeps, text, rounds):
    module = parse_module(text)
    graph = canonicalize.canonicalize_graph(module, module.graphs["t"])
    assert sweeps[0] == rounds
    assert "linear(" in print_graph(graph) and "matmul(" not in print_graph(graph)
