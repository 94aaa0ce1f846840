"""plan-activations and allocate: exact on small instances, right on the design cases, verified."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from aalbert.errors import IRVerifyError, OptionError
from aalbert.ir.placement import Placement
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.passes.allocation.record import Allocation
from aalbert.passes.allocation.solvers import (
    ArenaOption,
    BankModel,
    Item,
    Option,
    Problem,
    brute_force,
    solve_greedy,
    solve_milp,
)
from aalbert.passes.allocation.verify import verify_placement
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.hardware.spec import TargetError, load_target
from aalbert.targets.sim.workload import default_workload, load_workload

from .helpers import assert_clean_error, call


# --- the solver on random instances ---------------------------------------------------------------------
def random_problem(seed: int) -> Problem:
    rng = random.Random(seed)
    levels = ["a", "b", "off"]
    caps = {"a": rng.randint(30, 120), "b": rng.randint(30, 120), "off": 10_000}
    tasks = ("t1", "t2")
    items = []
    for i in range(rng.randint(3, 6)):
        size = rng.randint(5, 40)
        owner = rng.choice([tasks, ("t1",), ("t2",)])
        options = []
        for lvl in levels[:2]:
            here = size * rng.choice([1.0, 0.5])  # a task's bytes in volatile memory: there only while it runs
            options.append(Option("resident", lvl, None, rng.uniform(1, 100), resident=((lvl, size),),
                                  present=((lvl, here),),
                                  uses_dram=rng.random() < 0.5))
        options.append(Option("streamed", "off", None, rng.uniform(50, 300), resident=(("off", size),),
                              uses_dram=True))
        if owner != tasks:
            options.append(Option("staged", "a", "off", rng.uniform(1, 150), resident=(("off", size),),
                                  swap=(("a", size),), uses_dram=True))
        items.append(Item(f"w{i}", owner, options))
    arena = [ArenaOption(lvl, rng.randint(5, 30), rng.uniform(1, 50)) for lvl in ("a", "b")]
    # static energy: banks of 16 bytes in "a" and 25 in "b" (held ones cost more than empty ones) and a DRAM
    # that costs something when any chosen option needs it
    banks = [BankModel("a", 16, -(-caps["a"] // 16), rng.uniform(5, 40), rng.uniform(0, 5)),
             BankModel("b", 25, -(-caps["b"] // 25), rng.uniform(5, 40), rng.uniform(0, 5))]
    return Problem(items, caps, arena, tasks, banks=banks, dram_pj=rng.uniform(0, 200),
                   constant_pj=rng.uniform(0, 100))


@pytest.mark.parametrize("seed", range(40))
def test_ilp_equals_brute_force_and_greedy_is_never_better(seed):
    problem = random_problem(seed)
    exact = brute_force(problem)
    ilp = solve_milp(problem)
    if exact is None:
        assert ilp is None
        return
    assert ilp is not None and ilp.objective == pytest.approx(exact.objective, rel=1e-6, abs=1e-6)
    greedy = solve_greedy(problem)
    if greedy is not None:
        assert greedy.objective >= exact.objective - 1e-6
    lp = solve_milp(problem, relax=True)
    assert lp.objective <= exact.objective + 1e-6  # the LP relaxation bounds every placement from below


# --- plan-activations -----------------------------------------------------------------------------------
def test_plan_is_within_live_bytes_on_a_real_model():
    from aalbert.ir.analysis import activation_buffers

    module = load_example(ExampleSpec("adapter-albert", 1, "tiny"), DimSpec(1, 32))
    PassManager(parse_pipeline("canonicalize,plan-activations")).run(module)
    graph = module.graphs["cola"]
    bufs, _ = activation_buffers(graph, 16, 64)
    live_peak = max(sum(b.size for b in bufs if b.start <= i <= b.end) for i in range(-1, len(graph.nodes) + 1))
    assert live_peak <= graph.arena.size < graph.arena.total
    assert graph.arena.size <= 1.5 * live_peak  # greedy by size stays near the lower bound here


# --- the design cases -----------------------------------------------------------------------------------
def compiled(family: str, tasks: int = 8, size: str = "base"):
    module = load_example(ExampleSpec(family, tasks, size), DimSpec(1, 128 if size == "base" else 16))
    return PassManager(parse_pipeline("canonicalize,share,compress{policy=edgebert},"
                                      "plan-activations{target=edge_accel}")).run(module)


@pytest.fixture(scope="module")
def adapter_base():
    return compiled("adapter-albert")


def allocated(module, pipeline: str) -> Allocation:
    """Run an allocate pipeline; the allocation the pass manager kept."""
    manager = PassManager(parse_pipeline(pipeline))
    manager.run(module)
    return manager.analyses.get(Allocation)


def test_adapter_albert_on_edge_accel_backbone_in_rram_tasks_in_sram(adapter_base):
    module = adapter_base
    a = allocated(module, "allocate{target=edge_accel}")
    shared = [w for w in module.weights.values() if w.role.shared]
    own = [w for w in module.weights.values() if not w.role.shared]
    assert shared and all(w.placement.level == "rram" for w in shared)
    assert own and all(w.placement.level == "sram" and w.placement.residency == "resident" for w in own)
    assert {w.role.kind for w in own} == {"adapter", "layernorm", "head"}
    assert all(g.arena.level == "sram" for g in module.graphs.values())
    assert a.dram_bytes_per_inference == 0 and set(a.dram_bytes_per_switch.values()) == {0}
    assert a.solution.method == "ilp" and a.solution.gap < 1e-6


def test_finetuned_albert_needs_spill_and_reports_dram_traffic(capsys):
    module = compiled("albert")
    with pytest.raises(OptionError, match=r"do not fit edge_accel: they need 57,4\d\d,\d\d\d bytes.*sram 4,194,304"):
        PassManager(parse_pipeline("allocate{target=edge_accel}")).run(module)
    a = allocated(module, "allocate{target=edge_accel,spill=true}")
    assert a.dram_bytes_per_inference > 10e6 and min(a.dram_bytes_per_switch.values()) > 1e6
    assert any(b.startswith("capacity of sram") for b in a.binding)
    assert any("written only once" in b for b in a.binding)
    assert all(w.placement.level != "rram" for w in module.weights.values())


def test_dram_target_streams_every_weight(adapter_base):
    """edge_accel_dram keeps weights only in DRAM: every weight is streamed, every inference."""
    module = adapter_base.copy()
    a = allocated(module, "allocate{target=edge_accel_dram}")
    assert all(w.placement.level == "dram" for w in module.weights.values())
    assert a.dram_bytes_per_inference > 50e6


# --- the verifier ----------------------------------------------------------------------------------------
@pytest.fixture
def placed():
    module = compiled("adapter-albert", tasks=2, size="tiny")
    PassManager(parse_pipeline("allocate{target=edge_accel}")).run(module)
    return module, load_target("edge_accel")


def _move(module, name, **changes):
    w = module.weights[name]
    w.placement = dataclasses.replace(w.placement, **changes)


def test_verifier_accepts_the_allocation(placed):
    verify_placement(*placed)


@pytest.mark.parametrize("corrupt, message", [
    (lambda m, ws: _move(m, ws[1].name, offset=ws[0].placement.offset), "overlap in rram"),
    (lambda m, ws: _move(m, ws[0].name, offset={"rram": 8388608, "sram": 4194304}[ws[0].placement.level] - 64),
     r"of (rram|sram), which has (8,388,608|4,194,304)"),
    (lambda m, ws: _move(m, ws[0].name, level="dram"), None),
    (lambda m, ws: _move(m, ws[0].name, level="l2"), "which edge_accel does not have"),
    (lambda m, ws: setattr(ws[0], "placement", None), "is not placed"),
    (lambda m, ws: setattr(next(iter(m.graphs.values())), "arena",
                           dataclasses.replace(next(iter(m.graphs.values())).arena, level="rram")),
     "arena in rram, which may not hold activations"),
])
def test_verifier_rejects_corrupted_placements(placed, corrupt, message):
    module, target = placed
    shared = sorted((w for w in module.weights.values() if w.role.shared), key=lambda w: -w.nbytes)
    corrupt(module, shared)
    if message is None:  # a weight off chip is a spill: legal, reported, not an error
        verify_placement(module, target)
        return
    with pytest.raises(IRVerifyError, match=message):
        verify_placement(module, target)


def test_verifier_rejects_overlapping_live_activations(placed):
    module, target = placed
    graph = next(iter(module.graphs.values()))
    a, b = [n.output for n in graph.nodes if n.op == "linear"][:2]
    b.offset = a.offset
    with pytest.raises(IRVerifyError, match="are alive together and overlap"):
        verify_placement(module, target)


def test_forbidden_level_for_weights(placed):
    module, target = placed
    w = next(w for w in module.weights.values() if w.role.shared)
    w.placement = Placement("sram", "resident", 0)
    target = dataclasses.replace(target, memories=tuple(dataclasses.replace(m, holds=("activations",))
                                                        if m.name == "sram" else m for m in target.memories))
    with pytest.raises(IRVerifyError, match="which may not hold weights"):
        verify_placement(module, target)


# --- workloads and the command line ----------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ('[workload]\nswitch_rate = 2\n', "key 'switch_rate' must be a number in [0.0, 1.0], got 2"),
    ('[workload]\nmix = { cola = 1, wnli = 1 }\n', "key 'mix' names task 'wnli', which is not compiled"),
    ('[workload]\nmix = { cola = -1 }\n', "mix share of 'cola' must be a non-negative number"),
    ('[workload]\nswich_rate = 0.5\n', "[workload]: unknown key 'swich_rate'"),
    ('[workloads]\n', "expected one [workload] table"),
    ('[workload]\ninferences_per_wakeup = 0\n', "key 'inferences_per_wakeup' must be a number in [1.0"),
])
def test_bad_workloads(tmp_path, capsys, text, message):
    (tmp_path / "w.toml").write_text(text)
    with pytest.raises(TargetError, match=None) as e:
        load_workload(str(tmp_path / "w.toml"), ["cola", "sst2"])
    assert message in str(e.value) and str(tmp_path / "w.toml") in str(e.value)
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--target", "edge_accel",
                                          "--workload", tmp_path / "w.toml"], capsys, message)


def test_workload_file_and_default():
    assert default_workload(["a", "b"]).mix == {"a": 0.5, "b": 0.5}


def test_compile_with_target_writes_reports(tmp_path, capsys):
    out_json, out_png = tmp_path / "m.json", tmp_path / "m.png"
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--compress",
                                             "edgebert", "--target", "edge_accel", "--report-json", out_json,
                                             "--memory-map", out_png], capsys)
    assert code == 0, err
    assert "memory map on edge_accel" in out and "allocation (optimal)" in out
    data = json.loads(out_json.read_text())
    assert {lvl["name"] for lvl in data["levels"]} == {"rram", "sram", "dram"}
    assert data["allocation"]["dram_bytes_per_inference"] == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out_svg = tmp_path / "m.svg"
    code, _, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--target",
                                           "edge_accel", "--memory-map", out_svg], capsys)
    assert code == 0, err
    assert out_svg.read_text().lstrip().startswith("<?xml") and "memory map on edge_accel" in out_svg.read_text()


def test_the_allocation_reports_a_bound_and_the_gap_computed_from_it(capsys):
    """The objective, the bound and the gap on the allocation line agree with each other (ALBERT with spilling:
    there the LP relaxation alone is looser than branch and bound's bound)."""
    import re

    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "3", "--seq-len", "16", "--example",
                                             "albert", "--target", "edge_accel_dram", "--requests", "0"], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("allocation ("))
    m = re.search(r": ([\d.]+) uJ per inference .* bound ([\d.]+) uJ "
                  r"\((branch and bound|LP relaxation)\), gap ([\d.e+-]+) %", line)
    assert m, line
    objective, bound, gap = float(m.group(1)), float(m.group(2)), float(m.group(4))
    assert bound <= objective
    assert gap == pytest.approx(100 * (objective - bound) / objective, abs=0.06 + 100 * 0.05 / objective)
    module = load_example(ExampleSpec("albert", 3, "tiny"), DimSpec(1, 16))
    manager = PassManager(parse_pipeline("canonicalize,share,allocate{target=edge_accel,spill=true}"))
    manager.run(module)
    a = manager.analyses.get(Allocation)
    s = a.solution
    assert s.bound >= a.lp_bound - 1e-6 * abs(a.lp_bound) and s.bound <= s.objective
    assert s.gap == pytest.approx((s.objective - s.bound) / s.objective)


# --- what no placement satisfies is refused before anything is priced -------------------------------------------
def _unpriced(monkeypatch):
    """Make pricing any node (and so any mapping search) a test failure."""
    from aalbert.targets.sim.nodecost import NodeCoster

    def priced(*_a, **_k):
        raise AssertionError("a node was priced (a mapping searched) before the placement was refused")
    monkeypatch.setattr(NodeCoster, "cost", priced)


def _tiny_module(target):
    from aalbert.passes.plan_activations import plan_module

    module = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 16))
    module = PassManager(parse_pipeline("canonicalize,share")).run(module)
    plan_module(module, target)
    return module, max(g.arena.size for g in module.graphs.values())


def test_no_room_for_blocks_in_transit_is_refused_before_any_search(monkeypatch):
    """Weights that live only in DRAM reach the array through the SRAM; an SRAM the activations fill leaves no room
    for their blocks (the tutorial's tight.toml): refused with the smallest mapping's need, nothing priced."""
    from aalbert.ir.analysis import align_up
    from aalbert.mapper.study.evaluate import override_target
    from aalbert.passes.allocate import allocate
    from aalbert.passes.allocation.problem import AllocatorOptions

    base = load_target("edge_accel_dram")
    module, arena = _tiny_module(base)
    target = override_target("edge_accel_dram", {"memory.sram.capacity_bytes": align_up(arena, base.alignment_bytes),
                                                 "memory.sram.banks": 1})
    _unpriced(monkeypatch)
    with pytest.raises(OptionError, match=r"no room in sram for the blocks in transit of linear .* the smallest "
                                          r"mapping of that layer needs \d+ more"):
        allocate(module, target, default_workload(module.graphs), AllocatorOptions(spill=True))


def test_weights_that_fit_nowhere_are_refused_before_any_search(monkeypatch):
    """One weight larger than every level that may hold it; weights each small enough but too many together."""
    from aalbert.ir.analysis import align_up
    from aalbert.mapper.study.evaluate import override_target
    from aalbert.passes.allocate import allocate
    from aalbert.passes.allocation.problem import AllocatorOptions

    base = load_target("edge_accel")
    module, arena = _tiny_module(base)
    sizes = sorted(align_up(w.nbytes, base.alignment_bytes) for w in module.weights.values())
    under = sizes[-1] - base.alignment_bytes
    _unpriced(monkeypatch)
    small = override_target("edge_accel", {"memory.rram.capacity_bytes": under, "memory.rram.banks": 1,
                                           "memory.sram.capacity_bytes": align_up(arena, base.alignment_bytes),
                                           "memory.sram.banks": 1})
    assert align_up(arena, base.alignment_bytes) < sizes[-1]
    with pytest.raises(OptionError, match=rf"weight @\S+ .*needs {sizes[-1]:,} bytes and no memory of edge_accel "
                                          "that may hold weights has them"):
        allocate(module, small, default_workload(module.graphs), AllocatorOptions())
    room = sum(sizes) // 2 - base.alignment_bytes
    few = override_target("edge_accel", {"memory.rram.capacity_bytes": room, "memory.rram.banks": 1,
                                         "memory.sram.capacity_bytes": align_up(arena, base.alignment_bytes) + room,
                                         "memory.sram.banks": 1})
    assert sizes[-1] <= room
    with pytest.raises(OptionError, match="the weights do not fit"):
        allocate(module, few, default_workload(module.graphs), AllocatorOptions())
