"""Mapping products onto the PE array: the text form, the search against exhaustive enumeration, the cost
model against the simulated block program, functional execution per dataflow, and the allocator's expected
energy against the simulation."""

from __future__ import annotations

import dataclasses
import importlib
import random

import numpy as np
import pytest

from aalbert.errors import IRParseError
from aalbert.examples.gemm import gemm_ir
from aalbert.ir.facts import FactError
from aalbert.ir.interpreter import run
from aalbert.ir.mapping import Mapping
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.mapper.study.evaluate import override_target
from aalbert.passes.allocate import allocate
from aalbert.passes.allocation.problem import AllocatorOptions
from aalbert.passes.allocation.record import Allocation
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.passes.plan_activations import plan_module
from aalbert.targets.codegen.lower import lower
from aalbert.targets.hardware.spec import builtin_targets, load_target
from aalbert.targets.mapping import Gemm, arch_of, cost_of, exhaustive, gemm_of, search
from aalbert.targets.mapping.cost import evaluate
from aalbert.targets.mapping.problem import Arch, Port
from aalbert.targets.mapping.search import _CACHE, clear_cache, objective_value
from aalbert.targets.mapping.space import columns_of, mapping_at, space
from aalbert.targets.sim.functional import execute
from aalbert.targets.sim.timing import simulate
from aalbert.targets.sim.workload import default_workload

from .ir_cases import module_with_data
from .program_checks import assert_programs_match_interpreter

search_module = importlib.import_module("aalbert.targets.mapping.search")  # the package's `search` is the function

ALL_DATAFLOWS = ["weight_stationary", "output_stationary", "input_stationary"]


def placed_gemm(target, m, k, n, extra="", spill=True):
    """A one-`linear` module quantized and placed on `target` (a Target), and its product."""
    module = module_with_data(gemm_ir(m, k, n))
    PassManager(parse_pipeline(f"share{extra},quantize{{format=afloat8}}")).run(module)
    plan_module(module, target)
    allocate(module, target, default_workload(module.graphs), AllocatorOptions(spill=spill))
    graph = module.graphs["t"]
    return module, graph.nodes[1], gemm_of(module, graph.nodes[1], target, graph.arena.level)


# --- the text form ----------------------------------------------------------------------------------------
def test_mapping_text_round_trips_and_rejects_nonsense():
    for text in ("ws.pe 1x128x768x32 order=n bufs=0,0 slots=1,1,2",
                 "os.pe 2x16x64x16 order=k bufs=1,1 slots=2,1,1 stage=o:2x64x64x64"):
        assert Mapping.parse(text).text() == text
    for bad in ("ws.pe 1x128x768x32 order=q bufs=0,0 slots=1,1,2", "os.buf 1x1x1x1 order=m bufs=0,0 slots=1,1,1",
                "ws.pe 0x1x1x1 order=m bufs=0,0 slots=1,1,1"):
        with pytest.raises(FactError):
            Mapping.parse(bad)


def test_mapped_module_prints_parses_and_prints_the_same():
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 16))
    module = PassManager(parse_pipeline("canonicalize,share,plan-activations,allocate{target=edge_accel}")).run(module)
    text = print_module(module)
    assert ' mapping "ws.' in text
    assert print_module(parse_module(text)) == text
    broken = text.replace(' mapping "ws.', ' mapping "xx.', 1)
    with pytest.raises(IRParseError, match="mapping: not a mapping"):
        parse_module(broken)


# --- the search against exhaustive enumeration ------------------------------------------------------------
def small_cases():
    edge = override_target("edge_accel", {"compute.dataflows": ALL_DATAFLOWS})
    dram = override_target("edge_accel_dram", {"compute.dataflows": ALL_DATAFLOWS})
    tpu = override_target("tpu_like", {"memory.sram.holds": ["activations"]})
    yield edge, Gemm(1, 64, 128, 96, 2.0, 0.5, 0.125, 2.0, 2.0, "sram", "rram", "sram", False, 0.5, "afloat<8,3>"), {}
    yield edge, Gemm(4, 32, 16, 32, 2.0, 2.0, 0.0, 2.0, 2.0, "sram", "sram", "sram", True, 1.0, "afloat<8,3>"), {}
    yield dram, Gemm(1, 32, 64, 64, 2.0, 1.0, 0.0, 2.0, 2.0, "sram", "dram", "sram", False, 1.0, "afloat<8,3>",
                     64.0, "dram"), {"sram": 24_000}
    yield dram, Gemm(1, 32, 64, 64, 2.0, 1.0, 0.0, 2.0, 2.0, "dram", "dram", "dram", False, 1.0, "afloat<8,3>"), \
        {"sram": 40_000}
    yield tpu, Gemm(1, 64, 256, 128, 1.0, 1.0, 0.0, 1.0, 2.0, "sram", "dram", "sram", False, 1.0, "int8"), {}


@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("objective", ["balanced", "energy", "latency", "edp"])
@pytest.mark.parametrize("batch", [None, 16])
def test_search_equals_exhaustive_enumeration(case, objective, batch, monkeypatch):
    """Whole (one batch) and by branch and bound (batches of 16 candidates), the search finds the best."""
    if batch:
        monkeypatch.setattr(search_module, "BATCH", batch)
    target, g, free = list(small_cases())[case]
    arch = arch_of(target, free)
    leak = target.leakage_mw * 1000 / target.clock_mhz
    clear_cache()
    found = search(g, arch, objective, leak)
    oracle = exhaustive(g, arch, objective, leak)
    assert found is not None and oracle is not None
    assert objective_value(found, objective, leak) == pytest.approx(objective_value(oracle, objective, leak), rel=1e-9)
    assert len(space(g, arch, prune=True)["df"]) < len(space(g, arch, prune=False)["df"])


def test_where_a_weight_lives_changes_its_best_mapping():
    target = load_target("edge_accel")
    arch = arch_of(target, {"sram": 1_000_000})
    leak = target.leakage_mw * 1000 / target.clock_mhz
    best = {}
    for home in ("sram", "rram", "dram"):
        g = Gemm(1, 128, 768, 768, 2.0, 1.0, 0.0, 2.0, 2.0, "sram", home, "sram", False, 1.0, "afloat<8,3>")
        best[home] = search(g, arch, "balanced", leak)
    # the slow read-energy RRAM (13.7 ns a word) gets another block than the SRAM; the DRAM home is staged
    # through the SRAM instead (its reads are counted, and its cost differs even where the block does not)
    assert best["rram"].mapping != best["sram"].mapping
    assert best["dram"].cycles != best["sram"].cycles or best["dram"].mapping != best["sram"].mapping
    assert best["dram"].reads["dram"] > 0 and "dram" not in best["sram"].reads


def test_repeated_layers_and_tasks_cost_one_search():
    module = load_example(ExampleSpec("adapter-albert", 3, "tiny"), DimSpec(1, 16))
    module = PassManager(parse_pipeline("canonicalize,share,plan-activations")).run(module)
    clear_cache()
    PassManager(parse_pipeline("allocate{target=edge_accel}")).run(module)
    products = [(t, n) for t, g in module.graphs.items() for n in g.nodes if n.mapping is not None]
    shapes = {(n.op, str(n.inputs[0].type), str(n.inputs[1].type)) for _, n in products}
    assert len(products) > 3 * len(shapes)  # many products, few distinct shapes
    assert len(_CACHE) <= 4 * len(shapes)   # a search per shape, weight level and placement round at most


def test_the_lowering_costs_each_chosen_mapping_once(monkeypatch):
    """Lowering every task of a placed module runs the cost model once per distinct product and mapping, not per
    application (ALBERT's layers, every task); lowering again runs it not at all."""
    module = load_example(ExampleSpec("adapter-albert", 3, "tiny"), DimSpec(1, 16))
    module = PassManager(parse_pipeline("canonicalize,share,plan-activations,allocate{target=edge_accel}")).run(module)
    target = load_target("edge_accel")
    calls = []
    real = search_module.evaluate
    monkeypatch.setattr(search_module, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    clear_cache()
    mapped = [(t, n) for t, g in module.graphs.items() for n in g.nodes if n.mapping is not None]
    distinct = {(gemm_of(module, n, target, module.graphs[t].arena.level).key, n.mapping) for t, n in mapped}
    first = [lower(module, target, task) for task in module.graphs]
    assert len(mapped) > 3 * len(distinct)
    assert len(calls) == len(distinct)
    again = [lower(module, target, task) for task in module.graphs]
    assert len(calls) == len(distinct)
    assert [p.to_json() for p in again] == [p.to_json() for p in first]


def test_targets_alike_but_for_their_numbers_do_not_share_searches():
    """The search's cache tells two architectures apart by every number a cost depends on, not by name: a chip
    with the same name, array and leakage but cheaper MACs gets its own figures."""
    target = load_target("edge_accel")
    arch = arch_of(target)
    cheap = dataclasses.replace(arch, mac_pj={f: pj / 2 for f, pj in arch.mac_pj.items()})
    g = Gemm(1, 128, 768, 768, 2.0, 1.0, 0.0, 2.0, 2.0, "sram", "sram", "sram", False, 1.0, "afloat<8,3>")
    clear_cache()
    one, two = search(g, arch), search(g, cheap)
    assert two.energy["pe"] == pytest.approx(one.energy["pe"] / 2)
    assert cost_of(g, cheap, one.mapping).energy["pe"] == pytest.approx(one.energy["pe"] / 2)


# --- the cost model against the simulated block program ---------------------------------------------------
@pytest.mark.parametrize("name, extra, free", [
    ("tpu_like", "", {}),
    ("edge_accel", ",prune{sparsity=0.5}", {}),
    ("edge_accel_dram", "", {"sram": 200_000}),
])
def test_cost_model_agrees_with_the_simulated_blocks(name, extra, free):
    """The program of a product block by block, simulated transfer by transfer, spends the model's energy to
    the picojoule, and takes its cycles to within a few percent on any mapping (the model averages the steps of
    a kind; a product as one instruction takes the model's figures, which is what the allocator expects)."""
    overrides = {"compute.dataflows": ALL_DATAFLOWS} if name != "tpu_like" else {"memory.sram.holds": ["activations"]}
    target = override_target(name, overrides)
    module, node, g = placed_gemm(target, 64, 256, 96, extra)
    arch = arch_of(target, free)
    c = space(g, arch, prune=False)
    costs = evaluate(g, arch, c)
    feeds = {"x": np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)}
    want = run(module, "t", feeds)["y"]
    picks = random.Random(7).sample(list(np.flatnonzero(costs.feasible)), 10)
    errors = []
    for mp in [mapping_at(c, i) for i in picks] + [search(g, arch).mapping]:
        model = cost_of(g, arch, mp)
        node.mapping = mp
        program = lower(module, target, "t", expand=True)
        sim = simulate(program, target)
        dynamic = sum(sim.dynamic.values())
        assert dynamic == pytest.approx(model.dynamic_pj, rel=1e-6), mp.text()
        errors.append(abs(sim.cycles - model.cycles) / sim.cycles)
        np.testing.assert_allclose(execute(program, module, target, feeds)["y"], want, atol=1e-4, rtol=1e-4)
        whole = simulate(lower(module, target, "t"), target)  # one instruction: the model's own figures
        assert whole.cycles == pytest.approx(model.cycles)
        assert sum(whole.dynamic.values()) == pytest.approx(dynamic)
    assert max(errors) < 0.03 and sum(errors) / len(errors) < 0.01 and errors[-1] < 0.01


def test_the_cheap_bound_never_exceeds_the_exact_cycles():
    """Branch and bound leaves out candidates by this bound, so it must be one (and its energy exact)."""
    for target, g, free in small_cases():
        arch = arch_of(target, free)
        c = space(g, arch, prune=False)
        exact, cheap = evaluate(g, arch, c), evaluate(g, arch, c, exact=False)
        ok = exact.feasible
        assert ok.any() and (cheap.cycles[ok] <= exact.cycles[ok] * (1 + 1e-9)).all()
        np.testing.assert_allclose(cheap.total_pj[ok], exact.total_pj[ok], rtol=1e-12)


def test_one_block_stage_tiles_bring_the_next_tile_during_their_step():
    """A stage tile of one block has one step to bring the next tile in; where DRAM binds, that is the time."""
    target = override_target("edge_accel_dram", {"compute.dataflows": ALL_DATAFLOWS})
    module, node, g = placed_gemm(target, 16, 256, 96)
    arch = arch_of(target, {"sram": 12_000})
    c = space(g, arch, prune=False)
    costs = evaluate(g, arch, c)
    one = [i for i in np.flatnonzero(costs.feasible) if c["stage"][i] and c["tn"][i] < g.n
           and all(c["t" + d][i] == c["b" + d][i] for d in "bmkn")]
    assert one
    for i in one[::max(1, len(one) // 6)]:
        node.mapping = mapping_at(c, i)
        sim = simulate(lower(module, target, "t", expand=True), target)
        assert sim.cycles == pytest.approx(cost_of(g, arch, node.mapping).cycles, rel=0.01), node.mapping.text()


# --- functional execution per dataflow --------------------------------------------------------------------
@pytest.mark.parametrize("dataflow", ALL_DATAFLOWS)
def test_every_dataflow_computes_what_the_interpreter_computes(dataflow):
    target = override_target("edge_accel", {"compute.dataflows": [dataflow]})
    rng = np.random.default_rng(3)
    for m, k, n in ((32, 48, 64), (16, 128, 32), (48, 32, 16)):
        module, node, g = placed_gemm(target, m, k, n)
        assert node.mapping.dataflow == {"weight_stationary": "ws", "output_stationary": "os",
                                         "input_stationary": "is"}[dataflow]
        feeds = {"x": rng.standard_normal((m, k)).astype(np.float32)}
        got = execute(lower(module, target, "t"), module, target, feeds)["y"]
        np.testing.assert_allclose(got, run(module, "t", feeds)["y"], atol=1e-4, rtol=1e-4)
    model = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 16))
    model = PassManager(parse_pipeline("canonicalize,share,compress{policy=edgebert}")).run(model)
    plan_module(model, target)
    allocate(model, target, default_workload(model.graphs))
    assert_programs_match_interpreter(model, target, 1, seed=2)


def test_a_product_as_one_instruction_sums_its_blocks_as_the_block_program_does():
    """Functional execution runs a mapped product given as one instruction block by block in its mapping's
    order: for any mapping, the bits of the program lowered block by block (fills, slots, partial sums, drains).
    Mappings that cut the reduction differently sum in other orders, and give other bits: the check sees it."""
    target = override_target("edge_accel", {"compute.dataflows": ALL_DATAFLOWS})
    module, node, g = placed_gemm(target, 48, 384, 80)
    arch = arch_of(target)
    c = space(g, arch, prune=False)
    costs = evaluate(g, arch, c)
    feeds = {"x": np.random.default_rng(4).standard_normal((48, 384)).astype(np.float32)}
    picks = random.Random(11).sample(list(np.flatnonzero(costs.feasible)), 12)
    outputs = set()
    for mp in [mapping_at(c, i) for i in picks] + [search(g, arch).mapping]:
        node.mapping = mp
        whole = execute(lower(module, target, "t"), module, target, feeds)["y"]
        blocks = execute(lower(module, target, "t", expand=True), module, target, feeds)["y"]
        assert whole.tobytes() == blocks.tobytes(), mp.text()
        outputs.add(whole.tobytes())
    assert len(outputs) > 1


# --- the allocator's expected energy is the simulated one -------------------------------------------------
@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
@pytest.mark.parametrize("name", builtin_targets())
def test_allocator_expects_the_energy_the_simulation_spends(name, family):
    module = load_example(ExampleSpec(family, 2, "tiny"), DimSpec(1, 16))
    manager = PassManager(parse_pipeline(f"canonicalize,share,compress{{policy=edgebert}},"
                                         f"plan-activations{{target={name}}},allocate{{target={name},spill=true}}"))
    module = manager.run(module)
    allocation = manager.analyses.get(Allocation)
    backend = run_backend(module, load_target(name), allocation.workload, Stream(20))
    simulated = backend.stream.energy_per_inference_pj
    assert allocation.solution.objective == pytest.approx(simulated, rel=0.01)
    assert allocation.layers and all(c.mapping is not None for c in allocation.layers.values())


@pytest.mark.parametrize("wakeup", [1, 100])
@pytest.mark.parametrize("name", builtin_targets())
def test_allocator_expects_the_static_energy_of_a_busy_chip(name, wakeup, tmp_path):
    """At 1000 inferences a second leakage by bank state and DRAM background weigh as much as the traffic: the
    allocator's linearised static model stays within 5 % of the simulated stream (its approximations: a DRAM
    in self-refresh between its transfers inside an inference, where the simulator powers it down between
    close ones; a node's banks counted from its operands' sizes, not their offsets, so the bank layout's
    padding to bank boundaries and the power instructions' dead-bank gating are not priced: 4 % on
    edge_accel_sram kept powered, within 2 % elsewhere)."""
    workload = tmp_path / "w.toml"
    workload.write_text("[workload]\nmix = {cola = 0.5, sst2 = 0.5}\nswitch_rate = 1.0\n"
                        f"inferences_per_wakeup = {wakeup}\ninferences_per_second = 1000\n")
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 16))
    manager = PassManager(parse_pipeline(f"canonicalize,share,compress{{policy=edgebert}},"
                                         f"plan-activations{{target={name}}},"
                                         f"allocate{{target={name},spill=true,workload={workload}}}"))
    module = manager.run(module)
    allocation = manager.analyses.get(Allocation)
    backend = run_backend(module, load_target(name), allocation.workload, Stream(200))
    assert allocation.solution.objective == pytest.approx(backend.stream.energy_per_inference_pj, rel=0.05)


def test_fixed_mapping_keeps_the_column_chunks_and_its_expectation():
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 16))
    manager = PassManager(parse_pipeline("canonicalize,share,plan-activations,"
                                         "allocate{target=edge_accel,mapping=fixed}"))
    module = manager.run(module)
    allocation = manager.analyses.get(Allocation)
    assert all(n.mapping is None for g in module.graphs.values() for n in g.nodes)
    program = lower(module, load_target("edge_accel"), "cola")
    assert any(i.kind == "gemm" and i.cols is not None for i in program.instrs)
    backend = run_backend(module, load_target("edge_accel"), allocation.workload, Stream(20))
    assert allocation.solution.objective == pytest.approx(backend.stream.energy_per_inference_pj, rel=0.01)


TWO_ADDS = """module {
  graph @t(%x: tensor<4x64xf32>, %y: tensor<4x64xf32>) -> ("a": tensor<4x64xf32>, "b": tensor<4x64xf32>) {
    %0 = constant {value = dense<2.0> : tensor<4x64xf32>} : tensor<4x64xf32>
    %1 = add(%x, %y) : tensor<4x64xf32>
    %2 = add(%x, %0) : tensor<4x64xf32>
    return %1, %2
  }
}
"""


def test_nodes_alike_but_for_a_constant_operand_cost_apart():
    """The cost cache keys a node by which operands are data: a constant moves no activation bytes."""
    from aalbert.targets.sim.nodecost import NodeCoster

    module = PassManager(parse_pipeline("plan-activations{target=edge_accel},allocate{target=edge_accel}")).run(
        parse_module(TWO_ADDS))
    graph = module.graphs["t"]
    coster = NodeCoster(module, load_target("edge_accel"))
    two, one = (coster.cost(graph, i, {}, graph.arena.level) for i, n in enumerate(graph.nodes) if n.op == "add")
    level = graph.arena.level
    assert two.reads[level] == 2 * one.reads[level] and two.dynamic_pj > one.dynamic_pj


# --- the cost model by hand ---------------------------------------------------------------------------------
def two_level_arch(buffers: int) -> Arch:
    """A 4x4 weight-stationary array, one register per PE, `buffers` operand buffers of 64 bytes, and one memory
    `mem` holding every operand: 4 bytes per cycle each way, 2 cycles of latency, a DMA of 8 bytes per cycle."""
    mem = Port("mem", read_pj=1.0, write_pj=2.0, read_bw=4.0, write_bw=4.0, latency=2)
    return Arch("hand", 4, 4, ("ws",), False, False, {"int8": 0.25}, reg_entries=1, reg_operand_pj=0.2,
                reg_per_mac_pj=0.1, buffers=buffers, buffer_bytes=64, buffer_read_pj=0.5, buffer_write_pj=0.75,
                mask_bytes=0, mask_read_pj=0.0, mask_write_pj=0.0, aux_read_pj=0.0, aux_write_pj=0.0,
                acc_entries=64, acc_pj=0.3, noc_pj=0.5, dma_bw=8.0, ports={"mem": mem}, via={"mem": None})


HAND_GEMM = Gemm(1, 8, 4, 8, 1.0, 1.0, 0.0, 1.0, 4.0, "mem", "mem", "mem", False, 1.0, "int8")


def test_cost_model_counts_a_small_gemm_as_by_hand():
    """o[8x8] = a[8x4] @ w[4x8], one byte a value, blocks of 4x4x4 (bm bk bn) with m innermost: blocks (m0,n0),
    (m1,n0), (m0,n1), (m1,n1), so n = 4 steps; transitions of loop m: trans[m] = (2 - 1) x 2 = 2, of loop n:
    trans[n] = 1. w (k x n) changes at n's transition only, a (m x k) at both, o (m x n) at both.

    Accesses, Timeloop-style (tile x refills):
    - w, held in the PE registers: a 16-byte tile, filled 1 + trans[n] = 2 times: 32 bytes read from mem, 32
      values written into the PE registers.
    - a, streamed (no buffer): every value once per array tile of n (tiles_sum(8, 4, 4) = 2): 64 bytes read.
    - a, buffered (one 16-byte slot): refilled 1 + trans[m] + trans[n] = 4 times: 64 bytes read from mem and
      written into the buffer, and the array reads its 64 uses from the buffer.
    - o: 16-byte blocks, final at every drain (k is one block): 1 + trans[m] + trans[n] = 4 drains, 64 bytes
      written to mem; nothing to reload. The interconnect carries every mem byte once.

    Cycles: a block's product takes 8 x 1 x 2 / 4 = 4 cycles (b m k_rows n_cols / n). A 16-byte transfer takes
    2 + 16 / 4 = 6 cycles on mem; transfers on mem go one after another; a fill into the only slot of w's
    registers (or a's buffer) waits for the product. Steps: step 1 (+ 8 cycles of array fill and drain),
    step 2 before n's transition, steps 3 and 4.
    - streamed: a streams 16 bytes a step (6 cycles). step 1: max(4 + 8, 6) = 12; step 2: drain 6 + stream 6 on
      mem, then w's fill 6: max(4, 12) + 6 = 18; step 3: drain + stream = 12; step 4: 12. Prologue: w's first
      fill 6; epilogue: the last drain 6. 12 + 18 + 12 + 12 + 6 + 6 = 66.
    - buffered: step 1: a's fill 6 after the product: 12 + 6 = 18; step 2: drain 6, then the fills of a and w:
      6 + 12 = 18; step 3: drain 6, then a's fill: 12; step 4: drain 6. Prologue: the first a and w, 12;
      epilogue 6. 18 + 18 + 12 + 6 + 12 + 6 = 72.
    """
    for bufs, a_read, buf_bytes, cycles in ((0, 64, 0, 66), (1, 64, 64, 72)):
        arch = two_level_arch(bufs)
        mapping = Mapping.parse(f"ws.pe 1x4x4x4 order=m bufs={bufs},0 slots=1,1,1")
        cost = cost_of(HAND_GEMM, arch, mapping)
        assert search_module.fits(HAND_GEMM, arch, mapping)
        assert cost.reads == {"mem": 32 + a_read, "buf": buf_bytes}
        assert cost.writes == {"mem": 64, "buf": buf_bytes}
        assert cost.reg_fills == 32 and cost.acc_accesses == 0 and cost.noc_bytes == 32 + a_read + 64
        assert cost.cycles == cycles
        macs = 8 * 4 * 8
        want = {"pe": macs * 0.25, "pe_regs": macs * 0.1 + 32 * 0.2, "acc": 0.0, "noc": (32 + a_read + 64) * 0.5,
                "mem": (32 + a_read) * 1.0 + 64 * 2.0, "buf": buf_bytes * 0.5 + buf_bytes * 0.75}
        assert cost.energy == pytest.approx(want)
        c = columns_of(HAND_GEMM, [mapping])
        assert evaluate(HAND_GEMM, arch, c, exact=False).cycles[0] <= cycles  # the search's bound is one


def test_every_output_value_is_written_home_once_when_the_reduction_is_one_block():
    """Whatever the mapping, o's home receives each output byte once when k is one block (no partial sums), and
    each input's home sends every byte of it at least once; with k in blocks, at least the outputs."""
    checked = 0
    for target, g, free in small_cases():
        arch = arch_of(target, free)
        c = space(g, arch, prune=False)
        costs = evaluate(g, arch, c)
        ok = costs.feasible
        o_total = g.b * g.m * g.n * g.o_elem
        one_k = c["bk"] == g.k
        staged_o = c["stage"] == 3
        writes = np.broadcast_to(costs.writes[g.o_home], ok.shape)
        assert ok.any() and (one_k & ok).any()
        passing = {arch.via.get(h) for h in (g.a_home, g.w_home, g.o_home, g.bias_home) if h is not None}
        if g.o_home not in passing:  # nothing else is written there
            checked += 1
            np.testing.assert_array_equal(writes[one_k & ok & ~staged_o], o_total)
        assert (writes[ok] >= o_total).all()
        for home, total in ((g.a_home, g.b * g.m * g.k * g.a_elem),
                            (g.w_home, (g.b if g.w_batched else 1) * g.k * g.n * (g.w_elem + g.w_mask))):
            assert (np.broadcast_to(costs.reads[home], ok.shape)[ok] >= total * (1 - 1e-12)).all()
    assert checked >= 3
