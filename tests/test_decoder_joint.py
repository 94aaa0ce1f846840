"""The decoder study's joint sensitivity and deployment map (mapper/study/decoder_joint.py, decoder_map.py) at the
small decoder size: fractions and indices computed from the samples, the map from the re-priced configurations,
the command's outputs and refusals."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pytest

from aalbert.mapper.cli import study as study_cli
from aalbert.mapper.study import decoder, decoder_joint, decoder_map

from .helpers import assert_clean_error

BASE = 16


@pytest.fixture(scope="module")
def study():
    """1 and 2 adapters, unmerged and merged, on the sized chips (KV on and off chip): rows and counts."""
    cfg = decoder.DecoderStudyConfig([1, 2], [], ["unmerged", "merged"], "small", requests=4)
    pairs = decoder.run(cfg, job=decoder.counted_row)
    rows = [r for r, _ in pairs]
    configs = decoder_joint.compiled(rows, [c for _, c in pairs])
    params = decoder_joint.parameters(configs, cfg.shape.prompt, cfg.shape.generated)
    return cfg, rows, configs, params


@pytest.fixture(scope="module")
def joint(study):
    _, _, configs, params = study
    return decoder_joint.run(configs, params, BASE)


def _claim(concl, start):
    return next(c for c in concl if c.claim.startswith(start))


def test_every_sample_prices_the_configurations_at_its_adapter_count(study, joint):
    _, _, configs, params = study
    o, _ = joint
    assert len(o.x["adapters"]) == BASE * (2 * len(params) + 2)
    assert set(np.unique(o.x["adapters"])) == {1, 2}
    assert set(np.unique(o.x["prompt"])) <= set(range(1, decoder.SMALL.prompt + 1))
    for c in configs[:4] + configs[-4:]:
        at = o.x["adapters"] == c.adapters
        alone = decoder_joint.evaluate([c], params, o.x).energy[c.key]
        assert np.all(np.isnan(alone[~at])) and np.array_equal(alone[at], o.energy[c.key][at])
        assert np.all(np.isfinite(alone[at])) and np.all(alone[at] > 0)


def test_fractions_are_those_of_the_samples(joint):
    o, _ = joint
    concl = decoder_joint.conclusions(o, margin=0.0)
    best = {m: decoder_joint.lowest(o, decoder_joint.of_mode(o, m))[0] for m in o.modes}
    r = best["unmerged"] / best["merged"]
    assert _claim(concl, "LoRA unmerged needs less").holds == pytest.approx(np.mean(r < 1))
    at = o.x["adapters"] == 2
    won = np.mean(best["unmerged"][at] < best["merged"][at])
    assert _claim(concl, "At 2 adapters, LoRA unmerged").holds == pytest.approx(won)
    chips = [c for c in concl if c.claim.startswith("LoRA merged's lowest-energy chip")]
    assert sum(c.holds for c in chips) == pytest.approx(1.0)


def test_a_conclusion_forced_true_holds_in_every_sample(joint):
    o, _ = joint
    forced = dataclasses.replace(o, energy={k: e * (10.0 if k[0] == "merged" else 1.0) for k, e in o.energy.items()})
    concl = decoder_joint.conclusions(forced)
    assert _claim(concl, "LoRA unmerged needs less").holds == 1.0
    assert _claim(concl, "At 2 adapters, LoRA unmerged").holds == 1.0
    against = dataclasses.replace(o, energy={k: e * (10.0 if k[0] == "unmerged" else 1.0)
                                             for k, e in o.energy.items()})
    assert _claim(decoder_joint.conclusions(against), "LoRA unmerged needs less").holds == 0.0


def test_an_input_that_does_not_act_has_no_first_order_index(joint):
    _, found = joint
    by = {ix.output: ix for ix in found}
    energy = by["ratio, unmerged / merged"]
    i = energy.names.index("rram_density")   # RRAM's density changes area, not energy
    assert energy.s1[i] == pytest.approx(0.0, abs=1e-9) and energy.st[i] == pytest.approx(0.0, abs=1e-9)
    area = by["area ratio, RRAM, unmerged"]
    j = area.names.index("rram_density")
    assert area.st[j] > 0.5 and area.s1_conf[j] > 0  # the one that acts, with its interval
    assert area.st[area.names.index("dram_energy")] == pytest.approx(0.0, abs=1e-9)


def test_the_built_in_values_give_the_study_rows(study):
    _, rows, configs, params = study
    builtin = decoder_joint.builtin_quantities(configs, params)
    best = {m: min(r["energy_per_token_uj"] for r in rows if r["lora"] == m and r["adapters"] == 2)
            for m in ("unmerged", "merged")}
    assert builtin["ratio, unmerged / merged"] == pytest.approx(best["unmerged"] / best["merged"], rel=1e-4)


def test_the_map_picks_the_lowest_energy_configuration(study):
    cfg, rows, configs, params = study
    cells = decoder_map.decoder_map(configs, params)
    assert {c.generated for c in cells} == set(decoder_map.generated_axis(params))
    assert decoder_map.generated_axis(params) == [1, 2, 4, 8]
    for n in (1, 2):
        cell = next(c for c in cells if c.adapters == n and c.generated == cfg.shape.generated)
        best = min((r for r in rows if r["adapters"] == n), key=lambda r: r["energy_per_token_uj"])
        assert cell.winner_uj == pytest.approx(best["energy_per_token_uj"], rel=1e-4)
        assert cell.winner == (best["lora"], best["architecture"], best["kv_placement"])
        assert cell.winner_area == pytest.approx(best["area_mm2"])
        assert cell.ratio == pytest.approx(cell.unmerged_uj / cell.merged_uj)
    rows_out = decoder_map.map_rows(cells)
    assert len(rows_out) == len(cells) and rows_out[0]["best_lora"] in ("unmerged", "merged")


def test_the_command_writes_indices_fractions_and_the_map(tmp_path):
    args = ["--family", "lora-decoder", "--decoder-size", "small", "--adapters", "2", "--lora", "unmerged,merged",
            "--targets", "edge_accel", "--requests", "4", "--sensitivity", "--sensitivity-base", "8", "--quiet"]
    assert study_cli.main(args + ["--jobs", "1", "--out", str(tmp_path)]) == 0
    assert study_cli.main(args + ["--jobs", "2", "--out", str(tmp_path / "again")]) == 0
    for name in study_cli.DECODER_SENSITIVITY_FILES + ("study_decoder.md", "deployment_map.svg"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    for name in ("sensitivity_joint.csv", "sensitivity_holds.csv", "deployment_map.csv", "deployment_map.png",
                 "deployment_map.svg"):
        assert (tmp_path / name).stat().st_size > 0, name
    md = (tmp_path / "study_decoder.md").read_text()
    assert "## Sensitivity: every input at once" in md and "## Deployment map" in md
    assert "No joint sensitivity" not in md
    indices = list(csv.DictReader(io.StringIO((tmp_path / "sensitivity_joint.csv").read_text())))
    assert {"S1", "S1_conf", "ST", "ST_conf"} <= set(indices[0])
    holds = list(csv.DictReader(io.StringIO((tmp_path / "sensitivity_holds.csv").read_text())))
    at_most = [float(r["holds"]) for r in holds if r["conclusion"].startswith("At 2 adapters, LoRA ")]
    assert len(at_most) == 2 and sum(at_most) == pytest.approx(1.0)  # each sample has one lowest mode


def test_sensitivity_options_are_checked(capsys):
    base = ["--family", "lora-decoder", "--decoder-size", "small"]
    assert_clean_error(study_cli.main, base + ["--sensitivity", "--sensitivity-base", "100"], capsys,
                       "must be a power of two")
    assert_clean_error(study_cli.main, base + ["--sensitivity-base", "64"], capsys, "add --sensitivity")
    assert_clean_error(study_cli.main, base + ["--sensitivity", "--no-sized"], capsys, "drop --no-sized")
    assert_clean_error(study_cli.main, base + ["--sensitivity", "--lora", "merged"], capsys,
                       "give both to --lora")
    assert_clean_error(study_cli.main, ["--sensitivity-base", "64"], capsys,
                       "--sensitivity-base does not apply to --family encoders")


def test_readme_quotes_the_decoder_sensitivity_as_run():
    """The fractions and the map's count the README quotes are those of docs/study_decoder's CSVs."""
    from pathlib import Path

    from aalbert.mapper.study.sensitivity import _pct

    root = Path(__file__).resolve().parents[1]
    docs = root / "docs" / "study_decoder"
    readme = (root / "README.md").read_text().splitlines()
    committed = (docs / "study_decoder.md").read_text().splitlines()
    holds = {r["conclusion"]: float(r["holds"])
             for r in csv.DictReader(io.StringIO((docs / "sensitivity_holds.csv").read_text()))}
    quoted = [line for line in readme if line.startswith("- ") and "LoRA" in line and "joint distribution" in line]
    assert len(quoted) >= 5
    for line in quoted:
        assert line in committed, line
        claim, _, rest = line[2:].partition(": holds in ")
        assert rest.startswith(f"{_pct(holds[claim])} of the joint distribution"), line
    cells = list(csv.DictReader(io.StringIO((docs / "deployment_map.csv").read_text())))
    wins = sum(float(r["ratio_unmerged_merged"]) < 1 for r in cells)
    line = next(x for x in readme if x.startswith("- The best unmerged configuration needs less energy per token"))
    assert line in committed and f" in {wins} of {len(cells)} cells " in line


def test_repricing_at_the_built_in_values_lands_on_the_simulated_rows(study):
    _, rows, configs, params = study
    off, at = decoder_joint.deviation(configs, params)
    assert 0.0 <= off < 1e-3 and at in configs
    shifted = [dataclasses.replace(c, simulated_uj=c.simulated_uj * (1.05 if i == 3 else 1.0))
               for i, c in enumerate(configs)]
    off, at = decoder_joint.deviation(shifted, params)
    assert off == pytest.approx(1 - 1 / 1.05, rel=1e-2) and at is shifted[3]
