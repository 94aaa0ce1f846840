"""The KV cache's level as a decision of the allocator's integer program: it weighs the cache against the weights
it would push off chip, prices the cache (and the activation arena's nodes) as the simulator charges them, at the
valid tokens of each step, and refuses a cache that fits nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from aalbert.ir.analysis import state_layout
from aalbert.ir.phases import DECODE, PREFILL, parse_key
from aalbert.ir.registry import Trait, op_has
from aalbert.mapper.driver import Placement, Plan, compile_module
from aalbert.passes.allocation.state import state_bytes
from aalbert.targets.mapping.problem import weight_of
from aalbert.targets.sim.generation import at_length, step_tokens
from aalbert.targets.sim.timing import duration, dynamic_energy
from tests.decoder_ir import TinyDecoder, decoder_module

CFG = TinyDecoder(layers=2, hidden=64, heads=4, ffn=128, vocab=100, capacity=64, prompt=8)
LONG = TinyDecoder(layers=2, hidden=64, heads=4, ffn=128, vocab=100, capacity=1024, prompt=8)
ROOT = Path(__file__).resolve().parents[1]
SRAM_BYTES = 16 * 53_248   # 832 KiB in 16 banks: the long cache and the arena fit, the weights then do not


def _target(tmp_path: Path, sram: int, dram: int | None = None) -> str:
    """edge_accel_sram with `sram` bytes of SRAM (and `dram` of DRAM), written to a file."""
    text = (ROOT / "targets" / "builtin" / "edge_accel_sram.toml").read_text()
    text = text.replace("capacity_bytes = 12582912", f"capacity_bytes = {sram}", 1)
    if dram is not None:
        text = text.replace("capacity_bytes = 805306368", f"capacity_bytes = {dram}", 1)
    path = tmp_path / "small_sram.toml"
    path.write_text(text)
    return str(path)


def _compile(cfg: TinyDecoder, target: str, **placement):
    return compile_module(decoder_module(cfg=cfg), "decoder", Plan(placement=Placement(target, **placement)))


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """The long-context decoder on the small SRAM: the allocator's choice, and the cache forced on chip."""
    target = _target(tmp_path_factory.mktemp("kv"), SRAM_BYTES)
    return (_compile(LONG, target, spill=True, generate=8),
            _compile(LONG, target, spill=True, generate=8, cache="sram"))


def test_the_cache_goes_off_chip_when_keeping_it_on_chip_streams_the_weights(crowded):
    chosen, forced = crowded
    module, target = chosen.module, chosen.target
    cache = state_bytes(module, target)
    arena = max(g.arena.size for g in module.graphs.values())
    own = sum(w.nbytes for w in module.weights.values() if not w.role.shared)
    # the rule the integer program replaced (nearest writable level with room beside the arena and the task
    # weights) kept it in the SRAM
    assert cache <= target.level("sram").capacity_bytes - arena - own
    assert forced.module.graphs["a/decode"].arena.state_level == "sram"
    assert chosen.module.graphs["a/decode"].arena.state_level == "dram"
    on_chip = {w.name for w in chosen.module.weights.values() if w.placement.level == "sram"}
    assert len(on_chip) > len({w.name for w in forced.module.weights.values() if w.placement.level == "sram"})
    assert chosen.allocation.solution.objective < forced.allocation.solution.objective
    assert chosen.backend.generation.energy_per_token_pj < forced.backend.generation.energy_per_token_pj
    assert f"KV cache {cache:,} bytes in dram" in chosen.report


@pytest.fixture(scope="module")
def tiny():
    return _compile(CFG, "edge_accel", generate=8)


def _cache_nodes(graph) -> set[int]:
    """The nodes that read or write the graph's state region (views move nothing)."""
    state = set(state_layout(graph, graph.arena.activation_bits, graph.arena.align)[0])
    return {i for i, n in enumerate(graph.nodes) if not op_has(n.op, Trait.VIEW)
            and any(v in state for v in (*n.inputs, *n.outputs))}


def _request_lengths(phase: str, prompt: int, generate: int, chunk: int) -> list[int]:
    """The valid cache tokens of each run of a phase's graph in one request: a prefill chunk's end, a decode step's
    prompt and tokens so far."""
    assert phase in (PREFILL, DECODE)
    if phase == PREFILL:
        return [min(prompt, (k + 1) * chunk) for k in range(-(-prompt // chunk))]
    return [prompt + i for i in range(1, generate + 1)]


def _simulated(compiled, nodes_of) -> tuple[float, float]:
    """The dynamic energy and cycles of the simulated instructions of each graph's nodes `nodes_of(graph)`, over
    a request's runs of the graph (prefill chunks, decode steps) at their valid tokens, expected over the task
    mix."""
    module, target = compiled.module, compiled.target
    n = compiled.backend.generation.lengths
    wl = compiled.allocation.workload
    dynamic = cycles = 0.0
    for name, graph in module.graphs.items():
        key = parse_key(name)
        nodes = nodes_of(graph)
        assert nodes
        for length in _request_lengths(key.phase, n.prompt, n.generate, max(1, step_tokens(graph))):
            for ins in at_length(compiled.backend.program(name), graph, length).instrs:
                if ins.node in nodes and ins.kind != "power":
                    dynamic += wl.mix[key.task] * sum(dynamic_energy(ins, target).values())
                    cycles += wl.mix[key.task] * duration(ins, target)
    return dynamic, cycles


@pytest.mark.parametrize("which", ["sram", "dram"])
def test_the_cache_price_is_what_the_simulator_charges_for_it(tiny, tmp_path, which):
    """The chosen cache option's dynamic energy and cycles are those of the simulated instructions of the nodes
    that read and write the cache, over a request's prefill and decode steps at their valid tokens, expected
    over the task mix (the price is their sum with leakage over those cycles)."""
    compiled = tiny if which == "sram" else _compile(CFG, "edge_accel", generate=8, cache="dram")
    option = compiled.allocation.solution.cache
    assert option is not None and option.level == which
    dynamic, cycles = _simulated(compiled, _cache_nodes)
    assert option.dynamic == pytest.approx(dynamic, rel=0.01)
    assert option.cycles == pytest.approx(cycles, rel=0.01)
    assert option.cost > option.dynamic  # and the leakage over its cycles


@pytest.mark.parametrize("prompt", [CFG.prompt, 20])  # one prefill chunk of 8 tokens, and three (8, 16, 20)
def test_the_arena_price_is_what_the_simulator_charges_for_its_nodes(tiny, prompt):
    """The arena option's dynamic energy and cycles are those of the simulated instructions of the nodes without
    weights that do not touch the cache, over a request's prefill chunks and decode steps, each at its valid
    tokens (attention's scores and their softmax along the cache's capacity scaled to them), expected over the
    task mix."""
    compiled = tiny if prompt == CFG.prompt else _compile(CFG, "edge_accel", generate=8, prompt=prompt)
    module = compiled.module
    assert compiled.backend.generation.lengths.prompt == prompt

    def plain(graph) -> set[int]:
        cache = _cache_nodes(graph)
        return {i for i, n in enumerate(graph.nodes) if n.op not in ("weight", "constant") and i not in cache
                and not any(weight_of(module, v) for v in n.inputs)}
    dynamic, cycles = _simulated(compiled, plain)
    option = compiled.allocation.solution.arena
    assert option.dynamic == pytest.approx(dynamic, rel=0.01)
    assert option.cycles == pytest.approx(cycles, rel=0.01)


def test_a_cache_that_fits_no_writable_memory_is_refused_in_one_line(tmp_path, capsys):
    from aalbert.ir.fileio import save_module
    from aalbert.mapper.cli import compile as compile_cli
    from tests.helpers import assert_clean_error

    path = tmp_path / "decoder.ir"
    save_module(decoder_module(cfg=LONG), str(path))
    target = _target(tmp_path, 1 << 18, 1 << 18)  # 256 KiB each, for a 512 KiB cache
    assert_clean_error(compile_cli.main, [path, "--target", target, "--spill"], capsys,
                       "allocate: the KV cache (524,288 bytes) fits no memory of edge_accel_sram")


@pytest.mark.parametrize("seed", range(20))
def test_the_integer_program_and_the_greedy_fallback_choose_the_cache_level(seed):
    """On random instances with a cache (one region that takes a level like the arena's), the integer program
    finds the brute force's optimum and the greedy fallback a feasible placement never better than it, with the
    cache's bytes counted in its level."""
    import random

    from aalbert.passes.allocation.solvers import (
        ArenaOption,
        brute_force,
        feasible,
        solve_greedy,
        solve_milp,
    )
    from tests.test_allocate import random_problem

    rng = random.Random(1000 + seed)
    problem = random_problem(seed)
    size = rng.randint(5, 40)
    problem.state_options = [ArenaOption(lvl, size, rng.uniform(1, 400), lvl == "off") for lvl in ("a", "b", "off")]
    exact = brute_force(problem)
    ilp = solve_milp(problem)
    assert exact is not None and exact.cache is not None  # the off-chip level always has room
    assert ilp is not None and ilp.objective == pytest.approx(exact.objective, rel=1e-6, abs=1e-6)
    assert ilp.cache is not None and feasible(problem, ilp.choice, ilp.arena, ilp.cache)
    greedy = solve_greedy(problem)
    if greedy is not None:
        assert greedy.cache is not None and greedy.objective >= exact.objective - 1e-6
        assert feasible(problem, greedy.choice, greedy.arena, greedy.cache)
        arena_there = greedy.arena.size if greedy.arena.level == greedy.cache.level else 0
        assert greedy.usage[greedy.cache.level] >= greedy.cache.size + arena_there
