"""Static energy by hand: leakage per bank by power state over time, DRAM background by state, and the
numbers a target must give for them."""

from __future__ import annotations

from importlib import resources

import pytest

from aalbert.targets.hardware.dram import DRAM_SPECS, DramPower, background
from aalbert.targets.hardware.spec import TargetError, load_target, parse_target
from aalbert.targets.sim.power import Accesses, Region, static_energy

# 1 GHz: a cycle is a nanosecond. Four 1 KiB SRAM banks leaking 1 mW each; retention keeps 10 %, gating 1 %;
# waking a bank takes 10 ns and 20 pJ. No logic leakage, and a DRAM without background, to isolate the banks.
# Both memories have the same ports (PORTS).
PORTS = """word_bits = 64
read_energy_pj = 1.0
write_energy_pj = 1.0
read_latency_ns = 1.0
write_latency_ns = 1.0
read_bytes_per_cycle = 8.0
write_bytes_per_cycle = 8.0"""
CHIP = """
name = "hand"
[clock]
frequency_mhz = 1000
source = "test"
[compute]
rows = 2
cols = 2
dataflow = "weight_stationary"
macs_per_cycle = 4
activation_bits = 16
matmul_format = "int8"
zero_skipping = "none"
input_buffer_bytes = 64
input_buffers = 2
area_mm2 = 0.0
leakage_mw = 0.0
source = "test"
[compute.formats.int8]
energy_pj_per_mac = 1.0
source = "test"
[sfu]
elements_per_cycle = 1
energy_pj_per_element = 1.0
area_mm2 = 0.0
leakage_mw = 0.0
source = "test"
[sfu.scans]
[interconnect]
dma_bytes_per_cycle = 8
alignment_bytes = 8
source = "test"
[[memory]]
name = "sram"
technology = "sram"
capacity_bytes = 4096
banks = 4
PORTS
leakage_mw = 4.0
area_mm2 = 0.0
write_endurance = inf
volatile = true
retention_leakage_fraction = 0.1
off_leakage_fraction = 0.01
wakeup_ns = 10.0
wakeup_pj = 20.0
power_gating = "GATING"
holds = ["weights", "activations"]
reaches = ["compute"]
source = "test"
[[memory]]
name = "dram"
technology = "dram"
capacity_bytes = 1048576
off_chip = true
PORTS
leakage_mw = 0.0
area_mm2 = 0.0
write_endurance = inf
volatile = true
background_active_mw = 0.0
background_power_down_mw = 0.0
background_self_refresh_mw = 0.0
refresh_mw = 0.0
self_refresh_after_ns = 0.0
phy_area_mm2 = 0.0
holds = ["weights"]
reaches = ["sram"]
source = "test"
"""

# bank 0: read during [0, 100) and [500, 600); bank 1 during [100, 110) and [120, 130); bank 2 holds another
# task's weights and is not touched; bank 3 holds nothing. The inference lasts 1000 ns.
ACCESSES = Accesses({"sram": [(0, 512, 0.0, 100.0), (0, 512, 500.0, 600.0),
                              (1024, 1100, 100.0, 110.0), (1100, 1200, 120.0, 130.0)]})
IMAGE = [Region("sram", 0, 1200, None), Region("sram", 2048, 2600, frozenset({"other"}))]


def chip(gating: str):
    return parse_target(CHIP.replace("PORTS", PORTS).replace("GATING", gating), "hand.toml")


def test_leakage_by_bank_state_over_time_by_hand():
    s = static_energy(ACCESSES, IMAGE, chip("idle"), 1000.0, "mine", cold=False)
    # Gating a gap pays off past 10 ns + 20 pJ / (1 mW x 0.9) = 32.2 ns. Bank 0's 400 ns gap is gated: on for
    # its 200 ns of reads and the 10 ns wake-up before the second, 790 ns in retention, woken twice. Bank 1's
    # 10 ns gap is not: on from the wake-up at 90 ns to 130 ns (40 ns), 960 ns in retention, woken once.
    # Bank 2 keeps its data in retention all along; bank 3 is off.
    assert s.bank_time["sram", "on"] == pytest.approx(210 + 40)
    assert s.bank_time["sram", "retention"] == pytest.approx(790 + 960 + 1000)
    assert s.bank_time["sram", "off"] == pytest.approx(1000)
    assert s.energy["leakage:sram:on"] == pytest.approx(250.0)               # 1 mW x 250 ns
    assert s.energy["leakage:sram:retention"] == pytest.approx(275.0)        # 0.1 mW x 2750 ns
    assert s.energy["leakage:sram:off"] == pytest.approx(10.0)               # 0.01 mW x 1000 ns
    assert s.energy["wakeup:sram"] == pytest.approx(3 * 20.0)
    assert s.banks["sram"] == {"accessed": 2, "held": 1, "empty": 1}
    # after a power-up, volatile memory lost the other task's weights: bank 2 is off too
    cold = static_energy(ACCESSES, IMAGE, chip("idle"), 1000.0, "mine", cold=True)
    assert cold.energy["leakage:sram:retention"] == pytest.approx(175.0)
    assert cold.energy["leakage:sram:off"] == pytest.approx(20.0)


def test_gating_policies_by_hand():
    empty = static_energy(ACCESSES, IMAGE, chip("empty"), 1000.0, "mine", cold=False)
    assert empty.energy["leakage:sram:on"] == pytest.approx(3000.0)          # three banks hold data, on all along
    assert empty.energy["leakage:sram:off"] == pytest.approx(10.0)
    none = static_energy(ACCESSES, IMAGE, chip("none"), 1000.0, "mine", cold=False)
    assert none.energy == {"leakage:pe": 0.0, "leakage:sfu": 0.0, "leakage:sram:on": pytest.approx(4000.0)}


def test_dram_state_energy_on_a_hand_made_transfer_pattern():
    p = DramPower(active_mw=40.0, power_down_mw=6.0, self_refresh_mw=1.0, refresh_mw=5.0, self_refresh_after_ns=1000.0,
                  self_refresh_exit_pj=100.0, phy_area_mm2=0.0, source="test")
    # transfers at [0, 100), [300, 400), [5000, 5100) in 10 us, asleep before: leaving self-refresh for the first,
    # power-down in the 200 ns gap, self-refresh in the 4600 and 4900 ns ones (longer than 1000 ns), left once more
    bg = background([(0, 100), (300, 400), (5000, 5100)], 10_000.0, p)
    assert bg.time_ns == {"active": 300.0, "power_down": 200.0, "self_refresh": 9500.0}
    assert bg.self_refresh_exits == 2
    assert bg.energy_pj == pytest.approx({"active": 12_000.0, "power_down": 1200.0, "self_refresh": 9500.0,
                                          "refresh": 2500.0, "self_refresh_exit": 200.0})


def test_lpddr4_model_from_the_memspec_currents():
    spec = DRAM_SPECS["lpddr4_3200"]
    p = spec.power()
    # DRAMPower's MICRON_6Gb_LPDDR4-3200 memspec: VDD1 1.8 V, VDD2 1.1 V, VDDQ 1.1 V; currents in mA
    assert p.active_mw == pytest.approx(1.8 * 2.25 + 1.1 * 30 + 1.1 * 0.75)       # IDD3N
    assert p.power_down_mw == pytest.approx(1.8 * 1.2 + 1.1 * 3.0 + 1.1 * 0.75)   # IDD2P
    assert p.self_refresh_mw == pytest.approx(1.8 * 0.3 + 1.1 * 0.5 + 1.1 * 0.1)  # IDD6
    assert p.refresh_mw == pytest.approx((1.8 * (10 - 2.25) + 1.1 * (90 - 30)) * 448 / 6246)
    burst = (1.1 * (275 - 30) + 1.1 * (150 - 0.75)) * 8 * 0.625 / 32            # BL16 x 16 bit, 5 ns
    act = ((1.8 * (3.5 - 2.25) + 1.1 * (45 - 30)) * 68 + (1.8 * (3.5 - 2.0) + 1.1 * (45 - 27)) * 29) * 0.625
    assert spec.read_pj_per_byte == pytest.approx(burst + act / 2048 + 1.83 * 8)
    assert spec.capacity_bytes == 768 * 2 ** 20 and spec.bytes_per_ns == pytest.approx(6.4)



def test_lpddr5_model_from_the_datasheet_currents_on_four_rails():
    spec = DRAM_SPECS["lpddr5_6400"]
    p = spec.power()
    v1, v2h, v2l, vq = 1.8, 1.05, 0.9, 0.5
    # Micron Y52P LPDDR5X Table 18 (x16, 7500 Mb/s), mA on VDD1 / VDD2H / VDD2L / VDDQ
    assert p.active_mw == pytest.approx(v1 * 2.8 + v2h * 40 + v2l * 0.2 + vq * 0.6)      # IDD3N
    assert p.power_down_mw == pytest.approx(v1 * 1.2 + v2h * 3.9 + v2l * 0.2 + vq * 0.6)  # IDD2P, VDD1 a stand-in
    assert p.refresh_mw == pytest.approx((v1 * (10 - 2.8) + v2h * (205 - 40)) * 896 / 12500)
    burst = (v1 * (18 - 2.8) + v2h * (390 - 40) + vq * (111.9 - 0.6)) * 16 / 7.5 / 32   # 16 transfers at 7500 MT/s
    act = ((v1 * (3.8 - 2.8) + v2h * (53 - 40)) * 134 + (v1 * (3.8 - 1.5) + v2h * (53 - 32.5)) * 58) / 3.2
    assert spec.read_pj_per_byte == pytest.approx(burst + act / 2048 + 1.83 * 8)
    # the burst at the datasheet's rate: the same energy per bit as at the channel's own 6400 MT/s
    assert spec.t_burst_ns == pytest.approx(16 / 7.5) and spec.bytes_per_ns == pytest.approx(12.8)


def test_a_dram_model_needs_one_current_per_rail():
    import dataclasses

    with pytest.raises(ValueError, match="one value per rail"):
        dataclasses.replace(DRAM_SPECS["lpddr5_6400"], idd6=(0.3, 0.5, 0.1))

EDGE = resources.files("aalbert.targets").joinpath("builtin", "edge_accel.toml").read_text()
TPU = resources.files("aalbert.targets").joinpath("builtin", "tpu_like.toml").read_text()


@pytest.mark.parametrize("text, remove, message", [
    (TPU, "off_leakage_fraction = 0.0\n", "missing key 'off_leakage_fraction'"),
    (TPU, "retention_leakage_fraction = 0.0\n", "'retention_leakage_fraction'"),
    (TPU, "wakeup_pj = 0.0\n", "missing key 'wakeup_pj'"),
    (TPU, "background_self_refresh_mw = 0.0\n", "missing key 'background_self_refresh_mw'"),
    (TPU, "refresh_mw = 0.0\n", "missing key 'refresh_mw'"),
    (TPU, "leakage_mw = 0.0\narea_mm2 = 0.0\nwrite_endurance", "missing key 'leakage_mw'"),
    (EDGE, "voltage_v = 0.8\n", "missing key 'voltage_v'"),
    (EDGE, "scaling_node = 16\n", "missing key 'scaling_node'"),
])
def test_a_target_without_its_leakage_background_or_gating_numbers_is_refused(tmp_path, text, remove, message):
    assert remove in text
    path = tmp_path / "chip.toml"
    path.write_text(text.replace(remove, "area_mm2 = 0.0\nwrite_endurance" if "write_endurance" in remove else "", 1))
    with pytest.raises(TargetError, match=message):
        load_target(str(path))


def test_every_memory_of_every_builtin_target_has_power_states_or_background():
    from aalbert.targets.hardware.spec import builtin_targets

    for name in builtin_targets():
        for m in load_target(name).memories:
            if m.technology == "dram":
                assert m.dram is not None and m.dram.label, (name, m.name)
            else:
                assert m.power is not None and m.power.source and m.banks >= 1, (name, m.name)
                assert (m.power.retention is not None) == m.volatile, (name, m.name)


def _streaming_gemm(fraction: float, span_ns: float = 320_000.0):
    """One GEMM on edge_accel_dram reading its weights from DRAM over `span_ns`, at `fraction` of the DRAM's
    peak bandwidth: the static energy of that span, and the DRAM's background model."""
    from aalbert.targets.codegen.program import Buf, Instr, Program

    target = load_target("edge_accel_dram")
    dram = target.level("dram").dram
    nbytes = round(fraction * dram.bytes_per_ns * span_ns)
    gemm = Instr(0, "gemm", "pe", (), 0, "linear", "linear %0", reads=(Buf("dram", 0, nbytes),),
                 writes=(Buf("sram", 0, 4096),), batch=1, m=1, k=nbytes, n=1, fmt="afloat8",
                 traffic=(("dram", nbytes, 0), ("sram", 0, 4096)))
    program = Program(target.name, "t", [gemm])
    cycles = span_ns * target.clock_mhz / 1000.0
    acc = Accesses.of(program, {0: 0.0}, {0: cycles}, target)
    return static_energy(acc, None, target, span_ns, "t", cold=False), dram


def test_a_gemm_streaming_at_a_tenth_of_the_dram_bandwidth_keeps_it_active_a_tenth_of_the_time():
    span = 320_000.0
    s, dram = _streaming_gemm(0.1, span)
    active_ns = s.energy["background:dram:active"] / dram.active_mw
    down_ns = s.energy["background:dram:power_down"] / dram.power_down_mw
    # 204,800 bytes at 6.4 B/ns: 32,000 ns of bursts, a 2 KiB row at a time (100 rows), each gap of 2,880 ns
    # long enough for power-down (tCKE + tXP = 15 ns) and left with a 7.5 ns tXP at active standby
    assert dram.bytes_per_ns == pytest.approx(6.4) and dram.chunk_bytes == 2048
    assert dram.power_down_min_ns == pytest.approx(7.5) and dram.power_down_exit_ns == pytest.approx(7.5)
    assert active_ns == pytest.approx(32_000 + 100 * 7.5)
    assert active_ns / span == pytest.approx(0.1, abs=0.01)
    assert active_ns + down_ns == pytest.approx(span)
    assert s.energy["background:dram:refresh"] == pytest.approx(span * dram.refresh_mw)


def test_a_gemm_streaming_near_the_dram_bandwidth_keeps_it_active_all_along():
    # at 98 % of the peak the gap after each 320 ns row is 6.5 ns, shorter than tCKE + tXP: no power-down
    s, dram = _streaming_gemm(0.98)
    assert s.energy["background:dram:active"] == pytest.approx(320_000.0 * dram.active_mw)
    assert "background:dram:power_down" not in s.energy


def test_dram_active_time_of_one_transfer_by_hand():
    p = DramPower(active_mw=40.0, power_down_mw=6.0, self_refresh_mw=1.0, refresh_mw=5.0, self_refresh_after_ns=1e6,
                  self_refresh_exit_pj=100.0, phy_area_mm2=0.0, source="test", power_down_exit_ns=2.0,
                  power_down_min_ns=3.0, bytes_per_ns=10.0, chunk_bytes=100)
    # 1,000 bytes over 1,000 ns: 100 ns of bursts in 10 chunks, gaps of 90 ns, each left with a 2 ns exit
    assert p.active_ns(1000.0, 1000.0) == pytest.approx(100.0 + 10 * 2.0)
    # 9,000 bytes over 1,000 ns: 900 ns of bursts in 90 chunks, gaps of 1.1 ns < 5 ns: active all along
    assert p.active_ns(1000.0, 9000.0) == pytest.approx(1000.0)
    bg = background([(0.0, 1000.0)], 1000.0, p, asleep_before=False, moved=[1000.0])
    assert bg.time_ns == pytest.approx({"active": 120.0, "power_down": 880.0, "self_refresh": 0.0})


# --- power-state instructions -----------------------------------------------------------------------------------
# bank 3 holds only activations: written during [100, 150), read during [800, 850) of a 1000 ns inference
DEAD = [(3072, 3136, 100.0, 150.0, 0, 1), (3072, 3136, 800.0, 850.0, 1, 0)]


def test_gating_a_bank_whose_contents_are_dead_saves_its_holding_leakage_by_hand():
    arena = [Region("sram", 3072, 3136, frozenset({"mine"}), weights=False)]
    weights = [Region("sram", 3072, 3136, None)]
    dead = static_energy(Accesses({"sram": DEAD}), arena, chip("idle"), 1000.0, "mine", cold=False)
    kept = static_energy(Accesses({"sram": DEAD}), weights, chip("idle"), 1000.0, "mine", cold=False)
    # both: on from the wake-up 10 ns before each access to its end (60 + 60 ns), retention between (640 ns),
    # woken twice. Activations: off before they are written (90 ns) and after their last read (150 ns); weights
    # wait in retention then too. Banks 0-2 are off all along in both.
    assert dead.bank_time["sram", "on"] == kept.bank_time["sram", "on"] == pytest.approx(120.0)
    assert dead.bank_time["sram", "retention"] == pytest.approx(640.0)
    assert kept.bank_time["sram", "retention"] == pytest.approx(640.0 + 240.0)
    assert dead.bank_time["sram", "off"] == pytest.approx(3000.0 + 240.0)
    assert dead.energy["wakeup:sram"] == kept.energy["wakeup:sram"] == pytest.approx(40.0)
    leak = {k: sum(v for key, v in s.energy.items() if key.startswith("leakage:sram")) for k, s in
            (("dead", dead), ("kept", kept))}
    assert leak["kept"] - leak["dead"] == pytest.approx(240.0 * (0.1 - 0.01))      # 1 mW x 240 ns x (10 % - 1 %)


def test_power_instructions_in_the_program_set_the_banks_states_by_hand():
    from aalbert.targets.codegen.program import Buf, Instr, Program
    from aalbert.targets.sim.gating import with_power
    from aalbert.targets.sim.timing import simulate

    target = chip("idle")
    bank3 = Buf("sram", 3072, 64)
    program = Program("hand", "mine", [
        Instr(0, "vec", "sfu", (), 0, "relu", "write", writes=(bank3,), elements=100),
        Instr(1, "vec", "sfu", (0,), 1, "relu", "other", elements=600),
        Instr(2, "vec", "sfu", (1,), 2, "relu", "read", reads=(bank3,), elements=100),
        Instr(3, "vec", "sfu", (2,), 3, "relu", "after", elements=200)])
    image = [Region("sram", 3072, 3136, frozenset({"mine"}), weights=False)]
    plain = simulate(program, target, image)
    assert plain.cycles == 1000
    planned = with_power(program, target, image, plain.accesses, [f * 1.0 for f in plain.finish])
    assert [i.text().split(";")[0].split(maxsplit=1)[1].strip() for i in planned.instrs if i.kind == "power"] == [
        "power.sram.3 power sram bank 3 off",                         # nothing in it yet
        "power.sram.3 power sram bank 3 on",                          # before the write: nothing to hide it behind
        "power.sram.3 power sram bank 3 retention  after 0002",       # between the write and the read
        "power.sram.3 power sram bank 3 on  after 0004",              # with what the read waits for: it stalls
        "power.sram.3 power sram bank 3 off  after 0006"]             # read for the last time: nothing needed later
    sim = simulate(planned, target, image)
    # each wake-up (10 cycles) delays the access after it: 1020 cycles. Bank 3: on [0, 110) and [710, 820),
    # in retention [110, 710), off [820, 1020); banks 0-2 off all along
    assert sim.cycles == 1020
    s = sim.warm
    assert s.bank_time["sram", "on"] == pytest.approx(220.0)
    assert s.bank_time["sram", "retention"] == pytest.approx(600.0)
    assert s.bank_time["sram", "off"] == pytest.approx(200.0 + 3 * 1020.0)
    assert s.energy["leakage:sram:on"] == pytest.approx(220.0)
    assert s.energy["leakage:sram:retention"] == pytest.approx(60.0)
    assert s.energy["wakeup:sram"] == pytest.approx(40.0)
