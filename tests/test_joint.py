"""The joint sensitivity and the deployment map: Sobol indices from the Saltelli sample, holds-fractions, sampled
prices, and the map's cells, on an analytic function and on the tiny study's compiled counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aalbert.mapper.study import deployment, joint
from aalbert.mapper.study.configuration import counted_row
from aalbert.mapper.study.grid import StudyConfig, run_study

ISHIGAMI_S1 = {"x1": 0.314, "x2": 0.442, "x3": 0.0}
ISHIGAMI_ST = {"x1": 0.558, "x2": 0.442, "x3": 0.244}


def _ishigami(u: np.ndarray) -> np.ndarray:
    x = -math.pi + 2 * math.pi * u
    return np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])


def _params(n: int) -> list[joint.Parameter]:
    return [joint.Parameter(f"x{i + 1}", f"x{i + 1}", 0.0, 1.0, False, 0.5, "analytic") for i in range(n)]


def _recovers_ishigami(ix: joint.Indices) -> bool:
    s1, st = dict(zip(ix.names, ix.s1)), dict(zip(ix.names, ix.st))
    return all(abs(s1[k] - v) < 0.06 for k, v in ISHIGAMI_S1.items()) and \
        all(abs(st[k] - v) < 0.06 for k, v in ISHIGAMI_ST.items())


def test_sobol_indices_of_the_ishigami_function_and_a_broken_sampler_fails():
    params = _params(3)
    u = joint.sample(params, 1024)
    assert u.shape == (1024 * (2 * 3 + 2), 3)
    ix = joint.analyse(params, _ishigami(u), "ishigami")
    assert _recovers_ishigami(ix)
    assert all(c > 0 for c in ix.st_conf)  # intervals are reported
    assert {(a, b) for a, b, _, _ in ix.s2[:1]} == {("x1", "x3")}  # Ishigami's one interaction
    shuffled = u[np.random.default_rng(0).permutation(len(u))]  # the Saltelli structure lost
    assert not _recovers_ishigami(joint.analyse(params, _ishigami(shuffled), "broken"))
    independent = np.random.default_rng(1).random(u.shape)      # plain Monte Carlo rows
    assert not _recovers_ishigami(joint.analyse(params, _ishigami(independent), "broken"))


def _outcome(adapter: dict[str, list[float]], albert: dict[str, list[float]], area: dict | None = None,
             saving=None) -> joint.Outcome:
    n = len(next(iter(adapter.values())))
    energy = {("adapter-albert", a): np.array(v) for a, v in adapter.items()}
    energy.update({("albert", a): np.array(v) for a, v in albert.items()})
    archs = list(dict.fromkeys([*adapter, *albert]))
    return joint.Outcome([], {"tasks": np.ones(n)}, energy, area or {},
                         np.array(saving if saving is not None else [math.nan] * n), archs)


def test_holds_fractions_count_the_samples_where_each_conclusion_holds():
    o = _outcome({"rram_sram": [1.0, 3.0, 1.0, 5.0], "sram": [2.0, 2.0, 2.0, 2.0]},
                 {"rram_sram": [4.0, 4.0, 4.0, 4.0], "sram": [2.0, 1.0, 4.0, 4.0]},
                 {("adapter-albert", "rram_sram"): np.array([1.0, 1.0, 3.0, 3.0]),
                  ("adapter-albert", "sram"): np.array([2.0, 2.0, 2.0, 2.0])}, saving=[0.1, -0.1, 0.2, 0.3])
    got = {c.claim: c for c in joint.conclusions(o)}
    # the paper's: adapter on rram_sram over albert on sram = 0.5, 3, 0.25, 1.25
    assert got[f"adapter-ALBERT needs less energy than ALBERT, baseline {joint.PAPER_LABEL}"].holds == 0.5
    same = got["adapter-ALBERT needs less energy than ALBERT, baseline same chip: sized: RRAM + SRAM"]
    assert same.holds == 0.75 and same.median == pytest.approx(np.median([0.25, 0.75, 0.25, 1.25]))
    # best: adapter 1, 2, 1, 2 (rram_sram, sram, rram_sram, sram); albert 2, 1, 4, 4 (sram, sram, then a tie: the
    # first chip listed)
    assert got["adapter-ALBERT needs less energy than ALBERT, baseline each on its lowest-energy chip"].holds == 0.75
    assert got["adapter-ALBERT's lowest-energy chip is sized: RRAM + SRAM"].holds == 0.5
    assert got["ALBERT's lowest-energy chip is sized: all SRAM"].holds == 0.5
    assert got["RRAM saves area: adapter-ALBERT's sized RRAM + SRAM chip is smaller than its all-SRAM chip"].holds \
        == 0.5
    dvfs = next(c for c in got.values() if c.claim.startswith("DVFS saves energy"))
    assert dvfs.holds == 0.75


def test_a_ratio_inside_the_noise_band_neither_holds_nor_fails():
    """Ratios 0.5, 0.99, 1.01 and 2 with a 5 % band: one sample holds, two are inside the band, one fails."""
    o = _outcome({"sram": [1.0, 0.99, 1.01, 2.0]}, {"sram": [2.0, 1.0, 1.0, 1.0]}, saving=[0.01, -0.01, 0.2, -0.3])
    plain = {c.claim: c for c in joint.conclusions(o)}
    banded = {c.claim: c for c in joint.conclusions(o, margin=0.05)}
    same = "adapter-ALBERT needs less energy than ALBERT, baseline same chip: sized: all SRAM"
    assert (plain[same].holds, plain[same].within) == (0.5, 0.0)
    assert (banded[same].holds, banded[same].within) == (0.25, 0.5)
    dvfs = next(c for c in banded.values() if c.claim.startswith("DVFS saves energy"))
    assert (dvfs.holds, dvfs.within) == (0.25, 0.5)


def test_the_tornado_calls_no_flip_from_inside_the_noise_band():
    from aalbert.mapper.study.sensitivity import BASELINES, conclusions

    name = BASELINES[2]
    entries = [{"input": "base", "value": "built-in", name: 1.02, "best:adapter-albert": ("sram", 1.0),
                "best:albert": ("sram", 1.0)},
               {"input": "x", "value": "low", name: 0.90, "best:adapter-albert": ("sram", 1.0),
                "best:albert": ("sram", 1.0)}]
    assert conclusions(entries)[0].startswith("- Flips:")
    banded = conclusions(entries, margin=0.03)[0]
    assert banded.startswith("- Holds outside the noise band:") and "within the noise band (±3.00%)" in banded
    assert conclusions(entries, margin=0.2)[0].startswith("- Within the noise band (±20.00%) in every variation:")
    entries[1][name] = 1.5
    assert conclusions(entries, margin=0.03)[0].startswith("- Never holds:")


@pytest.fixture(scope="module")
def tiny_compiled():
    cfg = StudyConfig(tasks=[1, 2], size="tiny", seq_len=16, requests=2, accounting=False)
    pairs = run_study(cfg, job=counted_row)
    rows = [r for r, _ in pairs]
    return rows, joint.compiled(rows, [c for _, c in pairs])


def test_sampled_prices_move_only_what_each_input_names(tiny_compiled):
    _, configs = tiny_compiled
    c = next(c for c in configs if c.arch == "edge_accel")
    params = joint.params_for(configs)
    x = joint.builtin_inputs(params, sram_leakage=0.1, retention=0.2, dram_background=2.0)
    p = joint.sampled_prices(c, x)
    assert p["bank:sram"] == pytest.approx(0.1 * c.prices["bank:sram"])
    assert p["bank:rram"] == pytest.approx(c.prices["bank:rram"])
    assert p["retention:sram"] == pytest.approx(0.2)
    assert p["dram:dram:active"] == pytest.approx(2 * c.prices["dram:dram:active"])
    assert p["read:sram"] == pytest.approx(c.prices["read:sram"])
    same = joint.sampled_prices(c, joint.builtin_inputs(params))
    assert same == pytest.approx(c.prices)  # the built-in values price as compiled


def test_the_built_in_values_reproduce_the_study_and_samples_evaluate_as_one_at_a_time(tiny_compiled):
    rows, configs = tiny_compiled
    params = joint.params_for(configs)
    o = joint.evaluate_samples(configs, params, joint.builtin_inputs(params))
    for r in rows:
        if r["tasks"] == 2:
            assert o.energy[r["family"], r["architecture"]][0] / 1e9 == pytest.approx(r["energy_mj"], rel=1e-4)
    u = np.random.default_rng(3).random((5, len(params)))
    x = joint.inputs(params, u)
    together = joint.evaluate_samples(configs, params, x)
    for i in range(5):
        alone = joint.evaluate_samples(configs, params, {k: v[i:i + 1] for k, v in x.items()})
        for key, e in together.energy.items():
            assert e[i] == pytest.approx(alone.energy[key][0], rel=1e-12, nan_ok=True)
        assert together.dvfs_saving[i] == pytest.approx(alone.dvfs_saving[0], nan_ok=True)


def test_deployment_map_cells_are_each_familys_lowest_energy_chip(tiny_compiled, tmp_path):
    rows, configs = tiny_compiled
    params = joint.params_for(configs)
    cells = deployment.deployment_map(configs, params)
    assert {(c.per_wakeup, c.tasks) for c in cells} == {(10 ** w, n) for w in deployment.PER_WAKEUP_LOG10
                                                        for n in (1, 2)}
    for c in cells:
        x = joint.builtin_inputs(params, per_wakeup=math.log10(c.per_wakeup), tasks=c.tasks)
        o = joint.evaluate_samples(configs, params, x)
        for family, arch, mj in (("adapter-albert", c.adapter_arch, c.adapter_mj), ("albert", c.albert_arch,
                                                                                     c.albert_mj)):
            energies = {a: e[0] for (f, a), e in o.energy.items() if f == family}
            assert min(energies, key=energies.get) == arch and mj == pytest.approx(energies[arch] / 1e9)
        assert 0.0 <= c.albert_static <= 1.0 and c.ratio == pytest.approx(c.adapter_mj / c.albert_mj)
    one = next(c for c in cells if c.per_wakeup == 1 and c.tasks == 2)
    row = next(r for r in rows if r["tasks"] == 2 and r["family"] == "albert" and r["architecture"] == one.albert_arch)
    assert one.albert_mj == pytest.approx(row["energy_mj"], rel=1e-4) and one.albert_area == row["area_mm2"]
    paths = deployment.map_figure(cells, tmp_path / "map")
    again = deployment.map_figure(cells, tmp_path / "again")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    lines = deployment.map_lines(cells, "map.png")
    assert lines[0] == "## Deployment map" and sum(line.startswith("| ") for line in lines) == 1 + 9


def test_deployment_map_legend_names_every_chip_of_the_study():
    from aalbert.mapper.study.chips import ARCHITECTURES
    from aalbert.mapper.study.grid import StudyConfig

    assert set(StudyConfig().targets) | set(ARCHITECTURES) <= set(deployment.SHORT)


def test_technology_inputs_act_on_the_levels_they_name(tiny_compiled):
    """SRAM leakage on the calibrated SRAM's banks and the SRAM buffers, STT-MRAM on the mram level, register and
    accumulator energy on the node-scaled registers and accumulators, and nothing else."""
    _, configs = tiny_compiled
    params = joint.params_for(configs)
    assert "mram" in [p.name for p in params]
    c = next(c for c in configs if c.arch == "mram_sram")
    buffers = [b.name for b in c.target.parts.buffers]
    assert buffers
    x = joint.builtin_inputs(params, sram_leakage=0.1, mram=2.0, registers=3.0)
    p = joint.sampled_prices(c, x)
    assert p["bank:sram"] == pytest.approx(0.1 * c.prices["bank:sram"])
    for b in buffers:
        assert p[f"leak:{b}"] == pytest.approx(0.1 * c.prices[f"leak:{b}"])
    for k in ("bank:mram", "read:mram", "write:mram"):
        assert p[k] == pytest.approx(2.0 * c.prices[k])
    for k in ("reg:operand", "acc"):
        assert p[k] == pytest.approx(3.0 * c.prices[k])
    for k in ("read:sram", "leak:pe", "noc", "wake_pj:mram", "wake_pj:sram"):
        assert p[k] == pytest.approx(c.prices[k])


def test_the_ldo_input_acts_on_the_regulators_drawn_factor(tiny_compiled):
    """At the built-in efficiency the DVFS point's prices are the target's at that point (its LDO's drawn factor);
    a better regulator divides the rail's prices by its drawn factor over the LDO's and leaves the rest."""
    _, configs = tiny_compiled
    c = next(c for c in configs if c.arch == joint.DVFS_CHIP and c.family == "adapter-albert" and c.low is not None)
    dv = c.target.dvfs
    assert dv.regulator == "ldo"
    params = joint.params_for(configs)
    assert joint.dvfs_prices(c, joint.builtin_inputs(params)) == pytest.approx(c.low)
    better = joint.dvfs_prices(c, joint.builtin_inputs(params, ldo=0.95))
    drawn = dv.drawn_factor(dv.points[-1].voltage_v)
    rail = [k for k in c.low if k.startswith(("mac:", "reg:", "leak:pe", "leak:sfu")) or k in ("sfu", "acc", "noc")]
    assert len(rail) >= 6
    for k in rail:
        assert better[k] == pytest.approx(c.low[k] / (drawn * 0.95))
    for k in ("read:sram", "bank:sram", "bank:rram", "dram:dram:active", "wake_pj:sram"):
        assert better[k] == pytest.approx(c.low[k])
    x = joint.builtin_inputs(params)
    assert joint.dvfs_energy(c, joint.builtin_inputs(params, ldo=0.95)) < joint.dvfs_energy(c, x)


def test_task_counts_sampled_are_the_compiled_ones():
    u = np.random.default_rng(5).random((4000, 1))
    for counts in ([3, 5, 8], [6, 7], [8]):
        (p,) = [p for p in joint.parameters(counts, False) if p.name == "tasks"]
        x = joint.inputs([p], u)["tasks"]
        assert set(x) == set(counts) and p.builtin == max(counts)
        assert all(abs(np.mean(x == n) - 1 / len(counts)) < 0.03 for n in counts)  # each equally likely
    (p,) = [p for p in joint.parameters(list(range(1, 9)), False) if p.name == "tasks"]
    assert np.array_equal(joint.inputs([p], u)["tasks"], np.floor(1 + 8 * u[:, 0]).clip(1, 8))  # 1-8 as before


def test_a_study_of_one_task_count_samples_only_it_and_finds_its_indices(tiny_compiled):
    """`--sensitivity --tasks 2`: every sample has a configuration, so every quantity has its Sobol indices."""
    _, configs = tiny_compiled
    only = [c for c in configs if c.tasks == 2]
    outcome, found = joint.run(only, base=64)
    assert set(outcome.x["tasks"]) == {2}
    assert all(np.isfinite(e).all() for e in outcome.energy.values())
    assert {ix.output for ix in found} >= {f"ratio, {k}" for k in joint.ratios(outcome)}


def test_a_table_without_rows_still_has_its_header():
    from aalbert.mapper.study.report import csv_text
    from aalbert.mapper.study.sensitivity import JOINT_COLUMNS

    assert csv_text([], JOINT_COLUMNS) == ",".join(JOINT_COLUMNS) + "\n"
    assert csv_text([{"input": "x", "quantity": "q"}], ("quantity",)) == "quantity,input\nq,x\n"
