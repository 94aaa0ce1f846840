"""Counts apart from prices: counts x prices equal the simulator's energies, and re-pricing a compile's counts
with prices perturbed by up to 30 % agrees with a recompile at those prices, without running a pass.

Re-pricing holds the compile's decisions fixed: placement, mapping, and the power instructions (when each bank
is woken and gated, planned at the compile's prices); it takes the DRAM's self-refresh decision again. A
recompile is compared where it took the same decisions."""

from __future__ import annotations

import dataclasses
import random

import pytest

from aalbert.errors import OptionError
from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.study.evaluate import ModelSpec, place, prepared
from aalbert.targets.hardware.spec import builtin_targets, load_target
from aalbert.targets.sim import counts as counts_mod
from aalbert.targets.sim.counts import StreamSpec, backend_counts, expected_stream, price, priced_result
from aalbert.targets.sim.power import memory_image
from aalbert.targets.sim.prices import prices_of, retarget
from aalbert.targets.sim.requests import run_stream
from aalbert.targets.sim.timing import with_static
from aalbert.targets.sim.workload import default_workload

REQUESTS = 6
TRIES = 8


def _module(family: str, tasks: int = 2):
    return prepared(ModelSpec(family, tasks, "tiny", seq_len=16), all_tasks=tasks)


def _compile(module, target, wl):
    try:
        placed, _ = place(module, target, wl, spill=False)
    except OptionError:
        placed, _ = place(module, target, wl, spill=True)
    return run_backend(placed, target, wl, Stream(REQUESTS))


def _layout(module) -> tuple:
    """Placement and mapping: what a recompile must keep for re-pricing to stand for it."""
    weights = tuple(sorted((w.name, repr(w.placement)) for w in module.weights.values()))
    maps = tuple((t, i, repr(n.mapping)) for t, g in module.graphs.items() for i, n in enumerate(g.nodes))
    arenas = tuple((t, repr(g.arena)) for t, g in module.graphs.items())
    return weights, maps, arenas


def _power_plan(backend) -> tuple:
    """Every task's power instructions: the gating the compiler planned at its prices."""
    return tuple((t, tuple((i.id, i.level, i.bank, i.state, i.deps) for i in backend.program(t).instrs
                           if i.kind == "power")) for t in backend.results)


def _close(a: dict, b: dict, rel: float) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=rel, abs=1e-9), k


@pytest.mark.parametrize("family", ["adapter-albert", "albert"])
@pytest.mark.parametrize("name", builtin_targets())
def test_counts_times_prices_equal_the_simulated_energy(family, name):
    target = load_target(name)
    module = _module(family)
    wl = default_workload(module.graphs)
    backend = _compile(module, target, wl)
    counts = backend_counts(backend)
    p = prices_of(target)
    for t, sim in backend.results.items():
        for cold in (False, True):
            energy = price(counts[t], p, cold)
            expected = {**sim.dynamic, **(sim.cold if cold else sim.warm).energy}
            _close(energy, expected, 1e-9)
        r = priced_result(counts[t], p, sim.after_power_up)
        assert r.warm.idle_mw == pytest.approx(sim.warm.idle_mw, rel=1e-9)
        assert r.cold.power_up_pj == pytest.approx(sim.cold.power_up_pj, rel=1e-9)
    # the request stream re-simulated from counts alone is the compile's
    results = {t: priced_result(counts[t], p, r.after_power_up) for t, r in backend.results.items()}
    stream = run_stream(backend.requests, backend.module, target, results, wl.inferences_per_wakeup)
    assert stream.energy_pj == pytest.approx(backend.stream.energy_pj, rel=1e-9)
    _close(stream.by_component, backend.stream.by_component, 1e-9)


def _perturbed(p: dict, rng: random.Random) -> dict:
    out = {}
    for k, v in sorted(p.items()):
        out[k] = v * rng.uniform(0.7, 1.3)
        if k.startswith(("retention:", "off:")):
            out[k] = min(1.0, out[k])
    return out


@pytest.mark.parametrize("name", builtin_targets())
def test_repricing_with_prices_30_percent_off_agrees_with_a_recompile(name, monkeypatch):
    target = load_target(name)
    module = _module("adapter-albert")
    wl = default_workload(module.graphs)
    base = _compile(module, target, wl)
    counts = backend_counts(base)
    rng = random.Random(f"reprice {name}")
    compared = 0
    for _ in range(TRIES):
        prices = _perturbed(prices_of(target), rng)
        other = retarget(target, prices)
        assert prices_of(other) == pytest.approx(prices)
        again = _compile(module, other, wl)
        if _layout(again.module) != _layout(base.module) or _power_plan(again) != _power_plan(base):
            continue  # the perturbed prices moved a weight, changed a mapping or a bank's gating: a recompile's
        with monkeypatch.context() as m:  # re-pricing runs no pass, lowers nothing, simulates nothing
            for where, attr in (("aalbert.passes.base.PassManager", "run"), ("aalbert.mapper.backend", "lower"),
                                ("aalbert.targets.sim.timing", "simulate"), ("aalbert.targets.sim.power",
                                                                           "static_energy")):
                m.setattr(where + "." + attr, _refuse)
            results = {t: priced_result(counts[t], prices, r.after_power_up) for t, r in base.results.items()}
            for t, sim in again.results.items():
                _close(results[t].energy, sim.energy, 1e-3)
            stream = run_stream(base.requests, base.module, other, results, wl.inferences_per_wakeup)
        assert stream.energy_pj == pytest.approx(again.stream.energy_pj, rel=1e-3)
        compared += 1
    assert compared >= 3


def _refuse(*args, **kwargs):
    raise AssertionError("re-pricing ran a pass or the simulator")


@pytest.mark.parametrize("per_wakeup", [1, 3, 6])
def test_the_closed_form_stream_is_the_simulated_one(per_wakeup):
    target = load_target("edge_accel")
    module = _module("adapter-albert", 3)
    wl = default_workload(module.graphs)
    wl = dataclasses.replace(wl, inferences_per_wakeup=per_wakeup)
    try:
        placed, _ = place(module, target, wl, spill=False)
    except OptionError:
        placed, _ = place(module, target, wl, spill=True)
    backend = run_backend(placed, target, wl, Stream(6))
    counts = backend_counts(backend)
    expected = expected_stream(counts, prices_of(target), StreamSpec(wl.inferences_per_second, per_wakeup, 1.0))
    assert expected == pytest.approx(backend.stream.energy_per_inference_pj, rel=2e-3)


@pytest.mark.parametrize("name", builtin_targets())
def test_repricing_is_the_simulator_on_the_compiled_program_at_any_prices(name):
    """Prices 30 % off, on the compiled program and its schedule: counts x prices equal the simulator's static
    energy at those prices, warm and cold, exactly (the DRAM's self-refresh decided again in both)."""
    target = load_target(name)
    module = _module("adapter-albert")
    backend = _compile(module, target, default_workload(module.graphs))
    counts = backend_counts(backend)
    image = memory_image(backend.module, target)
    rng = random.Random(f"static {name}")
    for _ in range(3):
        prices = _perturbed(prices_of(target), rng)
        other = retarget(target, prices)
        for t, sim in backend.results.items():
            again = with_static(sim, other, image, False)
            _close(counts_mod.price_static(counts[t].warm, prices), again.warm.energy, 1e-9)
            _close(counts_mod.price_static(counts[t].cold, prices), again.cold.energy, 1e-9)
            assert counts_mod.idle_mw(counts[t].warm, prices) == pytest.approx(again.warm.idle_mw, rel=1e-9)


def test_dram_self_refresh_is_decided_again_at_new_prices():
    """A self-refresh exit so cheap that every idle gap between transfers sleeps: the counts keep the DRAM's
    gaps, so re-pricing takes the simulator's decision again and agrees with it."""
    target = load_target("edge_accel_dram")
    module = _module("adapter-albert")
    backend = _compile(module, target, default_workload(module.graphs))
    counts = backend_counts(backend)
    t, sim = next(iter(backend.results.items()))
    p = prices_of(target)
    assert len(counts[t].warm.drams["dram"].gaps) > 2
    other = {**p, "dram:dram:exit_pj": p["dram:dram:exit_pj"] * 1e-6,
             "dram:dram:sr_after_ns": p["dram:dram:sr_after_ns"] * 1e-6}
    again = with_static(sim, retarget(target, other), memory_image(backend.module, target), False)
    priced = counts_mod.price_static(counts[t].warm, other)
    _close(priced, again.warm.energy, 1e-9)
    # the decision moved: gaps that were in power-down now sleep, and each transfer after one exits
    assert priced["background:dram:self_refresh"] > sim.warm.energy["background:dram:self_refresh"]
    assert priced["background:dram:power_down"] < sim.warm.energy["background:dram:power_down"]
    exits = sim.warm.energy["background:dram:self_refresh_exit"] / p["dram:dram:exit_pj"]
    assert priced["background:dram:self_refresh_exit"] / other["dram:dram:exit_pj"] > exits + 1


def test_bank_gating_is_the_compiled_power_instructions():
    """Wake-ups a million times dearer: re-pricing charges the wake-ups the program's power instructions make
    (the compiled plan, held fixed), while a recompile at that price plans fewer: gating is a decision of the
    compile, which the re-pricing test compares only where a recompile keeps it."""
    target = load_target("edge_accel")
    module = _module("adapter-albert")
    wl = default_workload(module.graphs)
    backend = _compile(module, target, wl)
    counts = backend_counts(backend)
    t = next(iter(backend.results))
    program = backend.program(t)
    gated = {i.level for i in program.instrs if i.kind == "power"}
    assert gated
    p = prices_of(target)
    dear = {**p, **{f"wake_pj:{n}": p[f"wake_pj:{n}"] * 1e6 for n in gated}}
    priced = counts_mod.price_static(counts[t].warm, dear)
    for n in gated:
        ons = sum(1 for i in program.instrs if i.kind == "power" and i.level == n and i.state == "on")
        assert priced[f"wakeup:{n}"] == pytest.approx(ons * dear[f"wake_pj:{n}"])
    again = _compile(module, retarget(target, dear), wl)
    assert _power_plan(again) != _power_plan(backend)
    ons_again = sum(1 for i in again.program(t).instrs if i.kind == "power" and i.state == "on")
    assert ons_again < sum(1 for i in program.instrs if i.kind == "power" and i.state == "on")


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_dram_active_time_at_another_clock_is_the_burst_model(scale):
    """Transfers stretched by a slower clock (or shortened by a faster one): the active standby the counts give is
    `DramPower.active_ns` of each stretched transfer (its bursts do not stretch)."""
    target = load_target("edge_accel_dram")
    module = _module("adapter-albert")
    backend = _compile(module, target, default_workload(module.graphs))
    d = next(iter(backend_counts(backend).values())).warm.drams["dram"]
    power = target.level("dram").dram
    expected = sum(power.active_ns(length * scale, n) for length, n in zip(d.lengths, d.nbytes))
    active, within = d.active(scale)
    assert active == pytest.approx(expected, rel=1e-12)
    assert within == pytest.approx(d.lengths.sum() * scale - expected, rel=1e-9)
    assert 0 < active < d.lengths.sum() * scale  # some transfers idle between their rows
