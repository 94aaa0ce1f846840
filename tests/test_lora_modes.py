"""How a LoRA adapter runs (`passes/lora.py`, `--lora`): unmerged, merged into a copy per task, or merged into one
active copy at a task switch, on the IR decoder's tasks (`tests/decoder_ir.py`), both phases."""

from __future__ import annotations

import numpy as np
import pytest

from aalbert.ir.fileio import load_module, save_module
from aalbert.ir.interpreter import run
from aalbert.ir.module import Module
from aalbert.ir.switch import actives, switch_costs
from aalbert.mapper.backend import Stream
from aalbert.mapper.cli import compile as compile_cli
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.passes.lora import MODES, LoraRewrite
from tests.decoder_ir import TinyDecoder, decoder_module
from tests.helpers import assert_clean_error, call

CFG = TinyDecoder()
ADAPTED = CFG.layers * 2          # q and v of every layer
PROJECTION = CFG.hidden * CFG.hidden


def _compile(mode: str, same: bool) -> tuple[Module, LoraRewrite]:
    manager = PassManager(parse_pipeline(f"canonicalize,share,lora{{mode={mode}}}"))
    module = manager.run(decoder_module(("a", "b"), CFG, same_adapters=same))
    return module, manager.analyses.get(LoraRewrite)


@pytest.fixture(scope="module")
def modes() -> dict[tuple[str, bool], tuple[Module, LoraRewrite]]:
    return {(mode, same): _compile(mode, same) for mode in MODES for same in (False, True)}


def _feeds(graph: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, start = (CFG.prompt, 0) if graph.endswith("/prefill") else (1, CFG.prompt + 2)
    feeds = {"input_ids": rng.integers(0, CFG.vocab, (1, n)), "cache_position": np.arange(start, start + n)}
    for i in range(CFG.layers):
        for kv in ("key", "value"):
            feeds[f"cache.{kv}.{i}"] = rng.standard_normal((1, CFG.heads, CFG.capacity, CFG.head_dim)).astype(
                np.float32)
    return feeds


def _lora_products(module: Module) -> int:
    """Linears that read a LoRA weight."""
    return sum(1 for g in module.graphs.values() for n in g.nodes if n.op == "linear"
               and module.weights[n.inputs[1].producer.attrs["name"].name].role.kind == "lora")


@pytest.mark.parametrize("same", [False, True], ids=["distinct", "identical"])
def test_outputs_equal_across_modes(modes, same):
    """Every graph of both tasks (prefill and decode) gives the same logits and cache in every mode."""
    reference, _ = modes["unmerged", same]
    assert _lora_products(reference) == 2 * ADAPTED * 2 * 2  # two products per pair, two tasks, two phases
    for mode in ("merged", "merge-on-switch"):
        module, _ = modes[mode, same]
        assert _lora_products(module) == 0
        for seed, graph in enumerate(reference.graphs):
            want = run(reference, graph, _feeds(graph, seed))
            got = run(module, graph, _feeds(graph, seed))
            assert want.keys() == got.keys()
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4, err_msg=f"{mode} {graph} {k}")
    a, b = (run(reference, f"{t}/decode", _feeds("a/decode", 0))["logits"] for t in ("a", "b"))
    assert np.allclose(a, b, atol=1e-6) == same  # the tasks differ by their adapters only


@pytest.mark.parametrize("same", [False, True], ids=["distinct", "identical"])
def test_merged_owns_a_copy_of_each_adapted_projection(modes, same):
    """Merged: each task owns exactly its adapted projections (W + B A), no LoRA weight remains, the bases no
    task reads any more are gone, and the shared part shrinks by them."""
    unmerged, _ = modes["unmerged", same]
    module, rewrite = modes["merged", same]
    assert rewrite == LoraRewrite("merged", 2 * ADAPTED, 2 * ADAPTED, 2 * ADAPTED)
    assert not [w for w in module.weights.values() if w.role.kind == "lora"]
    for task in ("a", "b"):
        own = [w for w in module.weights.values() if not w.role.shared]
        mine = [w for w in own if task in w.role.tasks]
        assert [w.role.tasks for w in mine] == [(task,)] * ADAPTED
        assert sum(w.nbytes for w in mine) == ADAPTED * PROJECTION * 4
        for phase in ("prefill", "decode"):
            assert set(mine) <= set(module.used_weights(f"{task}/{phase}"))
    shared = sum(w.nbytes for w in module.weights.values() if w.role.shared)
    before = sum(w.nbytes for w in unmerged.weights.values() if w.role.shared)
    assert shared == before - ADAPTED * PROJECTION * 4


@pytest.mark.parametrize("same", [False, True], ids=["distinct", "identical"])
def test_merge_on_switch_has_one_active_copy_and_its_switch_cost(modes, same):
    """Merge-on-switch: one active copy per adapted projection, read by every graph of both tasks in place of
    the base; each task keeps its pairs (read by its switch, not by an inference); a switch costs the
    products B A, the bytes of W, A and B and the copies written, as counted by hand."""
    module, rewrite = modes["merge-on-switch", same]
    assert rewrite == LoraRewrite("merge-on-switch", 2 * ADAPTED, 2 * ADAPTED, ADAPTED)
    copies = actives(module)
    assert len(copies) == ADAPTED
    for m in copies:
        assert m.active.role.shared and m.active.role.uses == 1
        assert set(m.pairs) == {"a", "b"} and m.pairs["a"][0] is not m.pairs["b"][0]
        assert m.base.role.shared and m.base.role.uses == 0
        for graph in module.graphs:
            used = module.used_weights(graph)
            assert m.active in used and m.base not in used
    pairs = [w for w in module.weights.values() if w.role.kind == "lora"]
    assert len(pairs) == 2 * 2 * ADAPTED and all(w.role.uses == 0 and len(w.role.tasks) == 1 for w in pairs)
    rank = CFG.rank
    for task, cost in switch_costs(module).items():
        assert cost.copies == ADAPTED, task
        assert cost.macs == ADAPTED * CFG.hidden * rank * CFG.hidden
        assert cost.bytes_read == ADAPTED * 4 * (PROJECTION + 2 * CFG.hidden * rank)
        assert cost.bytes_written == ADAPTED * 4 * PROJECTION


def _own_params(report: str) -> dict[str, tuple[int, int]]:
    """Task -> (shared params, own params) from the summary's sharing table."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("task  ") and "own params" in line)
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = (int(cells[1].replace(",", "")), int(cells[2].replace(",", "")))
    return rows


@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lora") / "decoder.ir"
    save_module(decoder_module(("a", "b"), CFG), path)
    return path


def test_option_round_trips_through_the_cli(decoder_file, tmp_path, capsys):
    """--lora runs the mode: the share table's own and shared parameters move by the adapted projections,
    merge-on-switch prints the switch cost, and its dumped module loads back and runs each task right."""
    pairs = 2 * CFG.hidden * CFG.rank
    reports = {}
    for mode in MODES:
        code, out, err = call(compile_cli.main, [decoder_file, "--lora", mode, "--dump-ir", tmp_path / mode],
                              capsys)
        assert code == 0, err
        assert f"LoRA: {mode}: {2 * ADAPTED} pairs" in out
        reports[mode] = _own_params(out)
    base, _ = reports["unmerged"]["a"]
    assert reports["unmerged"] == {"a": (base, ADAPTED * pairs), "b": (base, ADAPTED * pairs)}
    assert reports["merged"]["a"] == (base - ADAPTED * PROJECTION, ADAPTED * PROJECTION)
    assert reports["merge-on-switch"]["b"] == (base + ADAPTED * PROJECTION, ADAPTED * pairs)
    code, out, _ = call(compile_cli.main, [decoder_file, "--lora", "merge-on-switch"], capsys)
    row = next(line.split() for line in out.splitlines() if line.startswith("b ") and len(line.split()) == 5)
    assert row == ["b", str(ADAPTED), f"{ADAPTED * CFG.hidden * CFG.rank * CFG.hidden:,}",
                   f"{ADAPTED * 4 * (PROJECTION + pairs):,}", f"{ADAPTED * 4 * PROJECTION:,}"]
    reloaded = load_module(tmp_path / "merge-on-switch" / "module.ir")
    original = decoder_module(("a", "b"), CFG)
    for graph in ("a/decode", "b/prefill"):
        np.testing.assert_allclose(run(reloaded, graph, _feeds(graph, 3))["logits"],
                                   run(original, graph, _feeds(graph, 3))["logits"], rtol=1e-4, atol=1e-4)


def test_option_on_a_module_without_lora_pairs_is_a_noted_no_op(tmp_path, capsys):
    """A module without LoRA pairs compiles unchanged, and the summary says the mode found nothing to do."""
    from tests.decoder_ir import _phase, _weights

    module = Module()
    base = _weights(module, CFG, np.random.default_rng(0))
    _phase(module, "plain", CFG.prompt, CFG, base, {})
    save_module(module, tmp_path / "plain.ir")
    code, plain, _ = call(compile_cli.main, [tmp_path / "plain.ir"], capsys)
    code2, out, err = call(compile_cli.main, [tmp_path / "plain.ir", "--lora", "merged"], capsys)
    assert code == code2 == 0, err
    assert "LoRA: merged: no LoRA pairs found, the module is unchanged" in out
    assert out.replace(plain, "").strip() == "LoRA: merged: no LoRA pairs found, the module is unchanged"


def test_option_refuses_an_unknown_mode(decoder_file, capsys):
    assert_clean_error(compile_cli.main, [decoder_file, "--lora", "merge"], capsys,
                       "argument --lora: invalid choice: 'merge'")


def _single_phase() -> Module:
    """The decoder's prefill graphs as single-phase tasks a and b: an encoder with LoRA pairs."""
    from tests.decoder_ir import _lora, _phase, _weights

    module, rng = Module(), np.random.default_rng(0)
    base = _weights(module, CFG, rng)
    for task in ("a", "b"):
        _phase(module, task, CFG.prompt, CFG, base, _lora(module, task, CFG, rng, False))
    return module


def test_allocator_keeps_the_active_copy_in_writable_memory():
    """On edge_accel with task weights fixed (so every weight may go to its RRAM, written once), the bases and
    pairs go there, while each active copy, rewritten at every switch, goes to field-writable memory."""
    import dataclasses

    from aalbert.mapper.driver import Placement, Plan, compile_module
    from aalbert.targets.hardware.spec import load_target
    from aalbert.targets.sim.workload import default_workload

    module = _single_phase()
    fixed = dataclasses.replace(default_workload(module.graphs), task_weights_change=False)
    compiled = compile_module(module, "lora", Plan("canonicalize,share,lora{mode=merge-on-switch}", None,
                                                   Placement("edge_accel", fixed), Stream(0)))
    target = load_target("edge_accel")
    copies = actives(compiled.module)
    assert len(copies) == ADAPTED
    for m in copies:
        assert not target.level(m.base.placement.level).field_writable
        assert all(not target.level(w.placement.level).field_writable for pair in m.pairs.values() for w in pair)
        assert target.level(m.active.placement.level).field_writable, m.active.placement


def test_a_switch_charges_the_merge_to_the_stream():
    """Merged on a switch, a request of another task first multiplies out its pairs and rewrites the active
    copies: the stream is charged the MACs `switch_costs` counts, and the copies' bytes, and takes that long;
    a request of the same task on a powered chip is charged nothing."""
    from aalbert.mapper.driver import Placement, Plan, compile_module
    from aalbert.targets.hardware.spec import load_target
    from aalbert.targets.sim.requests import _Charges

    compiled = compile_module(_single_phase(), "lora", Plan("canonicalize,share,lora{mode=merge-on-switch}", None,
                                                            Placement("edge_accel"), Stream(0)))
    target = load_target("edge_accel")
    c = target.compute
    charges = _Charges(compiled.module, target)
    assert charges.merge("b", cold=False, switch=False) == 0.0 and not charges.parts
    cost = switch_costs(compiled.module)["b"]
    cycles = charges.merge("b", cold=False, switch=True)
    assert charges.parts["pe"] == pytest.approx(cost.macs * c.mac_energy(c.matmul_format))
    writes = sum(m.active.nbytes * target.level(m.active.placement.level).write_pj_per_byte
                 for m in actives(compiled.module))
    assert sum(v for k, v in charges.parts.items() if k != "pe") > writes > 0   # reads besides the writes
    assert cycles > cost.macs / c.macs_per_cycle


@pytest.fixture(scope="module")
def one_task() -> dict[str, object]:
    """The decoder with one task, compiled merged and merged on a switch on the all-SRAM chip kept powered."""
    from aalbert.mapper.driver import Placement, Plan, compile_module

    return {mode: compile_module(decoder_module(("a",), CFG), "lora",
                                 Plan(f"canonicalize,share,lora{{mode={mode}}}", None,
                                      Placement("edge_accel_sram", wakeup=1000), Stream(6)))
            for mode in ("merged", "merge-on-switch")}


def test_merge_on_switch_with_one_task_compiles_from_the_cli(tmp_path, capsys):
    """One task: its pair is shared like every weight, and still the task's merge source; the compile passes."""
    save_module(decoder_module(("a",), CFG), tmp_path / "one.ir")
    code, out, err = call(compile_cli.main, [tmp_path / "one.ir", "--lora", "merge-on-switch"], capsys)
    assert code == 0, err
    row = next(line.split() for line in out.splitlines() if line.startswith("a ") and len(line.split()) == 5)
    assert row[:3] == ["a", str(ADAPTED), f"{ADAPTED * CFG.hidden * CFG.rank * CFG.hidden:,}"]


def test_merge_on_switch_with_one_task_merges_once(one_task):
    """With one task, merge-on-switch runs as merged does, plus one merge at the first request: the same
    inferences, no switch, the products B A charged once, and only the first request slower (by the merge and
    the base and pair it also loads at power-up)."""
    from aalbert.targets.sim.requests import _Charges

    merged, on_switch = one_task["merged"].backend, one_task["merge-on-switch"].backend
    module, target = on_switch.module, on_switch.target
    assert [m.pairs.keys() for m in actives(module)] == [{"a"}] * ADAPTED
    for graph, result in merged.results.items():
        assert on_switch.results[graph].cycles == result.cycles
    s0, s1 = merged.stream, on_switch.stream
    assert s0.switches == s1.switches == 0 and s0.power_ups == s1.power_ups == 1
    np.testing.assert_array_equal(s1.latencies[1:], s0.latencies[1:])
    c = target.compute
    cost = switch_costs(module)["a"]
    assert s1.by_component["pe"] - s0.by_component["pe"] == pytest.approx(cost.macs * c.mac_energy(c.matmul_format))
    before, after = _Charges(merged.module, target), _Charges(module, target)
    extra = after.merge("a", cold=True, switch=True) + after.load(after.needed("a", True, True)) \
        - before.load(before.needed("a", True, True))
    assert extra > cost.macs / c.macs_per_cycle
    assert s1.latencies[0] - s0.latencies[0] == pytest.approx(extra * after.cycle_s)
