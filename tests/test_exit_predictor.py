"""Early exit made honest: the exit predictor's errors (a confusion of predicted against actual exit points),
forced exits and run-ons counted per policy, the latency target swept, and percentiles over long streams."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from aalbert.errors import AalbertError
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.mapper.study.grid import StudyConfig, configurations_of
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.hardware.spec import load_target
from aalbert.targets.runtime.sentences import from_histogram
from aalbert.targets.sim.workload import TaskExits, Workload, load_workload

ROOT = Path(__file__).resolve().parents[1]
SHARES = (0.25, 0.25, 0.25, 0.25)
EXACT = tuple(tuple(float(i == j) for j in range(4)) for i in range(4))
# rows: where sentences leave (off-ramps after layers 1-3, then the end); columns: where they were predicted to
WRONG = ((1.0, 0.0, 0.0, 0.0), (0.0, 0.5, 0.5, 0.0), (0.0, 0.5, 0.25, 0.25), (0.0, 0.25, 0.25, 0.5))


@pytest.fixture(scope="module")
def compiled():
    """Tiny adapter-ALBERT, 4 layers (3 off-ramps), two tasks (cola and sst2), compressed, on edge_accel."""
    module = load_example(ExampleSpec("adapter-albert", 2, "tiny", layers=4, off_ramps="classifier"), DimSpec(1, 16))
    module = PassManager(parse_pipeline("canonicalize,share,early-exit,compress{policy=edgebert},"
                                        "plan-activations{target=edge_accel},allocate{target=edge_accel}")).run(module)
    target = load_target("edge_accel")
    full_ms = max(r.seconds for r in run_backend(module, target, stream=Stream(0)).results.values()) * 1e3
    return module, target, full_ms


def _workload(module, target_ms, confusion):
    exits = {t: TaskExits(histogram=SHARES, confusion=confusion, where="w.toml: [exits]") for t in module.graphs}
    return Workload({t: 0.5 for t in module.graphs}, latency_target_ms=target_ms, exits=exits)


# ---------------------------------------------------------------- sentences from a confusion
def test_an_exact_confusion_predicts_what_no_confusion_does():
    plain = from_histogram(SHARES, 200, seed=3)
    assert from_histogram(SHARES, 200, seed=3, confusion=EXACT) == plain
    assert all(s.predicted == s.exit for s in plain)


def test_predictions_follow_the_confusion_row_by_row():
    """400 sentences, 100 leaving at each point: each row's predictions are its shares of 100, and the exits are
    where they would be without a predictor (the confusion only adds where each was predicted)."""
    from aalbert.targets.runtime.sentences import confusion_of

    wrong = from_histogram(SHARES, 400, seed=3, confusion=WRONG)
    assert [s.exit for s in wrong] == [s.exit for s in from_histogram(SHARES, 400, seed=3)]
    assert confusion_of(wrong, 4) == [[100, 0, 0, 0], [0, 50, 50, 0], [0, 50, 25, 25], [0, 25, 25, 50]]
    assert wrong == from_histogram(SHARES, 400, seed=3, confusion=WRONG)  # seeded
    assert [s.predicted for s in wrong] != [s.predicted for s in from_histogram(SHARES, 400, seed=4,
                                                                                 confusion=WRONG)]


# ---------------------------------------------------------------- policies
def test_without_prediction_errors_the_policies_are_as_before(compiled):
    module, target, full_ms = compiled
    plain = run_backend(module, target, _workload(module, 2 * full_ms, None), Stream(40))
    exact = run_backend(module, target, _workload(module, 2 * full_ms, EXACT), Stream(40))
    for name, p in plain.policies.items():
        q = exact.policies[name]
        assert q.stream.energy_per_inference_pj == pytest.approx(p.stream.energy_per_inference_pj, rel=1e-12)
        np.testing.assert_array_equal(q.stream.latencies, p.stream.latencies)
        assert (q.layers, q.points, q.forced, q.run_on, q.under, q.over) == (p.layers, p.points, 0, 0, 0, 0)
    # the run-on policy is predict, then scale when no prediction falls short
    ps, ro = plain.policies["predict-scale"], plain.policies["predict-run-on"]
    assert ro.stream.energy_per_inference_pj == ps.stream.energy_per_inference_pj and ro.layers == ps.layers
    assert ps.predicted == sum(s.exit > 0 for s in plain.sentences) == ps.exact


def test_prediction_errors_are_forced_exits_or_run_ons_and_add_up(compiled):
    from aalbert.targets.runtime.exit_policies import PREDICTING

    module, target, full_ms = compiled
    b = run_backend(module, target, _workload(module, 2 * full_ms, WRONG), Stream(200))
    sentences, cuts = b.sentences, b.exits.layers("cola")
    asked = [s for s in sentences if s.exit > 0]
    early = sum(s.predicted < s.exit for s in asked)
    late = sum(s.predicted > s.exit for s in asked)
    assert early > 0 and late > 0
    for name, p in b.policies.items():
        if name in PREDICTING:
            assert (p.predicted, p.under, p.over) == (len(asked), early, late)
            assert p.exact == sum(s.predicted == s.exit for s in asked) == p.predicted - p.under - p.over
        else:
            assert (p.predicted, p.under, p.over, p.forced, p.run_on) == (0, 0, 0, 0, 0)
    ps, ro, ee = b.policies["predict-scale"], b.policies["predict-run-on"], b.policies["early-exit"]
    assert (ps.forced, ps.run_on) == (early, 0) and (ro.forced, ro.run_on) == (0, early)
    # a forced exit stops at the predicted layer; a run-on goes on to its own off-ramp
    assert ps.layers == [cuts[min(s.exit, s.predicted)] for s in sentences]
    assert ro.layers == ee.layers == [cuts[s.exit] for s in sentences]
    assert ro.stream.energy_per_inference_pj > ps.stream.energy_per_inference_pj
    assert ro.stream.latencies.sum() > ps.stream.latencies.sum()


def test_a_target_below_a_full_inference_misses_and_the_sweep_counts_it(compiled):
    from aalbert.mapper.study.evaluate import target_sweep

    module, target, full_ms = compiled
    wl = _workload(module, full_ms, WRONG)
    b = run_backend(module, target, wl, Stream(100))
    swept = target_sweep(b, wl, (0.5, 1.0, 1.2, 3.0))
    assert swept["exit_sweep_ms"] == ";".join(f"{full_ms * f:g}" for f in (0.5, 1.0, 1.2, 3.0))
    low, high = f"target_{full_ms * 0.5:g}ms", f"target_{full_ms * 3.0:g}ms"
    assert swept[f"{low}_none_deadline_misses"] == 100  # every layer runs longer than half a full inference
    assert swept[f"{high}_none_deadline_misses"] == 0
    for k in ("early_exit", "predict_scale", "predict_run_on"):
        assert swept[f"{low}_{k}_deadline_misses"] > 0
        assert swept[f"{low}_{k}_deadline_misses"] >= swept[f"{high}_{k}_deadline_misses"]
    assert swept[f"{high}_predict_scale_forced_exits"] == b.policies["predict-scale"].forced > 0
    assert swept[f"{high}_predict_run_on_run_ons"] == b.policies["predict-run-on"].run_on > 0
    # at 1.2 times a full inference every sentence run as planned meets the target; a sentence predicted too
    # early and running on at the point chosen for fewer layers does not
    tight = f"target_{full_ms * 1.2:g}ms"
    assert [swept[f"{tight}_{k}_deadline_misses"] for k in ("none", "early_exit", "predict_scale")] == [0, 0, 0]
    assert 0 < swept[f"{tight}_predict_run_on_deadline_misses"] <= b.policies["predict-run-on"].run_on
    # the sweep's run at the workload's own target is the stream's
    mid = f"target_{full_ms:g}ms"
    for name, p in b.policies.items():
        key = name.replace("-", "_")
        assert swept[f"{mid}_{key}_energy_mj"] == pytest.approx(p.stream.energy_per_inference_pj / 1e9, rel=1e-12)
        assert swept[f"{mid}_{key}_deadline_misses"] == p.misses


def test_the_study_sweeps_the_target_across_a_full_inference_over_a_thousand_requests(tmp_path):
    cfg = StudyConfig(tasks=[2], size="tiny", families=["adapter-albert"], targets=["edge_accel_sram", "edge_accel"],
                      sized=False, early_exit=True)
    assert min(cfg.exit_sweep) < 1 < max(cfg.exit_sweep)
    other, template = configurations_of(cfg, tasks=[2], exits=str(tmp_path / "w.toml"))
    assert other.requests == template.requests >= 1000
    # the sweep runs on the template chip, whose rows the study's sweep table and figure show
    assert (template.chip, template.exit_sweep, other.exit_sweep) == ("edge_accel", tuple(cfg.exit_sweep), ())
    assert all(x.requests == cfg.requests for x in configurations_of(cfg))  # the main study keeps its stream


def test_p99_of_a_thousand_requests_is_reached_by_ten_of_them(compiled):
    """The 99th percentile over 1,000 requests is a value at least 10 of them reach, not the one slowest."""
    module, target, full_ms = compiled
    b = run_backend(module, target, _workload(module, 2 * full_ms, WRONG), Stream(1000))
    for p in b.policies.values():
        lat = p.stream.latencies
        assert len(lat) == 1000 and (lat >= p.stream.percentile(99)).sum() >= 10


# ---------------------------------------------------------------- the workload file
def test_edgebert_workload_states_its_predictor_from_the_same_sentences():
    """The built-in file's `predicted` rows count the histogram's sentences again, by where EdgeBERT's table
    predicted them; it loads as shares, and no sentence that needs a prediction is predicted at the first
    off-ramp."""
    text = resources.files("aalbert.examples").joinpath("workloads", "edgebert_sst2.toml").read_text()
    raw = tomllib.loads(text)["exits"]
    assert [sum(row) for row in raw["predicted"]] == raw["histogram"]
    assert all(row[0] == 0 for row in raw["predicted"][1:])
    assert "SST-2 only" in raw["source"]
    with resources.as_file(resources.files("aalbert.examples").joinpath("workloads", "edgebert_sst2.toml")) as path:
        wl = load_workload(str(path), ["sst2", "mnli"])
    e = wl.exits["mnli"]
    assert e.confusion is not None and all(sum(row) == pytest.approx(1.0) for row in e.confusion)
    assert e.confusion[3][4] == pytest.approx(72 / 136)


@pytest.mark.parametrize("text, match", [
    ("histogram = [1, 1]\npredicted = [[1, 0]]\n", "key 'predicted' must be 2 rows"),
    ("histogram = [1, 1]\npredicted = [[1, 0], [1, -1]]\n", "key 'predicted' must be 2 rows"),
    ("histogram = [1, 1]\npredicted = [[1, 0], [0, 0]]\n", "row 2 counts no sentence"),
    ("samples = \"s.npz\"\nthreshold = 0.1\npredicted = [[1]]\n", "key 'predicted' is for a histogram"),
    ("histogram = [1, 1]\npredicted = [[1, 0], [0, 1]]\n[exits.task.cola]\nhistogram = [1, 1, 1]\n",
     "'predicted' has 2 rows; this histogram has 3 exit points"),
])
def test_bad_predicted_tables_are_one_line(tmp_path, text, match):
    path = tmp_path / "w.toml"
    path.write_text("[workload]\nlatency_target_ms = 50\n[exits]\n" + text)
    with pytest.raises(AalbertError) as e:
        load_workload(str(path), ["cola", "stsb"])
    assert match in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)


def test_a_zero_row_is_fine_where_no_sentence_leaves(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text("[workload]\n[exits]\nhistogram = [1, 0]\npredicted = [[1, 0], [0, 0]]\n")
    e = load_workload(str(path), ["cola"]).exits["cola"]
    assert e.confusion == ((1.0, 0.0), (0.0, 1.0))


# ---------------------------------------------------------------- the script that derives the confusion
def test_the_script_counts_edgebert_predictions_as_its_model_does(tmp_path):
    """A toy table: the first entropy's nearest row says where the later entropies are expected to fall."""
    spec = importlib.util.spec_from_file_location("edgebert_exits", ROOT / "benchmarks" / "edgebert_exits.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ramps = script.RAMPS
    lut = np.zeros((100, ramps))
    lut[:, 0] = np.arange(100) * 0.01
    lut[:, 1:] = 0.5
    lut[:50, 3] = 0.1                    # first entropy below 0.5: expected to fall under 0.28 at off-ramp 4
    e = np.full((3, ramps), 0.6)
    e[0, 0] = 0.1                        # leaves at off-ramp 1: no prediction
    e[1, 0], e[1, 5] = 0.3, 0.1          # predicted at off-ramp 4 (point 3), leaves at off-ramp 6 (point 5)
    e[2, 0] = 0.7                        # predicted nowhere: the end, where it leaves
    assert list(script.exit_points(e, 0.28)) == [0, 5, ramps]
    assert list(script.predicted_points(e, lut, 0.28)) == [0, 3, ramps]
    c = np.array(script.confusion(e, lut, 0.28))
    assert c.sum() == 3 and c[0, 0] == c[5, 3] == c[ramps, ramps] == 1
    np.savetxt(tmp_path / "e.txt", np.hstack([e, np.full((3, 1), 0.69)]), delimiter=", ")
    np.savetxt(tmp_path / "lut.csv", lut, delimiter=",")
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "edgebert_exits.py"), "e.txt", "--lut", "lut.csv"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "of 2 sentences predicted (those not leaving after layer 1): 1 exact, 1 too early, 0 too late" in r.stdout
    assert "predicted = [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]," in r.stdout
