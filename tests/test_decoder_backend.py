"""Decoders on the targets: both phases compiled, the KV cache placed as a buffer of its own, tokens costed."""

from __future__ import annotations

import pytest

from aalbert.mapper.driver import Placement, Plan, compile_module
from tests.decoder_ir import TinyDecoder, decoder_module

CFG = TinyDecoder(layers=2, hidden=64, heads=4, ffn=128, vocab=100, capacity=64, prompt=8)


def _compile(cfg: TinyDecoder = CFG, target: str = "edge_accel"):
    return compile_module(decoder_module(cfg=cfg), "decoder", Plan(placement=Placement(target)))


@pytest.fixture(scope="session")
def tiny():
    return _compile()


def test_both_phases_of_every_task_lower_and_simulate(tiny):
    assert sorted(tiny.results) == ["a/decode", "a/prefill", "b/decode", "b/prefill"]
    assert all(r.cycles > 0 for r in tiny.results.values())


def test_cache_is_placed_apart_from_the_arena_in_a_writable_level(tiny):
    arenas = {g.arena.state_level for g in tiny.module.graphs.values()}
    assert arenas == {"sram"}  # never rram: the cache is rewritten at every step
    a = next(iter(tiny.module.graphs.values())).arena
    cache_bytes = CFG.layers * 2 * CFG.heads * CFG.capacity * CFG.head_dim * 2  # 16-bit activations
    assert a.state == cache_bytes
    assert a.size < cache_bytes  # the arena no longer holds the cache


def test_index_copy_writes_only_the_copied_entries(tiny):
    program = tiny.programs["a/decode"]
    updates = [i for i in program.instrs if i.op == "index_copy"]
    assert len(updates) == 2 * CFG.layers
    one_token = CFG.heads * CFG.head_dim * 2
    for i in updates:
        assert i.nbytes == one_token
        assert dict((lvl, w) for lvl, _, w in i.traffic)["sram"] == one_token
        assert i.writes[0].level == "sram" and i.writes[0].offset >= a_state_offset(tiny)


def a_state_offset(compiled) -> int:
    return next(iter(compiled.module.graphs.values())).arena.state_offset
