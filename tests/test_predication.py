"""Mixed-precision predication: a format with its own throughput, a target's predicated format, and the
early-exit policies running what follows the first off-ramp in it (EdgeBERT's 12 nm chip's FP4 mode)."""

from __future__ import annotations

import numpy as np
import pytest

from aalbert.ir.formats import afloat_decode, afloat_encode, parse_format
from aalbert.ir.module import content_hash
from aalbert.ir.parser import parse_module
from aalbert.mapper.backend import Stream, run_backend
from aalbert.passes.allocate import allocate
from aalbert.passes.allocation.problem import AllocatorOptions
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.passes.plan_activations import plan_module
from aalbert.targets.codegen.lower import lower
from aalbert.targets.hardware.predication import predicated
from aalbert.targets.hardware.spec import TargetError, parse_target, target_text
from aalbert.targets.sim.timing import simulate
from aalbert.targets.sim.workload import TaskExits, Workload, default_workload

FP4 = '[compute.formats."afloat<4,3>"]\nenergy_pj_per_mac = 0.1\nthroughput = 2\nsource = "test"\n'


def _target(extra: str = FP4, predicate: str = 'predicated_format = "afloat<4,3>"\n'):
    """edge_accel with an FP4 format and, unless told otherwise, that format predicated."""
    text, _ = target_text("edge_accel")
    text = text.replace("[compute.formats.afloat8]", extra + "\n[compute.formats.afloat8]", 1)
    text = text.replace('matmul_format = "afloat8"\n', 'matmul_format = "afloat8"\n' + predicate, 1)
    return parse_target(text, "t.toml")


def test_afloat4_is_a_sign_and_three_exponent_bits():
    assert str(parse_format("afloat<4,3>")) == "afloat<4,3>"
    w = np.array([0.3, -1.0, 0.01, 0.6, 0.0], np.float32)
    values = afloat_decode(afloat_encode(w, 4, 3, -7), 4, 3, -7)
    nonzero = values[values != 0]
    assert np.all(np.log2(np.abs(nonzero)) == np.round(np.log2(np.abs(nonzero))))  # powers of two: no mantissa
    assert values[1] == -1.0 and values[4] == 0.0
    with pytest.raises(ValueError, match="afloat<4,4> needs"):
        parse_format("afloat<4,4>")


@pytest.mark.parametrize("extra, predicate, match", [
    (FP4, 'predicated_format = "int2"\n', "predicated_format 'int2' is not in [compute.formats]"),
    (FP4, 'predicated_format = "fp5"\n', "key 'predicated_format'"),
    (FP4.replace("throughput = 2", "throughput = 0"), "", "key 'throughput' must be positive"),
])
def test_bad_predication_tables_are_one_line(extra, predicate, match):
    with pytest.raises(TargetError) as e:
        _target(extra, predicate)
    assert match in str(e.value) and "\n" not in str(e.value) and "t.toml" in str(e.value)


@pytest.fixture(scope="module")
def gemm():
    module = parse_module(
        "module {\n  weight @w : tensor<64x64xf32> hash \"0\"\n"
        "  graph @t(%x: tensor<64x64xf32>) -> (\"y\": tensor<64x64xf32>) {\n"
        "    %0 = weight {name = @w} : tensor<64x64xf32>\n    %1 = linear(%x, %0) : tensor<64x64xf32>\n"
        "    return %1\n  }\n}\n")
    w = module.weights["w"]
    w.data = np.random.default_rng(0).standard_normal(w.type.shape).astype(np.float32)
    w.hash = content_hash(w.data)
    return PassManager(parse_pipeline("share,quantize{format=afloat<8,3>}")).run(module)


def test_the_predicated_target_runs_every_product_in_fp4(gemm):
    target = _target()
    plain = _target(predicate="")
    assert predicated(plain) is plain and plain.compute.throughput("afloat<4,3>") == 2.0
    mode = predicated(target)
    fp4 = target.compute.formats["afloat<4,3>"]
    assert all(f.energy_pj_per_mac == fp4.energy_pj_per_mac and f.throughput == 2.0
               for f in mode.compute.formats.values())
    plan_module(gemm, target)
    allocate(gemm, target, default_workload(gemm.graphs), AllocatorOptions(spill=True))
    program = lower(gemm, target, "t")
    eight, four = simulate(program, target), simulate(program, mode)
    assert eight.macs == four.macs == 64 ** 3
    ratio = fp4.energy_pj_per_mac / target.compute.mac_energy("afloat<8,3>")
    assert four.energy["pe"] == pytest.approx(eight.energy["pe"] * ratio, rel=1e-12)
    assert four.busy["pe"] == pytest.approx(eight.busy["pe"] / 2, abs=len(program.instrs))  # twice the MACs/cycle
    assert {k: v for k, v in four.energy.items() if k != "pe" and ":" not in k} == pytest.approx(
        {k: v for k, v in eight.energy.items() if k != "pe" and ":" not in k}, rel=1e-12)


EXITS = """module {
  weight @a : tensor<32x32xf32> hash "0"
  weight @b : tensor<32x32xf32> hash "0"
  weight @c : tensor<32x32xf32> hash "0"
  graph @t(%x: tensor<16x32xf32>) -> ("exit_logits_1": tensor<16x32xf32>, "exit_logits_2": tensor<16x32xf32>,
                                     "logits": tensor<16x32xf32>) {
    %0 = weight {name = @a} : tensor<32x32xf32>
    %1 = linear(%x, %0) : tensor<16x32xf32>
    %2 = weight {name = @b} : tensor<32x32xf32>
    %3 = linear(%1, %2) : tensor<16x32xf32>
    %4 = weight {name = @c} : tensor<32x32xf32>
    %5 = linear(%3, %4) : tensor<16x32xf32>
    return %1, %3, %5
  }
}
"""


def test_early_exit_runs_the_rest_in_the_predicated_format_and_no_early_exit_does_not():
    rng = np.random.default_rng(1)
    module = parse_module(EXITS)
    for w in module.weights.values():
        w.data = rng.standard_normal(w.type.shape).astype(np.float32)
        w.hash = content_hash(w.data)
    module = PassManager(parse_pipeline("early-exit,share,quantize{format=afloat<8,3>}")).run(module)
    runs = {}
    for name, target in (("fp8", _target(predicate="")), ("fp4", _target())):
        plan_module(module, target)
        allocate(module, target, default_workload(module.graphs), AllocatorOptions(spill=True))
        wl = Workload({"t": 1.0}, exits={"t": TaskExits(histogram=(0.0, 0.0, 1.0), where="w.toml: [exits]")})
        runs[name] = run_backend(module, target, wl, Stream(3)).policies
    for key in ("none", "early-exit"):
        assert runs["fp8"][key].mean_layers == runs["fp4"][key].mean_layers == 3
    # conventional inference keeps its 8-bit products; early exit's layers after the first run in FP4
    assert runs["fp4"]["none"].stream.by_component["pe"] == pytest.approx(
        runs["fp8"]["none"].stream.by_component["pe"], rel=1e-12)
    assert runs["fp4"]["early-exit"].stream.by_component["pe"] < runs["fp8"]["early-exit"].stream.by_component["pe"]
    assert runs["fp4"]["early-exit"].stream.latencies.mean() < runs["fp8"]["early-exit"].stream.latencies.mean()
