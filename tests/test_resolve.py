"""Re-solving the joint sensitivity's samples: a recompile at the built-in values is the compiled program, a
sample whose prices make another placement better gets it, and the outputs (the CSV, study.md's paragraph and
the caveats on the joint fractions) say what re-solving changed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from aalbert.mapper.cli import study as study_cli
from aalbert.mapper.study import joint, resolve
from aalbert.mapper.study.configuration import counted_row
from aalbert.mapper.study.grid import StudyConfig, configurations_of, run_study

from .helpers import assert_clean_error


@pytest.fixture(scope="module")
def tiny():
    """The tiny study's 2-task configurations, compiled with their counts, and the setups that built them."""
    cfg = StudyConfig(tasks=[2], size="tiny", seq_len=16, requests=2, accounting=False)
    pairs = run_study(cfg, job=counted_row)
    configs = joint.compiled([r for r, _ in pairs], [c for _, c in pairs])
    return configs, configurations_of(cfg)


def _again(c: joint.Compiled, setup, x) -> tuple[joint.Compiled, tuple[str, str]]:
    counts, decided, _ = resolve.resolved_counts(resolve.job_for(c, setup, x))
    return dataclasses.replace(c, counts=counts), decided


def test_a_sample_at_the_built_in_values_recompiles_to_the_compiled_program(tiny):
    configs, setups = tiny
    params = joint.params_for(configs)
    x = joint.builtin_inputs(params)
    for c, setup in zip(configs, setups):
        again, decided = _again(c, setup, x)
        assert c.decisions is not None and decided == c.decisions, (c.family, c.arch)
        assert joint.energy(again, x)[0] == pytest.approx(joint.energy(c, x)[0], rel=1e-9, abs=0)
        if c.low is not None:
            assert joint.dvfs_energy(again, x)[0] == pytest.approx(joint.dvfs_energy(c, x)[0], rel=1e-9, abs=0)


def test_sram_leaking_a_hundred_times_more_moves_the_placement_and_saves_energy(tiny):
    """On edge_accel (RRAM and SRAM on chip), SRAM leakage x100: the recompile places the weights otherwise, and
    its energy at those prices is below the compiled program's (re-pricing's)."""
    configs, setups = tiny
    (c, setup), = [(c, s) for c, s in zip(configs, setups) if (c.family, c.arch) == ("adapter-albert", "edge_accel")]
    assert {m.technology for m in c.target.on_chip} >= {"rram", "sram"}
    x = joint.builtin_inputs(joint.params_for(configs), sram_leakage=100.0)
    again, decided = _again(c, setup, x)
    assert decided[0] != c.decisions[0]
    assert joint.energy(again, x)[0] < joint.energy(c, x)[0] * (1 - 1e-4)


def test_the_csv_has_a_row_per_sample_and_configuration(tiny):
    configs, setups = tiny
    params = joint.params_for(configs)
    o = joint.evaluate_samples(configs, params, joint.inputs(params, joint.sample(params, 4)))
    keep = [i for i, c in enumerate(configs) if c.arch in ("edge_accel", "sram")]
    samples = resolve.run([configs[i] for i in keep], [setups[i] for i in keep], o, 2)
    stride = 2 * len(params) + 2   # SALib's layout: A's row, D rows of AB, D of BA, B's row
    base = o.x["tasks"][::stride]   # the base matrix's rows: the first with the study's task count (2) are taken
    assert [s.row for s in samples] == [stride * int(i) for i in np.flatnonzero(base == 2)[:2]]
    assert samples[0].row != samples[1].row and set(base) == {2.0}  # the one task count compiled
    rows = resolve.rows(samples, 0.0)
    assert len(rows) == 2 * len(keep)
    assert len({(r["sample"], r["family"], r["architecture"]) for r in rows}) == len(rows)
    for r in rows:
        key = (r["family"], r["architecture"])
        assert r["repriced_mj"] == pytest.approx(o.energy[key][r["design_row"]] / 1e9, rel=1e-12)
        assert r["difference"] == pytest.approx(r["resolved_mj"] / r["repriced_mj"] - 1)
        assert r["sram_leakage"] == pytest.approx(o.x["sram_leakage"][r["design_row"]])
        assert 0.0 <= r["allocation_gap"] < 1.0


def _outcome(adapter: dict[str, float], albert: dict[str, float]) -> joint.Outcome:
    energy = {("adapter-albert", a): np.array([v]) for a, v in adapter.items()}
    energy.update({("albert", a): np.array([v]) for a, v in albert.items()})
    return joint.Outcome([], {"tasks": np.array([2.0])}, energy, {}, np.array([math.nan]), list(adapter))


def test_a_conclusion_re_solving_changes_is_reported_with_its_caveat():
    """Re-priced, adapter-ALBERT wins on sized all-SRAM; re-solved, on edge_accel, whose energy fell, while the
    all-SRAM chip's rose (a compiler that is not optimal there): the paragraph names both, and the joint line of
    every claim about adapter-ALBERT's lowest-energy chip carries the caveat."""
    before = _outcome({"edge_accel": 3.0e9, "sram": 2.0e9}, {"edge_accel": 4.0e9, "sram": 4.0e9})
    after = _outcome({"edge_accel": 1.5e9, "sram": 2.2e9}, {"edge_accel": 4.0e9, "sram": 4.0e9})
    changed = {("adapter-albert", "edge_accel"): (True, False), ("adapter-albert", "sram"): (False, True),
               ("albert", "edge_accel"): (False, False), ("albert", "sram"): (False, False)}
    gap = {("adapter-albert", "sram"): 0.01}
    samples = [resolve.Sample(0, {"tasks": np.array([2.0])}, before, after, changed, gap)]
    assert resolve.changes(samples, 0.0) == {"adapter-ALBERT's lowest-energy chip": [
        (0, "sized: all SRAM", "edge_accel")]}
    text = "\n".join(resolve.lines(samples, 0.0, 1, "r.csv"))
    assert "lowered the energy in 1 and raised it in 1" in text
    assert "adapter-ALBERT on sized: all SRAM, design row 0 (+10%, allocation gap 0.01)" in text
    assert "adapter-ALBERT's lowest-energy chip: in 1 of 1 samples (design row 0: sized: all SRAM -> edge_accel)" \
        in text
    assert "| adapter-ALBERT | edge_accel | 1 | 1 / 0 | -50% | -50% |" in text
    concl = joint.conclusions(before)
    lines = [f"- {c.claim}: holds in 100% of the joint distribution." for c in concl]
    noted = resolve.with_caveats(lines, concl, resolve.caveats(samples, 0.0))
    for line, c in zip(noted, concl):
        assert ("changed it in 1 of 1 re-solved samples" in line) == c.claim.startswith("adapter-ALBERT's lowest")
        assert line.endswith(".")


def test_resolve_needs_the_sensitivity_and_a_number_of_samples_the_design_has(tmp_path, capsys):
    assert_clean_error(study_cli.main, ["--resolve", "4", "--out", tmp_path / "o"], capsys, "add --sensitivity")
    assert_clean_error(study_cli.main, ["--sensitivity", "--resolve", "600", "--out", tmp_path / "o"], capsys,
                       f"expected 0 to {joint.BASE_N} samples")
    assert not (tmp_path / "o").exists()
