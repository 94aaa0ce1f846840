"""The decoder-scale benchmark's model at a tiny size: its parameter count, what share finds in it, and that
canonicalize's copies of alike graphs are what canonicalizing each would give."""

from __future__ import annotations

import dataclasses

import pytest

from aalbert.examples import llama_ir as bench
from aalbert.ir.phases import tasks as task_names
from aalbert.ir.printer import print_graph
from aalbert.passes.base import PassManager, make_pass
from aalbert.passes.canonicalize import canonicalize_graph

# small and uneven, so that a formula that swaps two sizes counts wrong
TINY = dataclasses.replace(bench.SMALL, layers=2, hidden=48, heads=4, kv_heads=2, ffn=80, vocab=96, rank=3)


@pytest.fixture(scope="session")
def shared():
    module = bench.build(TINY)
    return PassManager([make_pass("canonicalize", {}), make_pass("share", {})]).run(module)


def test_parameter_count_formula():
    module = bench.build(TINY)
    lora = [w for w in module.weights.values() if ".lora" in w.name]
    base = [w for w in module.weights.values() if ".lora" not in w.name]
    assert sum(w.numel for w in base) == TINY.base_parameters()
    assert sum(w.nbytes for w in base) == TINY.base_bytes()
    assert sum(w.numel for w in lora) == TINY.tasks * TINY.lora_parameters()
    # the default shape is TinyLlama-1.1B's
    assert 1.09e9 < bench.DecoderShape().base_parameters() < 1.11e9


def test_int8_codes_without_a_float_copy():
    module = bench.build(TINY)
    matrix = module.weights["layer0.gate"]
    assert matrix.data.dtype.name == "int8" and matrix.encoding.label == "int8/ch"
    assert matrix.nbytes == TINY.hidden * TINY.ffn + 4 * TINY.ffn
    assert matrix.hash == matrix.expected_hash()


def test_eight_tasks_share_the_base_and_keep_their_lora(shared):
    assert task_names(shared.graphs) == list(bench.task_names(8)) and len(shared.graphs) == 16
    roles = [w.role for w in shared.weights.values()]
    assert all(r is not None for r in roles)
    base = sum(w.nbytes for w in shared.weights.values() if w.role.shared)
    assert base == TINY.base_bytes()
    own = {t: 0 for t in bench.task_names(8)}
    for w in shared.weights.values():
        if not w.role.shared:
            assert w.role.kind == "lora" and len(w.role.tasks) == 1
            own[w.role.tasks[0]] += w.nbytes
    assert set(own.values()) == {2 * TINY.lora_parameters()}  # f16: two bytes each


def test_copied_canonical_graphs_are_what_canonicalizing_gives():
    alone = bench.build(TINY)
    expected = {}
    for name in ("task0/decode", "task5/prefill"):
        expected[name] = print_graph(canonicalize_graph(alone, alone.graphs[name]))
    module = PassManager([make_pass("canonicalize", {})]).run(bench.build(TINY))
    for name, text in expected.items():
        assert print_graph(module.graphs[name]) == text
    assert "task5.lora0.q.A" in expected["task5/prefill"]
