"""DVFS physics: the LDO's conversion loss, retention on its own supply, memories at their own supply, and the
parts around the array scaled to the target's node and supply."""

from __future__ import annotations

import math

import pytest

from aalbert.targets.hardware.scaling import energy_fit
from aalbert.targets.hardware.spec import at_point, load_target, parse_target, target_text


def _low(t):
    return t.dvfs.points[-1]


def test_an_ldo_fed_from_0_8_v_at_0_6_v_draws_three_quarters_of_the_dynamic_energy_and_most_of_the_leakage():
    t = load_target("edge_accel")
    low = _low(t)
    assert low.voltage_v == 0.6
    q = at_point(t, low)
    # C V^2 energy on the rail (an 0.8 V SRAM on it): (0.6 / 0.8)^2 delivered, x 0.8 / 0.6 drawn through the LDO
    hp = _sram_on_the_rail()
    s0, s = hp.level("sram"), at_point(hp, _low(hp)).level("sram")
    assert s.read_energy_pj / s0.read_energy_pj == pytest.approx(0.75, rel=1e-12)
    # the operand buffers are NVMExplorer's LOP SRAM at its own 0.6 V: off the rail, as they are
    b0, b = t.parts.buffer("input0"), q.parts.buffer("input0")
    assert (b.read_pj_per_byte, b.write_pj_per_byte, b.leakage_mw) == (b0.read_pj_per_byte, b0.write_pj_per_byte,
                                                                       b0.leakage_mw)
    # leakage power 0.6/0.8 x exp(1.83 x -0.2) delivered, x 4/3 drawn; over an inference 500/362 MHz longer
    power = q.compute.leakage_mw / t.compute.leakage_mw
    assert power == pytest.approx(0.6 / 0.8 * math.exp(1.83 * -0.2) * 0.8 / 0.6, rel=1e-12)
    energy = power * t.clock_mhz / q.clock_mhz
    assert energy == pytest.approx(0.96, abs=0.01)


def test_an_ideal_regulator_charges_no_conversion_loss():
    text, _ = target_text("edge_accel")
    t = parse_target(text.replace('regulator = "ldo"', 'regulator = "ideal"'), "chip.toml")
    assert t.dvfs.regulator == "ideal"
    q = at_point(t, _low(t))
    assert q.compute.mac_energy("afloat<8,3>") / t.compute.mac_energy("afloat<8,3>") == pytest.approx(
        energy_fit(16, 0.6) / energy_fit(16, 0.8), rel=1e-12)


def _sram_on_the_rail():
    """edge_accel with an SRAM whose numbers hold at 0.8 V (CACTI's HP devices), on the rail."""
    text, _ = target_text("edge_accel")
    sram = text.index('name = "sram"')
    text = text[:sram] + text[sram:].replace('model = "sram"', 'model = "sram_hp"', 1)
    return parse_target(text.replace('rail = ["compute", "sfu"]', 'rail = ["compute", "sfu", "sram"]'), "chip.toml")


def test_retention_leakage_keeps_its_own_supply_under_dvfs():
    t = _sram_on_the_rail()
    assert t.level("sram").supply_v == 0.8
    q = at_point(t, _low(t))
    s0, s = t.level("sram"), q.level("sram")
    assert s.leakage_mw < s0.leakage_mw                       # on, it leaks less at the lower supply
    assert s.leakage_mw * s.power.retention == pytest.approx(s0.leakage_mw * s0.power.retention, rel=1e-12)
    assert s.read_energy_pj / s0.read_energy_pj == pytest.approx(0.75, rel=1e-12)


def test_memory_models_state_the_supply_their_numbers_hold_at():
    t = load_target("edge_accel")
    assert t.level("sram").supply_v == 0.6       # NVMExplorer's SRAM: CACTI's LOP devices, 0.6 V at 22 nm
    assert t.level("rram").supply_v is None      # not stated by NVMExplorer
    assert "sram" not in t.dvfs.rail


def test_registers_and_accumulators_are_scaled_to_the_node_and_supply_like_the_mac():
    t = load_target("edge_accel")
    # Aladdin's 40 nm register at TSMC 40G's 0.9 V, scaled by the 45 nm fit (no 40 nm fit) to the 16 nm fit at 0.8 V
    factor = energy_fit(16, 0.8) / energy_fit(45, 0.9)
    assert t.parts.registers.operand_pj == pytest.approx(0.072 * factor, rel=1e-12)
    assert t.parts.accumulators.access_pj == pytest.approx(0.144 * factor, rel=1e-12)
    assert t.parts.registers.area_mm2 == pytest.approx(0.0245 / 5.3, rel=1e-12)      # 45 nm -> 16 nm: / 5.3
    # the interconnect: one scaled MAC per byte (Eyeriss: a 16-bit value costs two MACs)
    assert t.parts.noc.energy_pj_per_byte == pytest.approx(t.compute.mac_energy("afloat<8,3>"), rel=1e-12)
    assert t.parts.noc.energy_pj_per_byte == pytest.approx(0.25 * factor, rel=1e-12)
    # and they follow the supply under DVFS through the same fit (and the LDO), not C V^2 on top of it
    q = at_point(t, _low(t))
    low = energy_fit(16, 0.6) / energy_fit(16, 0.8) * 0.8 / 0.6
    assert q.parts.registers.operand_pj == pytest.approx(t.parts.registers.operand_pj * low, rel=1e-12)
    assert q.parts.noc.energy_pj_per_byte == pytest.approx(t.parts.noc.energy_pj_per_byte * low, rel=1e-12)


def test_the_interconnect_takes_one_energy_and_reference_nodes_need_a_technology_table():
    from aalbert.targets.hardware.spec import TargetError

    text, _ = target_text("edge_accel")
    with pytest.raises(TargetError, match=r"\[noc\]: give one of 'energy_pj_per_byte' and 'energy_macs_per_byte'"):
        parse_target(text.replace("energy_macs_per_byte = 1.0", "energy_macs_per_byte = 1.0\nenergy_pj_per_byte = 1"),
                     "chip.toml")
    with pytest.raises(TargetError, match="key 'reference_node' must be one of"):
        parse_target(text.replace("reference_node = 45\nreference_voltage_v = 0.9\nsource = \"\"\"Per PE",
                                  "reference_node = 40\nreference_voltage_v = 0.9\nsource = \"\"\"Per PE"), "chip.toml")
