"""The study and design-space sweeps: outputs, reproducibility, resuming, Dask, and bad sweep files."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from aalbert.mapper.cli import study as study_cli
from aalbert.mapper.cli import sweep as sweep_cli
from aalbert.mapper.study.sweep import default_cache_dir, load_sweep, pareto, run_sweep

from .helpers import assert_clean_error, call

STUDY_ARGS = ["--size", "tiny", "--tasks", "1,2", "--seq-len", "16", "--requests", "4"]
OUTPUTS = ("study.csv", "study.md", "study_vs_tasks.png", "study_vs_tasks.svg", "study_energy_breakdown.png",
           "study_energy_breakdown.svg")

SWEEP = """\
[sweep]
size = "tiny"
tasks = 2
seq_len = 16
requests = 4

[parameters]
"memory.sram.capacity_bytes" = [1048576, 4194304]
"compression.format" = ["afloat8", "int8"]
"model.bottleneck" = [4, 8]
"""


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """The tiny study, run twice into two directories: one configuration after another in this process, then on
    two worker processes."""
    outs = [tmp_path_factory.mktemp(f"study{i}") / "out" for i in range(2)]
    for out, jobs in zip(outs, ("1", "2")):
        assert study_cli.main(STUDY_ARGS + ["--out", str(out), "--jobs", jobs]) == 0
    return outs


def test_study_writes_every_output(study_run):
    out = study_run[0]
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert (out / "study_vs_tasks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = ET.parse(out / "study_vs_tasks.svg").getroot()
    assert svg.tag.endswith("svg")
    text = (out / "study_vs_tasks.svg").read_text()
    for label in ("number of tasks", "mJ", "mm"):  # axes carry units
        assert label in text, label


def test_study_table_compares_families_on_every_memory(study_run):
    rows = list(csv.DictReader(io.StringIO((study_run[0] / "study.csv").read_text())))
    # 2 families x (3 fixed chips + 4 sized ones) x 2 task counts x 1 policy
    assert len(rows) == 28
    key = {(r["family"], r["target"], int(r["tasks"])): r for r in rows}
    for target in ("edge_accel", "edge_accel_sram", "edge_accel_dram"):
        one, two = key["adapter-albert", target, 1], key["adapter-albert", target, 2]
        a, b = key["adapter-albert", target, 2], key["albert", target, 2]
        # a second fine-tuned copy costs a whole model; a second adapter task only its own weights
        assert int(b["weight_bytes"]) - int(key["albert", target, 1]["weight_bytes"]) > \
            int(two["weight_bytes"]) - int(one["weight_bytes"])
        assert a["shared_bytes"] == one["shared_bytes"] and int(a["shared_bytes"]) > 0
        assert int(b["shared_bytes"]) < int(a["shared_bytes"])
    md = (study_run[0] / "study.md").read_text()
    assert "## 2 tasks, `edgebert` compression" in md
    assert "| edge_accel | adapter-ALBERT |" in md and "| edge_accel_dram | ALBERT |" in md
    assert "| sized: RRAM + SRAM | adapter-ALBERT |" in md and "## Assumptions" in md
    assert "| sized: STT-MRAM + SRAM | adapter-ALBERT |" in md and "| sized: STT-MRAM + SRAM | ALBERT |" in md
    assert "`aalbert-study --size tiny --tasks 1,2 --seq-len 16 --requests 4`" in md
    for baseline in ("same chip: edge_accel", "the paper's", "each on its lowest-energy chip"):
        assert f"| {baseline}" in md


def test_sized_chips_hold_their_configuration_on_chip(study_run):
    rows = list(csv.DictReader(io.StringIO((study_run[0] / "study.csv").read_text())))
    sized = [r for r in rows if r["sized"] == "True"]
    assert {r["architecture"] for r in sized} == {"sram", "rram_sram", "rram_sram_fixed", "mram_sram"}
    for r in sized:  # no weight traffic off chip per inference or per switch, and just the memory it needs
        assert r["fits_on_chip"] == "True" and float(r["dram_bytes_per_inference"]) == 0, r["target"]
        need = int(r["frozen_bytes"]) + int(r["mutable_bytes"]) + int(r["arena_bytes"])
        assert need <= int(r["on_chip_capacity_bytes"]) <= need + 17 * 4096 + 64 * 1024
    # the paper's baseline holds a copy of ALBERT per task: it grows with the tasks, adapter-ALBERT's barely
    by = {(r["family"], r["architecture"], int(r["tasks"])): int(r["frozen_bytes"]) + int(r["mutable_bytes"])
          for r in sized}
    assert by["albert", "sram", 2] - by["albert", "sram", 1] > 4 * (by["adapter-albert", "rram_sram", 2]
                                                                     - by["adapter-albert", "rram_sram", 1])


def test_the_energy_breakdown_figure_shows_every_component_and_sums_to_the_table(study_run):
    from aalbert.mapper.study.grid import StudyConfig
    from aalbert.mapper.study.plots import stack_order
    from aalbert.mapper.study.report import breakdown

    rows = []
    for r in csv.DictReader(io.StringIO((study_run[0] / "study.csv").read_text())):
        rows.append({k: (float(v) if k.startswith("energy_") else int(v) if k == "tasks" else v)
                     for k, v in r.items() if v or not k.startswith("energy_")})  # a row's components, as run
    bars = breakdown(rows, StudyConfig(tasks=[1, 2], size="tiny", seq_len=16, requests=4))
    most = [r for r in rows if r["tasks"] == 2]
    assert len(bars) == len(most) == 2 * 7             # both families on 3 fixed chips and 4 sized ones
    drawn = stack_order(bars)
    for r in most:
        bar = next(v for k, v in bars.items() if k.endswith(r["target"].replace("sized: ", "sized ")) and
                   k.startswith("ALBERT" if r["family"] == "albert" else "adapter"))
        assert sum(bar.values()) == pytest.approx(r["energy_mj"], rel=1e-4), r["target"]
        assert set(bar) <= set(drawn)
        for part in ("pe", "pe_regs", "acc", "noc", "buffers", "sram", "leakage"):
            assert bar.get(part, 0.0) > 0, (r["target"], part)


def test_study_outputs_are_byte_identical_across_runs(study_run):
    """Across runs, and whether the configurations run here or on workers (--jobs 2 names itself nowhere)."""
    for name in OUTPUTS:
        assert (study_run[0] / name).read_bytes() == (study_run[1] / name).read_bytes(), name


def test_sensitivity_varies_every_input_and_says_what_holds(tmp_path):
    out = tmp_path / "out"
    assert study_cli.main(["--size", "tiny", "--tasks", "1", "--seq-len", "16", "--requests", "2", "--sensitivity",
                           "--resolve", "2", "--no-accounting", "--jobs", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "sensitivity.csv").read_text())))
    from aalbert.mapper.study.sensitivity import VARIATIONS
    assert {(r["input"], r["value"]) for r in rows} == {("(built-in values)", "as the targets say")} | {
        (v.input, v.value) for v in VARIATIONS}
    assert {"clock", "SRAM corner", "RRAM point", "DRAM background", "power gating", "write-once rule",
            "technology node"} <= {r["input"] for r in rows}
    # a variation really changes the chip: at 1 GHz the same work takes less time
    by = {(r["input"], r["value"], r["family"], r["architecture"]): r for r in rows}
    fast = by["clock", "1000 MHz", "albert", "edge_accel"]
    base = by["(built-in values)", "as the targets say", "albert", "edge_accel"]
    assert float(fast["clock_mhz"]) == 1000 and float(fast["latency_ms"]) < 0.8 * float(base["latency_ms"])
    assert by["SRAM corner", "LSTP", "albert", "edge_accel"]["memory_models"].count("sram_lstp") == 1
    md = (out / "study.md").read_text()
    assert "## Sensitivity: what holds, what flips" in md and "](sensitivity_tornado.png)" in md
    lines = [x for x in md.splitlines() if x.startswith(("- Holds:", "- Flips:", "- Never holds:"))]
    assert len(lines) == 5  # three baselines, and each family's best chip
    assert (out / "sensitivity_tornado.png").read_bytes()[:4] == b"\x89PNG"
    # the joint analysis: every input's indices with intervals, every conclusion's holds-fraction, and the map
    from aalbert.mapper.study import joint
    indices = list(csv.DictReader(io.StringIO((out / "sensitivity_joint.csv").read_text())))
    names = {p.name for p in joint.parameters([1], True)}  # the study has an STT-MRAM chip
    assert "mram" in names
    ratio = [r for r in indices if r["quantity"] == f"ratio, {joint.PAPER_LABEL}"]
    assert {r["input"] for r in ratio if r["ST"]} == names and all(float(r["ST_conf"]) >= 0 for r in ratio if r["ST"])
    assert any(" x " in r["input"] and r["S2"] for r in ratio)
    holds = list(csv.DictReader(io.StringIO((out / "sensitivity_holds.csv").read_text())))
    assert all(0.0 <= float(r["holds"]) <= 1.0 for r in holds)
    assert any(r["conclusion"].startswith("RRAM saves area") for r in holds)
    assert any(r["conclusion"].startswith("DVFS saves energy") for r in holds)
    assert md.index("## Sensitivity: every input at once") < md.index("### Re-solved at sampled prices") \
        < md.index("## Deployment map") < md.index("## Sensitivity: what holds, what flips")
    resolved = list(csv.DictReader(io.StringIO((out / "sensitivity_resolved.csv").read_text())))
    assert len(resolved) == 2 * 14 and {r["sample"] for r in resolved} == {"0", "1"}  # 2 families x 7 chips
    assert "of the joint distribution" in md and "](deployment_map.png)" in md
    assert (out / "deployment_map.png").read_bytes()[:4] == b"\x89PNG"
    cells = list(csv.DictReader(io.StringIO((out / "deployment_map.csv").read_text())))
    assert len(cells) == 9 and {r["tasks"] for r in cells} == {"1"}


def test_study_rejects_bad_options(tmp_path, capsys):
    assert_clean_error(study_cli.main, ["--targets", "nowhere"], capsys, "nowhere")
    assert_clean_error(study_cli.main, ["--families", "gpt"], capsys, "unknown family 'gpt'")
    assert_clean_error(study_cli.main, ["--tasks", "0-3"], capsys, "task counts must be >= 1")
    assert_clean_error(study_cli.main, ["--exit-requests", "10"], capsys, "--exit-requests sets the length")
    assert_clean_error(study_cli.main, ["--early-exit", "--exit-requests", "0"], capsys, "--exit-requests")
    (tmp_path / "file").write_text("x")
    assert_clean_error(study_cli.main, ["--out", tmp_path / "file"], capsys, "not a directory")
    assert (tmp_path / "file").read_text() == "x"


# --- sweeps -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "space.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def local_rows(sweep_file, tmp_path_factory):
    """The whole sweep computed locally in this process, once."""
    rows, computed = run_sweep(load_sweep(str(sweep_file)), tmp_path_factory.mktemp("cache"), jobs=1)
    assert computed == 8
    return rows


def test_sweep_points_differ_where_their_parameters_do(local_rows):
    assert len(local_rows) == 8 and all(r["feasible"] for r in local_rows)
    by = {(r["memory.sram.capacity_bytes"], r["compression.format"], r["model.bottleneck"]): r for r in local_rows}
    small, big = by[1048576, "afloat8", 8], by[4194304, "afloat8", 8]
    assert big["area_mm2"] > small["area_mm2"] and big["leakage_mw"] > small["leakage_mw"]
    assert by[1048576, "afloat8", 4]["weight_bytes"] < small["weight_bytes"]  # smaller adapters
    assert by[1048576, "int8", 8]["energy_pe_mj"] != small["energy_pe_mj"]  # another MAC energy


def test_pareto_front_is_the_nondominated_set(local_rows):
    front = pareto(local_rows)
    assert front
    keys = ("energy_mj", "area_mm2", "latency_ms")
    for r in local_rows:
        beaten = any(all(q[k] <= r[k] for k in keys) and any(q[k] < r[k] for k in keys) for q in local_rows)
        assert (r in front) == (not beaten)
    worse = dict(front[0], energy_mj=front[0]["energy_mj"] * 2, feasible=True)
    assert worse not in pareto(local_rows + [worse])
    assert pareto([dict(front[0], feasible=False)]) == []


def test_killed_sweep_resumes_with_only_the_missing_points(sweep_file, tmp_path, local_rows):
    cache, out = tmp_path / "cache", tmp_path / "out"
    cmd = [sys.executable, "-m", "aalbert.mapper.cli.sweep", str(sweep_file), "--jobs", "1", "--cache", str(cache),
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(list(cache.glob("*.json"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    cached = len(list(cache.glob("*.json")))
    assert 2 <= cached < 8, "the sweep should have been killed part-way"
    for path in cache.glob("*.json"):  # written atomically: a killed sweep leaves no half-written point
        json.loads(path.read_text())
    rows, computed = run_sweep(load_sweep(str(sweep_file)), cache, jobs=1)
    assert computed == 8 - cached
    assert rows == local_rows
    _, again = run_sweep(load_sweep(str(sweep_file)), cache, jobs=1)
    assert again == 0


def test_sweep_on_a_dask_cluster_matches_the_local_run(sweep_file, tmp_path, local_rows):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster:
        rows, computed = run_sweep(load_sweep(str(sweep_file)), tmp_path / "cache", cluster=cluster.scheduler_address)
    assert computed == 8
    assert rows == local_rows


def test_sweep_command_writes_front_table_and_figure(sweep_file, tmp_path, capsys, local_rows):
    from aalbert.mapper.study.report import csv_text

    out = tmp_path / "out"
    code, stdout, err = call(sweep_cli.main, [sweep_file, "--jobs", "2", "--out", out], capsys)
    assert code == 0, err
    assert (out / "sweep.csv").read_text() == csv_text(local_rows)  # two workers compute what one process does
    assert err == ""  # no progress bar when stderr is not a terminal
    assert "8 points computed, 0 from the cache" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["pareto.png", "pareto.svg", "sweep.csv", "sweep.md"]
    assert len(list(default_cache_dir().glob("*.json"))) >= 8  # the cache lives outside the output
    for name in ("sweep.csv", "sweep.md", "pareto.png", "pareto.svg"):
        assert (out / name).stat().st_size > 0
    assert len((out / "sweep.csv").read_text().splitlines()) == 9
    first = (out / "sweep.md").read_bytes()
    code, stdout, _ = call(sweep_cli.main, [sweep_file, "--out", out], capsys)
    assert code == 0 and "0 points computed, 8 from the cache" in stdout
    assert (out / "sweep.md").read_bytes() == first


def test_infeasible_points_are_recorded_not_fatal(tmp_path):
    path = tmp_path / "tight.toml"
    path.write_text('[sweep]\nsize = "tiny"\ntasks = 1\nseq_len = 16\nrequests = 2\ntarget = "edge_accel_sram"\n'
                    '[parameters]\n"memory.sram.capacity_bytes" = [64, 12582912]\n'
                    '"memory.dram.capacity_bytes" = [64]\n')
    rows, _ = run_sweep(load_sweep(str(path)), tmp_path / "cache", jobs=1)
    tight, roomy = sorted(rows, key=lambda r: r["memory.sram.capacity_bytes"])
    assert roomy["feasible"] and not tight["feasible"]
    # 64 bytes of SRAM cannot hold the activations, which no other level of edge_accel_sram may hold
    assert "the activation arena does not fit edge_accel_sram" in tight["reason"]
    assert pareto(rows) == [roomy]


BAD_SWEEPS = [
    ('[parameters]\n"model.colour" = [1]\n', "unknown parameter 'model.colour'"),
    ('[parameters]\n"model.bottleneck" = []\n', "'model.bottleneck': expected a non-empty list"),
    ('[parameters]\n"model.bottleneck" = 8\n', "'model.bottleneck': expected a non-empty list"),
    ('[parameters]\n"model.bottleneck" = ["big"]\n', "'big' is not int"),
    ('[parameters]\n"workload.switch_rate" = [true]\n', "True is not a finite number"),
    ('[parameters]\n"workload.switch_rate" = [nan]\n', "values must be in [0, 1], got nan"),
    ('[parameters]\n"workload.switch_rate" = [1.5]\n', "values must be in [0, 1], got 1.5"),
    ('[parameters]\n"memory.sram.capacity_bytes" = [1.5]\n', "1.5 is not int"),
    ('[parameters]\n"memory.flash.capacity_bytes" = [1]\n', "no memory level 'flash'"),
    ('[parameters]\n"memory.sram.capacity_bytes" = [-4]\n', "capacity_bytes"),
    ('[parameters]\n"compute.colour" = [1.0]\n', "compute.colour"),
    ('[sweep]\ncolour = 1\n[parameters]\n"model.bottleneck" = [8]\n', "[sweep]: unknown key 'colour'"),
    ('[sweep]\ntasks = "8"\n[parameters]\n"model.bottleneck" = [8]\n', "[sweep] tasks: '8' is not int"),
    ('[sweep]\ntasks = 2\n', "no [parameters] to sweep"),
    ('[sweeps]\n', "unknown table 'sweeps'"),
    ('[parameters\n', "not valid TOML"),
]


@pytest.mark.parametrize("text,match", BAD_SWEEPS, ids=[m for _, m in BAD_SWEEPS])
def test_bad_sweep_files_fail_in_one_line(tmp_path, capsys, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = assert_clean_error(sweep_cli.main, [path, "--out", tmp_path / "out"], capsys, match,
                              must_not_exist=[tmp_path / "out"])
    assert str(path) in line


def test_missing_sweep_file_fails_in_one_line(tmp_path, capsys):
    assert_clean_error(sweep_cli.main, [tmp_path / "none.toml"], capsys, "no such sweep file")


def test_unreachable_cluster_fails_in_one_line(sweep_file, tmp_path, capsys):
    assert_clean_error(sweep_cli.main, [sweep_file, "--cluster", "nowhere", "--out", tmp_path / "out"], capsys,
                       "--cluster nowhere: cannot reach a Dask scheduler", must_not_exist=[tmp_path / "out"])


def test_study_with_early_exit_compares_every_policy_on_every_chip(tmp_path):
    exits = tmp_path / "exits.toml"
    # a target of 20 us: a tiny inference takes about 13 us, so the sweep (8 to 24 us) goes below it
    exits.write_text("[workload]\nlatency_target_ms = 0.02\n\n[exits]\nthreshold = 0.3\nhistogram = [5, 3, 2]\n"
                     "predicted = [[5, 0, 0], [0, 2, 1], [0, 1, 1]]\nsource = \"a test\"\n")
    out = tmp_path / "out"
    assert study_cli.main(["--size", "tiny", "--tasks", "2", "--seq-len", "16", "--requests", "4", "--no-accounting",
                           "--early-exit", "--exits", str(exits), "--exit-requests", "300", "--jobs", "1",
                           "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "study.csv").read_text())))
    on = [r for r in rows if r["early_exit"] == "on"]
    assert len(on) == 14 and len(rows) == 28  # 2 families x 7 chips, with and without off-ramps
    for r in on:
        none, ee, ps = (float(r[f"{k}_energy_mj"]) for k in ("none", "early_exit", "predict_scale"))
        # scaling down may cost more than it saves where little of the energy is on the scaled rail
        assert ee < none and ps < none and float(r["energy_mj"]) == pytest.approx(ps, rel=1e-5)
        assert float(r["early_exit_layers"]) < 3 == int(r["layers"])
        # 300 requests, half of them predicted (those past the first off-ramp), a sixth of those too early
        assert int(r["exit_requests"]) == 300 and int(r["exit_predictions"]) == 150
        assert int(r["predict_scale_forced_exits"]) == int(r["predict_run_on_run_ons"]) == 30
    for r in on:  # the target sweep runs on the template chip
        targets = r["exit_sweep_ms"].split(";")
        assert (targets[0], targets[-1]) == (("0.008", "0.024") if r["architecture"] == "edge_accel" else ("", ""))
    for r in (r for r in on if r["architecture"] == "edge_accel"):
        assert int(r["target_0.008ms_none_deadline_misses"]) == 300  # below every layer's latency
        assert int(r["target_0.024ms_none_deadline_misses"]) == 0
    md = (out / "study.md").read_text()
    assert "## Early exit and DVFS, 2 tasks, `edgebert` compression" in md
    assert "| EdgeBERT (Tambe et al., MICRO 2021), abstract | up to 7 | up to 2.5 | - |" in md
    assert "Why the ratios differ:" in md and "](study_early_exit.png)" in md
    assert "### The latency target swept" in md and "| adapter-ALBERT | 0.008 ms | 300 / " in md
    for figure in ("study_early_exit", "study_exit_targets"):
        assert (out / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"


def test_early_exit_study_options_are_checked_first(tmp_path, capsys):
    assert_clean_error(study_cli.main, ["--exits", tmp_path / "x.toml"], capsys, "add --early-exit")
    # EdgeBERT's histogram has 12 exit points; the tiny models have 3 layers
    assert_clean_error(study_cli.main, ["--size", "tiny", "--early-exit", "--out", tmp_path / "o"], capsys,
                       "key 'histogram' has 12 entries; the tiny models have 3 layers")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("edit, why", [
    (lambda text: re.sub(r'"energy_mj": [^,}]+', '"energy_mj": -5', text), "energy_mj is -5, not a finite number >= 0"),
    (lambda text: re.sub(r'"latency_ms": [^,}]+', '"latency_ms": NaN', text),
     "latency_ms is nan, not a finite number >= 0"),
    (lambda text: text[: len(text) // 2], "not JSON (truncated?)"),
])
def test_invalid_cache_entries_are_computed_again_with_one_line(tmp_path, capsys, edit, why):
    path = tmp_path / "one.toml"
    path.write_text('[sweep]\nsize = "tiny"\ntasks = 1\nseq_len = 16\nrequests = 2\n[parameters]\n'
                    '"model.bottleneck" = [4]\n')
    argv = [path, "--cache", tmp_path / "cache", "--jobs", 1, "--out", tmp_path / "out"]
    code, _, err = call(sweep_cli.main, argv, capsys)
    assert code == 0, err
    (entry,) = (tmp_path / "cache").glob("*.json")
    good = entry.read_text()
    entry.write_text(edit(good))
    code, out, err = call(sweep_cli.main, argv, capsys)
    assert code == 0 and "1 point computed, 0 from the cache" in out, err
    assert err.strip() == f"aalbert-sweep: cache entry {entry}: {why}; computing the point again"
    assert entry.read_text() == good and "-5.000" not in out


def test_study_tables_say_when_a_chip_has_no_area_model(tmp_path, capsys):
    code, out, err = call(study_cli.main, ["--targets", "tpu_like", "--size", "tiny", "--tasks", "1", "--families",
                                           "adapter-albert", "--no-sized", "--no-accounting", "--seq-len", 16,
                                           "--requests", 2, "--out", tmp_path], capsys)
    assert code == 0, err
    text = (tmp_path / "study.md").read_text()
    assert "| tpu_like | adapter-ALBERT |" in text and "| no area model |" in text and "mJ, no area model |" in text
    assert "0.00 mm²" not in text and "0.00 mm²" not in out


def test_study_reports_the_noise_band_of_each_fixed_chip(study_run):
    from aalbert.mapper.reports.summary import num
    from aalbert.mapper.study.report import noise_band

    rows = [{**r, "tasks": int(r["tasks"]), "energy_mj": float(r["energy_mj"]), "sized": r["sized"] == "True"}
            for r in csv.DictReader(io.StringIO((study_run[0] / "study.csv").read_text()))]
    band = noise_band(rows, "edgebert", "adapter-albert", "edge_accel")
    one, two = (next(r["energy_mj"] for r in rows if (r["family"], r["architecture"], r["tasks"], r["sized"])
                     == ("adapter-albert", "edge_accel", n, False)) for n in (1, 2))
    assert (band.lo_mj, band.hi_mj) == (min(one, two), max(one, two))
    assert band.spread == band.step == pytest.approx(abs(two - one) / min(one, two))
    assert noise_band(rows, "edgebert", "adapter-albert", "sram") is None      # a sized chip: it changes with n
    md = (study_run[0] / "study.md").read_text()
    assert "Noise band: energy per inference over 1-2 tasks on each fixed chip" in md
    assert f"adapter-ALBERT on edge_accel {num(band.lo_mj)}-{num(band.hi_mj)} mJ, {band.spread:.2%}" in md
