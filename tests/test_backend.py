"""The backend: lowering, timing, energy, functional execution, request streams, traces."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from aalbert.examples.gemm import gemm_ir
from aalbert.ir.interpreter import run
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.cli import run as run_cli
from aalbert.mapper.fidelity import sample_inputs
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.codegen.lower import lower
from aalbert.targets.hardware.spec import load_target
from aalbert.targets.sim.functional import execute
from aalbert.targets.sim.gating import with_power
from aalbert.targets.sim.power import Accesses, memory_image
from aalbert.targets.sim.requests import Pattern, make_stream, read_trace, run_stream
from aalbert.targets.sim.roofline import roofline
from aalbert.targets.sim.timing import component, simulate
from aalbert.targets.sim.trace import chrome_trace

from .helpers import assert_clean_error, call
from .ir_cases import module_with_data
from .program_checks import assert_programs_match_interpreter


def single_gemm(target_name: str, k: int, n: int, m: int = 128, spill: bool = False):
    module = module_with_data(gemm_ir(m, k, n))
    target = load_target(target_name)
    # today's fixed chunking, whose cycles these tests count by hand (mapped products: tests/test_mapping.py)
    pipe = (f"share,quantize{{format=afloat8}},plan-activations{{target={target_name}}},"
            f"allocate{{target={target_name},spill={str(spill).lower()},mapping=fixed}}")
    PassManager(parse_pipeline(pipe)).run(module)
    program = lower(module, target, "t")
    return module, target, program, simulate(program, target)


@pytest.mark.parametrize("target_name, k, n", [("edge_accel", 256, 512), ("edge_accel_dram", 512, 1024),
                                               ("tpu_like", 768, 768)])
def test_single_gemm_cycles_are_the_analytic_count(target_name, k, n):
    module, t, program, sim = single_gemm(target_name, k, n)
    w = module.weights["w"]
    dmas = [i for i in program.instrs if i.kind == "dma"]
    gemms = [i for i in program.instrs if i.kind == "gemm"]
    assert sum(g.n for g in gemms) == n and len(dmas) == len(gemms)
    # the tiling, counted by hand: weight-stationary tiles of R x C, each streaming the 128 rows
    r, c = t.compute.rows, t.compute.cols
    g = [math.ceil(k / r) * math.ceil(x.n / c) * max(128, r) + r + c for x in gemms]
    level = t.level(w.placement.level)
    lat = math.ceil(level.read_latency_ns * t.clock_mhz / 1000)
    d = [lat + x.nbytes / min(t.dma_bytes_per_cycle, level.read_bytes_per_cycle) for x in dmas]
    # two weight-buffer slots: a chunk's transfer waits for the GEMM two chunks back
    dma_end, gemm_end = [], []
    for i in range(len(g)):
        dma_end.append(max(dma_end[i - 1] if i else 0, gemm_end[i - 2] if i > 1 else 0) + d[i])
        gemm_end.append(max(dma_end[i], gemm_end[i - 1] if i else 0) + g[i])
    assert sim.cycles == pytest.approx(gemm_end[-1])
    if len(set(g)) == 1 and len(set(d)) == 1:  # uniform chunks: the closed form of that pipeline
        assert sim.cycles == pytest.approx(d[0] + g[0] + (len(g) - 1) * max(d[0], g[0]))
    compute_bound = 128 * k * n / t.compute.macs_per_cycle
    memory_bound = w.nbytes / min(t.dma_bytes_per_cycle, level.read_bytes_per_cycle)
    assert sim.cycles >= max(compute_bound, memory_bound)


def test_dram_streamed_gemm_is_memory_bound():
    module, t, program, sim = single_gemm("edge_accel_dram", 512, 1024, m=16)  # few rows: little reuse
    assert module.weights["w"].placement.level == "dram"
    dma = sum(sim.finish[i.id] - sim.start[i.id] for i in program.instrs if i.kind == "dma")
    assert sim.busy["pe"] < dma <= sim.cycles


@pytest.fixture(scope="module")
def tiny_placed():
    out = {}
    for family in ("adapter-albert", "albert"):
        for policy in ("", ",compress{policy=edgebert}"):
            module = load_example(ExampleSpec(family, 3, "tiny"), DimSpec(1, 16))
            PassManager(parse_pipeline(f"canonicalize,share{policy},plan-activations,"
                                       "allocate{target=edge_accel,spill=true}")).run(module)
            out[family, bool(policy)] = module
    return out


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_functional_mode_equals_the_interpreter(tiny_placed, family, compressed):
    assert_programs_match_interpreter(tiny_placed[family, compressed], load_target("edge_accel"), 2, seed=5)


@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
def test_tasks_with_one_timing_signature_are_simulated_once(tiny_placed, family):
    """Sharing a simulation between tasks gives what simulating each task gives."""
    module = tiny_placed[family, True]
    target = load_target("edge_accel")
    backend = run_backend(module, target, stream=Stream(0))
    if family == "adapter-albert":  # three heads of two labels, adapters in one memory: one program's timing
        assert backend.same_as == {"sst2": "cola", "mrpc": "cola"}
    image = memory_image(module, target)
    for task in module.graphs:
        program = backend.program(task)   # with its own power instructions
        shared = backend.results[task]
        alone = simulate(program, target, image, shared.after_power_up)
        assert shared.task == task
        assert (shared.cycles, shared.traffic, shared.by_layer) == (alone.cycles, alone.traffic, alone.by_layer)
        assert shared.energy.keys() == alone.energy.keys()
        for key, pj in alone.energy.items():
            assert shared.energy[key] == pytest.approx(pj, rel=1e-9), key
        assert [(i.kind, i.unit, i.reads, i.writes, i.layer) for i in program.instrs if i.kind != "power"] == \
            [(i.kind, i.unit, i.reads, i.writes, i.layer)
             for i in with_power(lower(module, target, task), target, image, Accesses({}), []).instrs]


def test_power_instructions_are_in_the_listing_the_json_and_the_trace(tiny_placed):
    """Every accessed bank of a level gated while idle is woken and gated by instructions of the program, which
    the listing, the JSON and the trace show (a task simulated as another's, with its own banks, too)."""
    module = tiny_placed["adapter-albert", True]
    target = load_target("edge_accel")
    backend = run_backend(module, target, stream=Stream(0))
    image = memory_image(module, target)
    for task in module.graphs:
        program, sim = backend.program(task), backend.traced(task)
        power = [i for i in program.instrs if i.kind == "power"]
        woken = {(i.level, i.bank) for i in power if i.state == "on"}
        accessed = {(b.level, b.offset // target.level(b.level).bank_bytes)
                    for i in program.instrs for b in i.reads + i.writes if b.level in ("sram", "rram")}
        assert woken and woken <= accessed
        for level, bank in woken:     # a bank's accesses each wait (transitively) for a wake-up of that bank
            wakes = [i.id for i in power if (i.level, i.bank, i.state) == (level, bank, "on")]
            assert sim.start[min(wakes)] <= min(sim.start[i.id] for i in program.instrs for b in i.reads + i.writes
                                                if (b.level, b.offset // target.level(level).bank_bytes)
                                                == (level, bank))
        listing = program.asm()
        assert re.search(r"power\.sram\.\d+ +power sram bank \d+ on", listing)
        assert re.search(r"power sram bank \d+ (retention|off)", listing)
        assert any(i.get("state") == "on" and i["kind"] == "power" for i in program.to_json()["instructions"])
        trace = chrome_trace(program, sim)["traceEvents"]
        assert any(e.get("cat") == "power" and e["name"].startswith("power sram bank") for e in trace)
        assert any(e["ph"] == "M" and e["args"]["name"].startswith("power.sram.") for e in trace)
    assert image


@pytest.mark.parametrize("expand", [True, False])
def test_functional_mode_catches_a_missing_dependency(tiny_placed, expand):
    """Block by block (`expand`) or with each mapped product one instruction, the program runs as given: a
    GEMM whose dependency on its operand's producer is dropped starts early and reads wrong bytes."""
    module = tiny_placed["adapter-albert", True]
    target = load_target("edge_accel")
    program = lower(module, target, "cola", expand=expand)
    feeds = sample_inputs(module.graphs["cola"], 1, seed=5)[0]
    want = run(module, "cola", feeds)["logits"]
    sim = simulate(program, target)
    pe = [i for i in program.instrs if i.unit == "pe"]
    # a GEMM that really waited for a producer (the PE was free before its operand was ready); a whole product
    # names the buffers it reads, and waits for the one that writes its operand (not just the layer before)
    victim = next(b for a, b in zip(pe, pe[1:]) if sim.start[b.id] > sim.finish[a.id]
                  and any(program.instrs[d].kind == "vec" and (expand or set(program.instrs[d].writes) & set(b.reads))
                          for d in b.deps))
    assert bool(victim.cycles) is not expand  # one instruction for the whole product, or one block of it
    broken = dataclasses.replace(program, instrs=[dataclasses.replace(i, deps=()) if i is victim else i
                                                  for i in program.instrs])
    from aalbert.targets.sim.functional import ExecutionError
    try:
        got = execute(broken, module, target, feeds)["logits"]
    except ExecutionError as e:  # read bytes nobody wrote, or a weight slot its DMA had not filled
        assert "nothing has written yet" in str(e) or "missing dependency" in str(e)
    else:  # or it read stale data
        assert not np.allclose(got, want, atol=1e-5)


def test_functional_mode_runs_a_whole_product_as_the_program_gives_it(tiny_placed):
    """A mapped product as one instruction: its tile must cover the product, the program must give its mapping,
    and its output may share no byte with its operands (its blocks write while later blocks read)."""
    from aalbert.targets.sim.functional import ExecutionError
    module = tiny_placed["adapter-albert", True]
    target = load_target("edge_accel")
    program = lower(module, target, "cola")
    feeds = sample_inputs(module.graphs["cola"], 1, seed=5)[0]
    victim = next(i for i in program.instrs if i.cycles and i.tile[5] > 16)
    t = victim.tile
    for tile, says in ((t[:7] + (t[7] - 1,), "covers"), (t[:5] + (t[5] // 2,) + t[6:], "covers")):
        short = dataclasses.replace(program, instrs=[dataclasses.replace(i, tile=tile) if i is victim else i
                                                     for i in program.instrs])
        with pytest.raises(ExecutionError, match=says):
            execute(short, module, target, feeds)
    unmapped = dataclasses.replace(program, mappings={k: v for k, v in program.mappings.items() if k != victim.node})
    with pytest.raises(ExecutionError, match="no mapping"):
        execute(unmapped, module, target, feeds)
    garbled = dataclasses.replace(program, mappings=program.mappings | {victim.node: "ws.pe 1x16"})
    with pytest.raises(ExecutionError, match="not a mapping"):
        execute(garbled, module, target, feeds)
    node = module.graphs["cola"].nodes[victim.node]
    moved = node.output.offset
    try:  # the planner let the product write over its own operand
        node.output.offset = node.inputs[0].offset
        with pytest.raises(ExecutionError, match="writes its output over"):
            execute(lower(module, target, "cola"), module, target, feeds)
    finally:
        node.output.offset = moved


def test_energy_adds_up_and_matches_access_counts(tiny_placed):
    module = tiny_placed["adapter-albert", True]
    target = load_target("edge_accel")
    program = lower(module, target, "cola")
    sim = simulate(program, target, memory_image(module, target))
    assert sim.total_pj == pytest.approx(sum(sim.energy.values()))
    dynamic = sum(sim.dynamic.values())
    assert sum(sim.by_layer.values()) == pytest.approx(dynamic)
    assert sum(sim.by_op.values()) == pytest.approx(dynamic)
    assert sum(sim.by_level().values()) == pytest.approx(sum(v for k, v in sim.energy.items()
                                                             if component(k) not in ("pe", "sfu")))
    span = sim.cycles * 1000 / target.clock_mhz
    for m in target.memories:
        reads = sum(rd for i in program.instrs for lvl, rd, _ in i.traffic if lvl == m.name)
        writes = sum(wr for i in program.instrs for lvl, _, wr in i.traffic if lvl == m.name)
        expected = reads * m.read_energy_pj / m.word_bytes + writes * m.write_energy_pj / m.word_bytes
        assert sim.energy.get(m.name, 0.0) == pytest.approx(expected)
        if m.power is None:
            continue
        # every bank spends the whole inference in some state, and is charged its leakage share in it
        times = {state: sim.warm.bank_time.get((m.name, state), 0.0) for state in ("on", "retention", "off")}
        assert sum(times.values()) == pytest.approx(m.banks * span)
        share = {"on": 1.0, "retention": m.power.retention or 0.0, "off": m.power.off}
        for state, t in times.items():
            want = m.bank_leakage_mw * share[state] * t
            assert sim.energy.get(f"leakage:{m.name}:{state}", 0.0) == pytest.approx(want)
    macs = sum(i.macs for i in program.instrs)
    assert macs == sim.macs > 0


def test_trace_is_chrome_json_matching_the_instructions(tiny_placed):
    module = tiny_placed["albert", True]
    target = load_target("edge_accel")
    program = lower(module, target, "cola")
    sim = simulate(program, target)
    trace = json.loads(json.dumps(chrome_trace(program, sim)))
    events = trace["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert len(spans) == len(program.instrs)
    for e in spans:
        assert set(e) >= {"name", "ph", "ts", "dur", "pid", "tid"} and e["ts"] >= 0 and e["dur"] >= 0
        ins = program.instrs[e["args"]["id"]]
        assert names[e["tid"]] == ins.unit
        assert e["ts"] == pytest.approx(sim.start[ins.id] / target.clock_mhz, abs=1e-6)
        assert e["dur"] == pytest.approx((sim.finish[ins.id] - sim.start[ins.id]) / target.clock_mhz, abs=1e-6)


def test_request_streams(tiny_placed):
    module = tiny_placed["albert", True]
    target = load_target("edge_accel")
    results = {t: simulate(lower(module, target, t), target) for t in module.graphs}
    tasks = list(module.graphs)
    rr = run_stream(make_stream(Pattern("round-robin"), tasks, 30, 1000.0), module, target, results, 1e9)
    bursts_of_10 = Pattern("bursts", switch_rate=0.1, burst=10)
    bursts = run_stream(make_stream(bursts_of_10, tasks, 30, 1000.0), module, target, results, 1e9)
    assert rr.switches == 29 and bursts.switches == 2 and rr.power_ups == bursts.power_ups == 1
    cold = run_stream(make_stream(bursts_of_10, tasks, 30, 1000.0), module, target, results, 1)
    assert cold.power_ups == 30 and cold.dram_bytes > bursts.dram_bytes  # SRAM refilled at every power-up
    # stage one task-specific weight: every switch into its task now brings it from DRAM
    staged = module.copy()
    w = next(w for w in staged.weights.values() if w.role.tasks == ("cola",) and w.placement.level == "sram")
    w.placement = dataclasses.replace(w.placement, residency="staged", home="dram", home_offset=0)
    rr2 = run_stream(make_stream(Pattern("round-robin"), tasks, 30, 1000.0), staged, target, results, 1e9)
    bursts2 = run_stream(make_stream(bursts_of_10, tasks, 30, 1000.0), staged, target, results, 1e9)
    # cola runs 10 times round-robin: the power-up before the first loads it either way, 9 switches more
    assert rr2.dram_bytes - rr.dram_bytes == 9 * w.nbytes
    assert bursts2.dram_bytes == bursts.dram_bytes  # in bursts cola runs once, right after the power-up
    assert rr.percentile(50) <= rr.percentile(95) <= rr.percentile(99) <= rr.latencies.max()
    one = min(r.seconds for r in results.values())
    assert rr.latencies.min() == pytest.approx(one) or rr.latencies.min() > one


def test_request_trace_files(tmp_path):
    (tmp_path / "t.txt").write_text("# task arrival\ncola 0.0\nsst2 0.5\ncola\n")
    reqs = read_trace(str(tmp_path / "t.txt"), ["cola", "sst2"], 10.0)
    assert [(r.task, r.arrival) for r in reqs] == [("cola", 0.0), ("sst2", 0.5), ("cola", pytest.approx(0.6))]
    (tmp_path / "bad.txt").write_text("cola 0.1\nwnli 0.2\n")
    from aalbert.errors import AalbertError
    with pytest.raises(AalbertError, match=r"bad.txt:2: task 'wnli' is not compiled"):
        read_trace(str(tmp_path / "bad.txt"), ["cola", "sst2"], 10.0)


def test_compile_emits_programs_traces_and_sim_json(tmp_path, capsys):
    base = ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--compress", "edgebert", "--target", "edge_accel"]
    argv = base + ["--emit", "asm", "-o", tmp_path / "p.asm", "--trace", tmp_path / "t.json", "--sim-json",
                   tmp_path / "s.json", "--requests", "20"]
    code, out, err = call(compile_cli.main, argv, capsys)
    assert code == 0, err
    assert "simulation on edge_accel at 500 MHz" in out and "request stream: 20 round-robin requests" in out
    asm = (tmp_path / "p.asm").read_text()
    assert asm.startswith("; aalbert program: task cola on edge_accel") and " gemm " in asm
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert processes == {1: "cola on edge_accel", 2: "sst2 on edge_accel"}  # every task's program, one process each
    assert all(any(e["ph"] == "X" and e["pid"] == pid for e in events) for pid in processes)
    sims = json.loads((tmp_path / "s.json").read_text())
    assert set(sims["tasks"]) == {"cola", "sst2"} and sims["stream"]["requests"] == 20
    code, out2, _ = call(compile_cli.main, base + ["--emit", "json", "-o", tmp_path / "p.json"], capsys)
    assert code == 0 and json.loads((tmp_path / "p.json").read_text())["programs"][0]["task"] == "cola"


@pytest.mark.parametrize("target_name, k, n, m, bound", [("edge_accel", 256, 512, 128, "compute"),
                                                          ("edge_accel_dram", 512, 1024, 128, "compute"),
                                                          ("edge_accel_dram", 512, 1024, 16, "memory (dram)")])
def test_roofline_of_one_gemm_by_hand(target_name, k, n, m, bound):
    module, t, program, sim = single_gemm(target_name, k, n, m)
    (linear,) = [b for b in roofline(program, sim, t) if b.op == "linear"]
    assert linear.unit == "pe" and linear.shape == f"{m}x{k}x{n}" and linear.ops == m * k * n
    assert linear.compute == m * k * n / t.compute.macs_per_cycle
    w = module.weights["w"]
    per_level = {}
    for ins in program.instrs:
        for lvl, rd, wr in ins.traffic:
            if lvl not in t.memory_names:  # the operand buffers have ports of their own
                continue
            per_level[lvl] = per_level.get(lvl, 0.0) + rd / t.level(lvl).read_bytes_per_cycle + \
                wr / t.level(lvl).write_bytes_per_cycle
    assert linear.memory == max(per_level.values())
    assert linear.level == max(per_level, key=per_level.get)
    assert linear.achieved == sim.cycles  # the program is this one layer
    assert linear.achieved >= linear.compute  # nothing beats the peak
    # weights streamed from DRAM bind the GEMM to DRAM's bandwidth when few rows reuse them
    assert (w.placement.level == "dram") == (target_name == "edge_accel_dram")
    assert linear.bound == bound


def test_compile_reports_and_draws_the_roofline(tmp_path, capsys):
    argv = ["--size", "tiny", "--tasks", "1", "--seq-len", "16", "--target", "edge_accel"]
    code, out, err = call(compile_cli.main, argv + ["--roofline", tmp_path / "r.svg"], capsys)
    assert code == 0, err
    assert "roofline of one 'cola' inference" in out and "compute-bound" in out
    svg = (tmp_path / "r.svg").read_text()
    assert "operational intensity" in svg and "pe peak" in svg
    assert_clean_error(compile_cli.main, argv + ["--roofline", tmp_path / "r.pdf"], capsys,
                       "the picture must be a .png or .svg file", must_not_exist=[tmp_path / "r.pdf"])


def test_run_on_the_target_equals_the_interpreter(tmp_path, capsys, tiny_exports, tiny_inputs):
    from aalbert.ir.fileio import write_npz
    write_npz(tmp_path / "in.npz", tiny_inputs)
    path = tiny_exports["adapter-albert", "torchscript"]["cola"]
    code, out, err = call(run_cli.main, [path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "ref.npz"], capsys)
    assert code == 0, err
    code, out, err = call(run_cli.main, [path, "--inputs", tmp_path / "in.npz", "-o", tmp_path / "acc.npz",
                                         "--target", "edge_accel"], capsys)
    assert code == 0, err
    assert "functional execution of task cola on edge_accel" in out
    np.testing.assert_allclose(np.load(tmp_path / "acc.npz")["logits"], np.load(tmp_path / "ref.npz")["logits"],
                               atol=1e-5)


def test_the_workload_switch_rate_drives_the_stream():
    tasks = ["a", "b", "c", "d"]
    for rate in (0.0, 0.2, 0.7, 1.0):  # round-robin: evenly spread, the rate's share of the requests exactly
        reqs = make_stream(Pattern("round-robin", switch_rate=rate, seed=3), tasks, 2001, 10.0)
        switches = sum(x.task != y.task for x, y in zip(reqs, reqs[1:]))
        assert switches == int(2000 * rate + 1e-9)
    # random: the mix is kept and the switch rate met (a Markov chain with the mix as its stationary law)
    mix = {"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.0}
    reqs = make_stream(Pattern("random", mix, switch_rate=0.3, seed=1), tasks, 4001, 10.0)
    switches = sum(x.task != y.task for x, y in zip(reqs, reqs[1:]))
    assert switches == pytest.approx(4000 * 0.3, rel=0.1)
    for t, share in mix.items():
        assert sum(r.task == t for r in reqs) / len(reqs) == pytest.approx(share, abs=0.04)
    from aalbert.errors import AalbertError
    with pytest.raises(AalbertError, match="at most 0.2 of the requests can switch"):  # (1 - .82) / (1 - .1)
        make_stream(Pattern("random", {"a": 0.9, "b": 0.1}, switch_rate=0.5), ["a", "b"], 10, 10.0)
    with pytest.raises(AalbertError, match="round-robin serves the tasks in turn"):
        make_stream(Pattern("round-robin", {"a": 0.9, "b": 0.1}), ["a", "b"], 10, 10.0)
    with pytest.raises(AalbertError, match="bursts of 8 requests switch task at rate 0.125"):
        make_stream(Pattern("bursts", switch_rate=1.0, burst=8), ["a", "b"], 10, 10.0)


def test_a_workload_file_switch_rate_reaches_the_printed_stream(tmp_path, capsys):
    (tmp_path / "w.toml").write_text("[workload]\nswitch_rate = 0.2\n")
    argv = ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--target", "edge_accel", "--workload",
            str(tmp_path / "w.toml"), "--requests", "200"]
    code, out, err = call(compile_cli.main, argv, capsys)
    assert code == 0, err
    assert "switch rate 0.2," in out
    line = next(x for x in out.splitlines() if x.startswith("request stream:"))
    switches = int(line.split(" task switches")[0].rsplit(" ", 1)[1])
    assert switches == 39, line  # 0.2 x 199, evenly spread
    code, out, err = call(compile_cli.main, argv[:-2] + ["--requests", "20", "--pattern", "bursts", "--burst", "4"],
                          capsys)
    assert code == 2 and "bursts of 4 requests switch task at rate 0.25" in err


def test_compile_reports_memory_off_and_dram_background_with_its_source(capsys):
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--target",
                                             "edge_accel", "--requests", "2"], capsys)
    assert code == 0, err
    # the tiny model leaves most of edge_accel's 4 MiB SRAM and 8 MiB RRAM empty: those banks are off
    rows = [x.split() for x in out.splitlines() if x.startswith(("sram ", "rram ")) and " off " in f" {x} "]
    assert {r[0] for r in rows} == {"sram", "rram"}
    for r in rows:
        share = float(r[r.index("off") + 1])
        assert share > 70.0
    for name in ("edge_accel", "edge_accel_sram", "edge_accel_dram", "tpu_like"):
        code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--compress",
                                                 "edgebert", "--target", name, "--requests", "2"], capsys)
        assert code == 0, err
        line = next(x for x in out.splitlines() if x.startswith("DRAM background of dram"))
        assert re.match(r"DRAM background of dram: [\d.]+ [mun]J \(", line), line
        assert ("DRAMPower" in line) if name != "tpu_like" else "as the target file says" in line


SPLIT_WEIGHT = """
module {
  weight @w : tensor<8x12xf32> hash "0"
  graph @t(%x: tensor<2x8xf32>) -> ("y": tensor<2x4xf32>, "z": tensor<2x8xf32>) {
    %0 = weight {name = @w} : tensor<8x12xf32>
    %1, %2 = split(%0) {axis = 1, sizes = [4, 8]} : tensor<8x4xf32>, tensor<8x8xf32>
    %3 = matmul(%x, %1) : tensor<2x4xf32>
    %4 = matmul(%x, %2) : tensor<2x8xf32>
    return %3, %4
  }
}
"""


def test_a_weight_split_in_the_graph_is_read_where_the_weight_is_kept():
    """A layout op of a weight (an exporter's Split of a fused initializer) moves the weight's bytes from its
    level into the arena; it used to be a DMA with no source, charged to the arena."""
    module = module_with_data(SPLIT_WEIGHT)
    PassManager(parse_pipeline("share,plan-activations{target=edge_accel},allocate{target=edge_accel}")).run(module)
    target = load_target("edge_accel")
    w = module.weights["w"]
    program = lower(module, target, "t")
    (dma,) = [i for i in program.instrs if i.op == "split"]
    assert dma.unit == f"dma.{w.placement.level}" != f"dma.{module.graphs['t'].arena.level}"
    assert (w.placement.level, w.placement.offset, w.nbytes) in [(b.level, b.offset, b.nbytes) for b in dma.reads]
    assert dict((lvl, rd) for lvl, rd, _ in dma.traffic)[w.placement.level] == w.nbytes
    assert simulate(program, target).traffic[w.placement.level][0] >= w.nbytes
    assert_programs_match_interpreter(module, target, samples=2, seed=0)
