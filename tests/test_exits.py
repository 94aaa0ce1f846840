"""Early exit and DVFS: the entropy op, exit tests in the program, where sentences leave, operating points,
the policies, and the command line."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from aalbert.errors import AalbertError
from aalbert.ir.interpreter import run
from aalbert.ir.offramps import ExitError
from aalbert.ir.parser import parse_module
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.exit_samples import measure, stream_sentences
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.codegen.lower import lower
from aalbert.targets.hardware.scaling import delay_fit, energy_fit
from aalbert.targets.hardware.spec import TargetError, at_point, load_target, parse_target, target_text
from aalbert.targets.runtime.exit_policies import choose_point
from aalbert.targets.runtime.sentences import exits_of, from_entropies, from_histogram
from aalbert.targets.sim.power import memory_image
from aalbert.targets.sim.requests import Request
from aalbert.targets.sim.timing import simulate
from aalbert.targets.sim.workload import TaskExits, Workload, load_workload

from .helpers import assert_clean_error, call, needs

EDGEBERT_SST2 = [153, 177, 128, 136, 105, 58, 31, 18, 5, 3, 3, 55]  # see docs/backend.md: EdgeBERT's SST-2 entropies


# ---------------------------------------------------------------- the entropy op
ENTROPY_IR = """module {
  graph @t(%x: tensor<5x3xf32>) -> ("h": tensor<5xf32>, "g": tensor<3xf32>) {
    %0 = entropy(%x) {axis = 1} : tensor<5xf32>
    %1 = entropy(%x) {axis = 0} : tensor<3xf32>
    return %0, %1
  }
}
"""


def _entropy(x: np.ndarray, axis: int) -> np.ndarray:
    p = np.exp(x - x.max(axis=axis, keepdims=True))
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=axis)


def test_entropy_on_the_interpreter_is_numpys():
    module = parse_module(ENTROPY_IR)
    rng = np.random.default_rng(0)
    for scale in (0.01, 1.0, 30.0):  # near-uniform, ordinary and near-certain softmaxes
        x = (rng.standard_normal((5, 3)) * scale).astype(np.float32)
        out = run(module, "t", {"x": x})
        np.testing.assert_allclose(out["h"], _entropy(x.astype(np.float64), 1), atol=2e-6)
        np.testing.assert_allclose(out["g"], _entropy(x.astype(np.float64), 0), atol=2e-6)
    uniform = run(module, "t", {"x": np.zeros((5, 3), np.float32)})
    np.testing.assert_allclose(uniform["h"], math.log(3), rtol=1e-6)


# ---------------------------------------------------------------- where sentences leave
# off-ramp 1 reads x, off-ramp 2 reads 2x: for x = (a, 0) the entropy falls as |a| grows
EXIT_IR = """module {
  graph @t(%x: tensor<1x2xf32>) -> ("exit_logits_1": tensor<1x2xf32>, "exit_logits_2": tensor<1x2xf32>,
                                    "logits": tensor<1x2xf32>) {
    %0 = add(%x, %x) : tensor<1x2xf32>
    %1 = add(%0, %0) : tensor<1x2xf32>
    return %x, %0, %1
  }
}
"""


def _exit_module():
    module = parse_module(EXIT_IR)
    return PassManager(parse_pipeline("early-exit")).run(module)


def test_exit_counting_on_a_model_with_a_known_pattern(tmp_path):
    """H(a) of softmax((a, 0)): 0.693 at 0, 0.582 at 1, 0.362 at 2, 0.090 at 4. At threshold 0.3: a = 4 and -4
    leave at off-ramp 1 (H(a) = 0.09), a = 2 at off-ramp 2 (H(2a) = 0.09), a = 0 and 1 run to the end (H(2) =
    0.36 at best)."""
    a = np.array([0.0, 1.0, 2.0, 4.0, -4.0], np.float32)
    np.savez(tmp_path / "s.npz", x=np.stack([a, np.zeros_like(a)], axis=1))
    module = _exit_module()
    exits = TaskExits(threshold=0.3, samples=str(tmp_path / "s.npz"), where="w.toml: [exits]")
    entropies = measure(module, "t", exits)
    assert entropies.shape == (5, 2)
    np.testing.assert_allclose(entropies[:, 0], _entropy(np.stack([a, 0 * a], 1).astype(np.float64), 1), atol=1e-5)
    assert list(exits_of(entropies, 0.3)) == [2, 2, 1, 0, 0]
    wl = Workload({"t": 1.0}, 0.0, exits={"t": exits})
    sentences, sources = stream_sentences(module, wl, [Request("t", i / 10) for i in range(7)])
    assert [s.exit for s in sentences] == [2, 2, 1, 0, 0, 2, 2]  # the samples in turn
    assert sources["t"].shares == (0.4, 0.2, 0.4) and "measured on 5 samples" in sources["t"].how


def test_predicting_the_exit_from_the_first_entropy():
    """EdgeBERT's table: the later entropies expected from the first one, the mean of the samples that share its
    0.01-nat step. Two sentences share a first entropy: the prediction says both leave at off-ramp 2; the second,
    whose own entropies never fall, is stopped there (a forced exit)."""
    e = np.array([[0.5, 0.1, 0.1], [0.5, 0.5, 0.5], [0.2, 0.2, 0.2], [0.9, 0.9, 0.9]])
    s = from_entropies(e, 0.35)
    assert [x.exit for x in s] == [1, 3, 0, 3]
    assert [x.predicted for x in s] == [1, 1, 0, 3]


def test_a_histogram_gives_its_shares_as_closely_as_whole_sentences_can():
    shares = tuple(c / sum(EDGEBERT_SST2) for c in EDGEBERT_SST2)
    s = from_histogram(shares, 100, seed=1)
    counts = np.bincount([x.exit for x in s], minlength=12)
    assert counts.sum() == 100 and np.abs(counts - np.array(shares) * 100).max() < 1
    assert all(x.predicted == x.exit for x in s)
    assert [x.exit for x in s] != sorted(x.exit for x in s)  # a seeded order, not sorted
    assert [x.exit for x in s] == [x.exit for x in from_histogram(shares, 100, seed=1)]


# ---------------------------------------------------------------- operating points
def test_dvfs_choice_by_hand_for_three_points():
    """First layer 10 s at the top point, then 30, 40 or 55 s at 0.8, 0.7, 0.6 V; switching takes 1 s."""
    rest = [30.0, 40.0, 55.0]
    assert choose_point(10.0, rest, 1.0, 70.0) == 2   # 10 + 1 + 55 = 66 fits
    assert choose_point(10.0, rest, 1.0, 60.0) == 1   # 66 does not, 10 + 1 + 40 = 51 does
    assert choose_point(10.0, rest, 1.0, 45.0) == 0   # neither: the top point (10 + 30 = 40, no switch)
    assert choose_point(10.0, rest, 1.0, 20.0) == 0   # nothing fits: the top point, and a miss


def test_energy_and_clock_scale_with_voltage_as_the_formulas_say():
    t = load_target("edge_accel")
    v0, f0, k = 0.8, 500.0, t.dvfs.leakage_per_volt
    assert [p.voltage_v for p in t.dvfs.points] == [0.8, 0.7, 0.6] and t.dvfs.rail == ("compute", "sfu")
    assert t.dvfs.regulator == "ldo"
    for p in t.dvfs.points[1:]:
        v = p.voltage_v
        q = at_point(t, p)
        drawn = v0 / v  # the LDO fed from 0.8 V draws V_in / V_out times what it delivers
        assert q.clock_mhz == pytest.approx(f0 * delay_fit(16, v0) / delay_fit(16, v), rel=1e-12)
        e = energy_fit(16, v) / energy_fit(16, v0) * drawn
        assert q.compute.mac_energy("afloat<8,3>") == pytest.approx(t.compute.mac_energy("afloat<8,3>") * e, rel=1e-12)
        assert q.sfu.energy_pj_per_element == pytest.approx(t.sfu.energy_pj_per_element * e, rel=1e-12)
        leak = v / v0 * math.exp(k * (v - v0)) * drawn
        assert q.compute.leakage_mw == pytest.approx(t.compute.leakage_mw * leak, rel=1e-12)
        assert q.sfu.leakage_mw == pytest.approx(t.sfu.leakage_mw * leak, rel=1e-12)
        b0, b = t.parts.buffer("input0"), q.parts.buffer("input0")   # LOP SRAM buffers: their own 0.6 V
        assert (b.read_pj_per_byte, b.leakage_mw) == (b0.read_pj_per_byte, b0.leakage_mw)
        s0, s = t.level("sram"), q.level("sram")   # off the rail, at its own 0.6 V: its numbers stay, a word per
        assert (s.read_energy_pj, s.leakage_mw) == (s0.read_energy_pj, s0.leakage_mw)   # bank per (slower) cycle
        assert s.read_bytes_per_cycle == s0.read_bytes_per_cycle
        r0, r = t.level("rram"), q.level("rram")  # off the rail: its numbers, and its bytes per nanosecond, stay
        assert (r.read_energy_pj, r.leakage_mw) == (r0.read_energy_pj, r0.leakage_mw)
        assert r.read_bytes_per_cycle * q.clock_mhz == pytest.approx(r0.read_bytes_per_cycle * f0, rel=1e-12)
        assert q.level("dram").read_bytes_per_cycle * q.clock_mhz == pytest.approx(
            t.level("dram").read_bytes_per_cycle * f0, rel=1e-12)


@pytest.mark.parametrize("edit, match", [
    (("voltages_v = [0.8, 0.7, 0.6]", "voltages_v = [0.9, 0.7]"), "must start at the [clock] voltage 0.8"),
    (("voltages_v = [0.8, 0.7, 0.6]", "voltages_v = [0.8, 0.85]"), "and fall"),
    (("voltages_v = [0.8, 0.7, 0.6]", 'voltages_v = [0.8, "low"]'), "must be a list of numbers"),
    (("voltages_v = [0.8, 0.7, 0.6]", "voltages_v = [0.8, 0.7, 0.6]\nfrequencies_mhz = [500, 600]"),
     "one frequency per voltage"),
    (('rail = ["compute", "sfu"]', 'rail = ["compute", "dram"]'), "names 'dram', which is neither"),
    (('rail = ["compute", "sfu"]', 'rail = ["compute", "sram"]'), "whose numbers hold at its own 0.6 V supply"),
    (('regulator = "ldo"', 'regulator = "buck"'), "key 'regulator' must be one of ideal, ldo"),
    (("transition_ns = 1240", "transition_ns = -1"), "'transition_ns' must be non-negative"),
    (("leakage_per_volt = 1.83", "leakage_per_volt = 1.83\nvoltage = 3"), "unknown key 'voltage'"),
])
def test_bad_dvfs_tables_are_one_line(edit, match):
    text, _ = target_text("edge_accel")
    assert edit[0] in text
    with pytest.raises(TargetError, match=None) as e:
        parse_target(text.replace(edit[0], edit[1]), "chip.toml")
    assert match in str(e.value) and "\n" not in str(e.value) and "chip.toml: [dvfs]" in str(e.value)


def test_dvfs_needs_the_technology_fits():
    text, _ = target_text("edge_accel")
    start, end = text.index("\n[technology]\n"), text.index("\n[compute]\n")
    with pytest.raises(TargetError, match=r"\[dvfs\]: needs \[clock\] voltage_v and a \[technology\] table"):
        parse_target(text[:start] + text[end:], "chip.toml")


# ---------------------------------------------------------------- the program and its costs
@pytest.fixture(scope="module")
def compiled():
    """Tiny adapter-ALBERT, 4 layers (3 off-ramps), two tasks (cola and sst2), compressed, on edge_accel."""
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny", layers=4, off_ramps="classifier"), DimSpec(1, 16))
    module = PassManager(parse_pipeline("canonicalize,share,early-exit,compress{policy=edgebert},"
                                        "plan-activations{target=edge_accel},allocate{target=edge_accel}")).run(module)
    return module, load_target("edge_accel")


def test_exit_tests_fence_the_program(compiled):
    module, target = compiled
    program = lower(module, target, "cola")
    tests = [i.id for i in program.instrs if i.kind == "exit"]
    assert [program.instrs[i].layer for i in tests] == [f"exit test after layer {k}" for k in (1, 2, 3)]
    sim = simulate(program, target, memory_image(module, target), True)
    for t in tests:
        assert all(sim.finish[i] <= sim.finish[t] for i in range(t))
        assert all(sim.start[i] >= sim.finish[t] for i in range(t + 1, len(program.instrs)))
    entropy = [i for i in program.instrs if i.op == "entropy" and i.kind == "vec"]
    assert len(entropy) == 3 and all(i.unit == "sfu" and i.scans == 2 for i in entropy)  # [sfu.scans] entropy


def test_cuts_add_up_to_the_whole_inference(compiled):
    module, target = compiled
    backend = run_backend(module, target, stream=Stream(0))
    costs = backend.exits
    for task in module.graphs:
        r = backend.results[task]
        tl = costs.timeline(task, 0)
        assert tl.ends[-1] == r.cycles and tl.dynamic[-1] == r.dynamic
        assert tl.ends == sorted(tl.ends) and len(tl.ends) == 4
        whole = costs.static(task, 0, -1, 3, True)
        assert whole.energy == pytest.approx(r.cold.energy, rel=1e-12)
        up_to_2 = costs.upto(task, 0, 1, True)
        rest = costs.between(task, 0, 1, 3, True)
        assert up_to_2[0] + rest[0] == pytest.approx(r.seconds, rel=1e-12)
        # leakage is charged per window, so the two halves add up to the whole within a wake-up per gated bank
        # (a bank accessed on both sides of the cut wakes once more)
        wakes = sum(m.banks * m.power.wakeup_pj for m in target.on_chip if m.power and m.power_gating == "idle")
        assert abs(sum(up_to_2[1].values()) + sum(rest[1].values()) - r.total_pj) <= wakes
        for q in (1, 2):  # slower at the lower points; what runs on the rail cheaper, even through the LDO
            assert costs.upto(task, q, 3, True)[0] > costs.upto(task, q - 1, 3, True)[0]
            low, high = costs.upto(task, q, 0, True)[1], costs.upto(task, q - 1, 0, True)[1]
            assert all(low[k] < high[k] for k in ("pe", "sfu", "noc", "pe_regs")), (low, high)
            assert low["sram"] == pytest.approx(high["sram"], rel=1e-12)   # the SRAM at its own supply


def _workload(module, target_ms, histogram=(0.5, 0.2, 0.1, 0.2)):
    exits = {t: TaskExits(histogram=histogram, where="w.toml: [exits]") for t in module.graphs}
    return Workload({t: 0.5 for t in module.graphs}, latency_target_ms=target_ms, exits=exits)


def test_policies_on_a_stream(compiled):
    module, target = compiled
    plain = run_backend(module, target, stream=Stream(40))
    full_ms = max(r.seconds for r in plain.results.values()) * 1e3
    b = run_backend(module, target, _workload(module, 2 * full_ms), Stream(40))
    none, ee, ps = b.policies["none"], b.policies["early-exit"], b.policies["predict-scale"]
    # no early exit is the plain stream
    assert none.stream.energy_per_inference_pj == pytest.approx(plain.stream.energy_per_inference_pj, rel=1e-12)
    np.testing.assert_allclose(none.stream.latencies, plain.stream.latencies, rtol=1e-12)
    assert none.mean_layers == 4 and ee.mean_layers == pytest.approx(0.5 * 1 + 0.2 * 2 + 0.1 * 3 + 0.2 * 4)
    assert ee.stream.energy_per_inference_pj < none.stream.energy_per_inference_pj
    # with twice the full latency to spare, every sentence past the first off-ramp slows to the lowest point
    assert ps.points == {"0.80 V, 500 MHz": 20, "0.60 V, 362 MHz": 20} and ps.misses == 0
    # the rail's energy falls; the whole need not: the SRAM, off the rail, leaks over the longer inference
    assert ps.stream.by_component["pe"] < ee.stream.by_component["pe"]
    assert ps.stream.latencies.mean() > ee.stream.latencies.mean()
    # a target below a full inference: every sentence that runs every layer misses it
    tight = run_backend(module, target, _workload(module, 0.9 * full_ms), Stream(40))
    assert tight.policies["none"].misses == 40 and tight.policies["early-exit"].misses == 8


def test_policy_choices_follow_the_timelines(compiled):
    """Each sentence's point is what choose_point says with the costs' own times."""
    module, target = compiled
    full_ms = run_backend(module, target, stream=Stream(0)).results["cola"].seconds * 1e3
    wl = _workload(module, 1.25 * full_ms, histogram=(0.0, 0.0, 0.0, 1.0))
    b = run_backend(module, target, wl, Stream(4))
    costs = b.exits
    first = costs.upto("cola", 0, 0, True)[0]
    rest = [costs.timeline("cola", q).seconds(3) - costs.timeline("cola", q).seconds(0) for q in range(3)]
    want = choose_point(first, rest, target.dvfs.transition_ns * 1e-9, 1.25 * full_ms / 1e3 - b.requests[0].arrival
                        - (b.policies["none"].stream.latencies[0] - b.results["cola"].seconds))
    assert b.policies["predict-scale"].points == {costs.points[want].label(): 4}


# ---------------------------------------------------------------- workload files
@pytest.mark.parametrize("text, match", [
    ("[exits]\nhistogram = [0.5, 0.4]\n", "shares that sum to 0.9, not 1"),
    ("[exits]\nhistogram = [3, -1]\n", "must list a count or share (>= 0)"),
    ("[exits]\nthreshold = -0.1\nhistogram = [1, 1]\n", "'threshold' must be an entropy in nats, >= 0"),
    ("[exits]\nhistogram = [1, 1]\nsamples = \"s.npz\"\n", "not both"),
    ("[exits]\nthreshold = 0.2\n", "neither a histogram nor samples"),
    ("[exits]\nhistogram = [1, 1]\npolicy = \"x\"\n", "unknown key 'policy'"),
    ("[exits]\nhistogram = [1, 1]\n[exits.task.qqp]\nthreshold = 0.1\n", "names a task that is not compiled"),
])
def test_bad_exit_tables_are_one_line(tmp_path, text, match):
    path = tmp_path / "w.toml"
    path.write_text("[workload]\nlatency_target_ms = 50\n" + text)
    with pytest.raises(AalbertError) as e:
        load_workload(str(path), ["cola", "stsb"])
    assert match in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_latency_target_must_be_positive(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text("[workload]\nlatency_target_ms = 0\n")
    with pytest.raises(AalbertError, match="'latency_target_ms' must be a number"):
        load_workload(str(path), ["cola"])


def test_exit_settings_are_checked_against_the_model(compiled, tmp_path):
    module, _ = compiled
    reqs = [Request("cola", 0.0)]
    wrong = _workload(module, 50, histogram=(0.5, 0.5))
    with pytest.raises(ExitError, match="has 2 entries; task 'cola' has 3 off-ramps .* so it needs 4"):
        stream_sentences(module, wrong, reqs)
    high = dataclasses.replace(wrong, exits={t: TaskExits(threshold=0.8, histogram=(0.25,) * 4, where="w")
                                             for t in module.graphs})
    with pytest.raises(ExitError, match=r"threshold 0.8 for task 'cola' is above ln 2 = 0.693"):
        stream_sentences(module, high, reqs)
    np.savez(tmp_path / "s.npz", input_ids=np.zeros((2, 16), np.int64))
    measured = dataclasses.replace(wrong, exits={t: TaskExits(threshold=0.1, samples=str(tmp_path / "s.npz"),
                                                              where="w") for t in module.graphs})
    sentences, sources = stream_sentences(module, measured, reqs)  # two samples, mask and types by default
    assert len(sentences) == 1 and "measured on 2 samples" in sources["cola"].how
    regression = PassManager(parse_pipeline("early-exit")).run(parse_module(EXIT_IR.replace("1x2xf32", "1x1xf32")))
    measured = Workload({"t": 1.0}, exits={"t": TaskExits(threshold=0.1, samples=str(tmp_path / "s.npz"),
                                                          where="w")})
    with pytest.raises(ExitError, match="task 't''s off-ramps have one output"):
        stream_sentences(regression, measured, [Request("t", 0.0)])


# ---------------------------------------------------------------- the command line
def _write_workload(path, histogram, target_ms=50.0):
    path.write_text(f"[workload]\nlatency_target_ms = {target_ms}\n\n[exits]\nthreshold = 0.28\n"
                    f"histogram = {histogram}\nsource = \"a test\"\n")
    return path


def test_compile_prints_every_policy_and_writes_them_to_the_report_json(tmp_path, capsys):
    w = _write_workload(tmp_path / "w.toml", [4, 3, 2, 1])
    report = tmp_path / "r.json"
    code, out, err = call(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--layers", "4", "--off-ramps",
                                             "--compress", "edgebert", "--target", "edge_accel", "--workload", w,
                                             "--requests", "20", "--report-json", report], capsys)
    assert code == 0, err
    assert "example adapter-albert (tiny, 4 layers, classifier off-ramps, 2 tasks)" in out
    assert "every task: histogram of 10 sentences, threshold 0.28 nats; mean exit layer 2.00 of 4" in out
    rows = {line.split("  ")[0]: line for line in out.splitlines()
            if line.startswith(("no early exit ", "early exit ", "predict, then scale ", "predict, scale, run on "))
            and " of 20 " in line}
    assert len(rows) == 4 and all(" mJ" in r for r in rows.values())
    data = json.loads(report.read_text())["early_exit"]
    assert data["latency_target_s"] == 0.05
    assert set(data["policies"]) == {"none", "early-exit", "predict-scale", "predict-run-on"}
    for p in data["policies"].values():
        assert {"mean", "p99"} <= set(p["latency_s"]) and p["deadline_misses"] >= 0
        assert p["energy_per_inference_pj"] > 0 and p["requests"] == 20
    assert [r["after_layer"] for r in data["exit_points"]] == [1, 2, 3, 4]
    assert len(data["exit_points"][0]["points"]) == 3


def test_compile_refuses_a_histogram_that_does_not_fit_the_model(tmp_path, capsys):
    w = _write_workload(tmp_path / "w.toml", [4, 3, 2])
    assert_clean_error(compile_cli.main, ["--size", "tiny", "--tasks", "2", "--layers", "4", "--off-ramps",
                                          "--compress", "edgebert", "--target", "edge_accel", "--workload", w],
                       capsys, "has 3 entries; task 'cola' has 3 off-ramps")


def test_off_ramps_are_for_the_example(tmp_path, capsys):
    assert_clean_error(compile_cli.main, [tmp_path / "m.onnx", "--off-ramps"], capsys,
                       "--off-ramps adds off-ramps to the built-in example")


@needs("torch", "onnx")
def test_an_imported_model_brings_its_own_off_ramps(tmp_path, capsys):
    """Outputs named exit_logits_<k> are recognized in an ONNX file: the early-exit pass runs by itself."""
    from aalbert.examples.export import export_model
    from aalbert.examples.zoo import FamilySpec, build_family

    model = build_family(FamilySpec("adapter-albert", "tiny", ("cola",), off_ramps="highway"))["cola"]
    path = export_model(model, tmp_path / "cola.onnx", seq_len=16)
    w = _write_workload(tmp_path / "w.toml", [1, 1, 2])
    code, out, err = call(compile_cli.main, [path, "--seq-len", "16", "--compress", "edgebert", "--target",
                                             "edge_accel", "--workload", w, "--requests", "4"], capsys)
    assert code == 0, err
    assert "early exit: 2 off-ramps (exit tests after layers 1-2)" in out and "predict, then scale" in out
    assert "entropy 2" in out  # the ops over all tasks list the two entropy tests


def test_off_ramp_weights_are_the_tasks_own():
    plain = load_example(ExampleSpec("adapter-albert", 2, "tiny"), DimSpec(1, 16))
    ramps = load_example(ExampleSpec("adapter-albert", 2, "tiny", off_ramps="classifier"), DimSpec(1, 16))
    highway = load_example(ExampleSpec("adapter-albert", 2, "tiny", off_ramps="highway"), DimSpec(1, 16))
    pipe = parse_pipeline("canonicalize,share")
    counts = {}
    for name, m in (("plain", plain), ("classifier", ramps), ("highway", highway)):
        PassManager(pipe).run(m)
        own = [w for w in m.weights.values() if not w.role.shared and "cola" in w.role.tasks]
        counts[name] = sum(w.numel for w in own)
        assert all(w.role.kind == "head" for w in own if "off_ramps" in w.name)
    h, labels = 32, 2  # tiny: hidden 32; cola: 2 labels; 3 layers, 2 off-ramps
    assert counts["classifier"] - counts["plain"] == 2 * (h * labels + labels)
    assert counts["highway"] - counts["plain"] == 2 * (h * labels + labels + h * h + h)
