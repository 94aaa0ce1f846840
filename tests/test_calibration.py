"""Calibration against external references: aalbert's side recomputed against the stored figures.

The external tools' outputs (CACTI 7, NVMExplorer, DRAMPower) are stored in benchmarks/calibration/; nothing
here runs them. `results.json` holds aalbert's figures as `benchmarks/calibration.py --store` computed them: a
change to a memory model, the DRAM model or the chip's target changes them, and this test says which.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _calibration():
    spec = importlib.util.spec_from_file_location("calibration", ROOT / "benchmarks" / "calibration.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["calibration"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


cal = _calibration()
STORED = json.loads((cal.DATA / "results.json").read_text())


def _close(a, b, path=""):
    """Every number in `a` equals the stored `b` (relative 1e-9), recursively; the first that differs."""
    if isinstance(b, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))}"
        for k in b:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(b, (int, float)) and b is not None and not isinstance(b, bool):
        assert a is not None and math.isclose(float(a), b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != stored {b}"
    else:
        assert a == b, f"{path}: {a} != stored {b}"


def test_sram_models_are_cactis_banks_scaled_as_stated():
    """memtech's CACTI constants are the stored CACTI outputs, and the SRAM models are them scaled to 12 nm."""
    from aalbert.targets.hardware import memtech

    cacti = json.loads((cal.DATA / "cacti.json").read_text())
    for corner, (ns, read, write, leak, area) in memtech.CACTI_BANK.items():
        ref = cacti["cases"][f"{corner}_300K"]
        for ours, theirs in ((ns, "access_ns"), (read, "read_pj"), (write, "write_pj"), (leak, "leakage_mw"),
                             (area, "area_mm2")):
            assert math.isclose(ours, ref[theirs], rel_tol=1e-12), (corner, theirs)
    rows = [r for r in cal.sram_rows() if r.role == "check"]
    assert len(rows) == 15 and all(abs(r.error) < 1e-12 for r in rows)
    # the variant before calibration is far from CACTI: its access energy 17x below, its leakage at 350 K 7x below
    before = {r.quantity: r for r in cal.sram_rows() if r.role == "before"}
    assert before["LOP bank, read energy per 64-bit access"].error < -0.9
    assert before["LOP bank, leakage at NVMExplorer's 350 K"].error < -0.8


def test_sram_rows_match_the_stored_figures():
    _close([r.aalbert for r in cal.sram_rows()], STORED["sram"], "sram")


def test_nvm_rows_match_the_stored_figures():
    rows = cal.nvm_rows()
    _close([r.aalbert for r in rows], STORED["nvm"], "nvm")
    density = next(r for r in rows if r.quantity == "RRAM density" and r.role == "check")
    assert abs(density.error) < 1e-9  # the RRAM's area is the measured macro's density
    energies = [r for r in rows if r.quantity.startswith("RRAM 2 MB") and "area" not in r.quantity]
    assert energies and all(abs(r.error) < 1e-12 for r in energies)  # NVMExplorer's energies, as extracted


@pytest.fixture(scope="module")
def dram():
    return json.loads(json.dumps(cal.dram_aalbert(), default=float))


def test_dram_figures_match_the_stored_ones(dram):
    _close(dram, STORED["dram"], "dram")
    reference = json.loads((cal.DATA / "drampower.json").read_text())
    assert reference["read_bytes"] == dram["read_bytes"]  # DRAMPower replayed this very trace


def test_dram_access_energy_agrees_with_drampower(dram):
    """The access energy (ACT, PRE, bursts on VDD1/VDD2) of aalbert's formulas and DRAMPower's agree."""
    access = next(r for r in cal.dram_rows(dram) if r.quantity.startswith("access"))
    assert abs(access.error) < 0.05


@pytest.fixture(scope="module")
def chip():
    return json.loads(json.dumps(cal.chip_figures(), default=float))


def test_whole_chip_figures_match_the_stored_ones(chip):
    _close(chip, STORED["chip"], "chip")


def test_whole_chip_plan_fits_at_most_half():
    figures = cal.plan()
    fitted = [f for f in figures if f["role"] == "fitted"]
    assert figures and 2 * len(fitted) <= len(figures)
    assert {f["role"] for f in figures} <= {"fitted", "held_out"}


def test_held_out_whole_chip_figures(chip):
    """Issue 25's bar: every held-out figure within 25 % of its reference, at most one missing. The doc derives
    each miss; this test fails as soon as the model meets the bar (then drop the xfail) or misses more."""
    rows = cal.chip_rows(chip)
    misses = cal.held_out_misses(rows)
    held = [r for r in rows if r.role == "held_out"]
    assert held
    assert [r.quantity for r in misses] == [r.quantity for r in cal.held_out_misses(cal.chip_rows(STORED["chip"]))]
    if len(misses) > 1:
        pytest.xfail(f"{len(misses)} of {len(held)} held-out figures miss by more than 25 % "
                     "(docs/calibration.md derives why)")
    assert len(misses) <= 1


def test_the_doc_is_what_the_script_writes():
    """docs/calibration.md is generated from the stored figures (the text, byte for byte)."""
    assert (ROOT / "docs" / "calibration.md").read_text() == cal.report(STORED)


def test_the_readme_quotes_the_stored_figures():
    """The README's calibration paragraph states the DRAM background's error and the held-out count the stored
    figures give (a figure there once said 145 % above where the benchmark printed 15.2 % below)."""
    text = " ".join((ROOT / "README.md").read_text().split())
    background = next(r for r in cal.dram_rows(STORED["dram"]) if r.quantity.startswith("background"))
    side = "above" if background.error > 0 else "below"
    assert f"background is {abs(background.error) * 100:.1f} % {side} it" in text
    rows = cal.chip_rows(STORED["chip"])
    held = sum(1 for r in rows if r.role == "held_out")
    within = held - len(cal.held_out_misses(rows))
    assert f"12 nm chip {within} of {held} held-out" in text


def test_the_power_fit_reproduces_the_silicons_two_measured_powers(chip):
    """The after-the-fact calibration solves dynamic and static factors from the FP8 powers at both points."""
    pf = chip["power_fit"]
    for q, key in ((chip["points_8bit"][0], "top_mw_fp8"), (chip["points_8bit"][-1], "low_mw_fp8")):
        mw = (pf["dynamic_factor"] * q["dynamic_pj"] + pf["static_factor"] * q["static_pj"]) / q["seconds"] * 1e-9
        assert mw == pytest.approx(cal.SILICON[key], rel=1e-9)
    assert pf["dynamic_factor"] > 0 and pf["static_factor"] > 0
