"""Pass infrastructure (pipeline syntax, typed options, checked manager) and the built-in passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

from aalbert.errors import IRVerifyError, OptionError
from aalbert.ir.module import Module, content_hash
from aalbert.ir.parser import parse_module
from aalbert.passes.base import PASSES, Pass, PassManager, parse_pipeline, register_pass


@dataclass(frozen=True)
class _Demo(Pass):
    name = "demo-options"
    bits: int = 8
    ratio: float = 0.5
    strict: bool = False
    mode: Literal["fast", "exact"] = "fast"

    def __post_init__(self):
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be in [1, 16], got {self.bits}")

    def run(self, module, analyses):
        return module


@dataclass(frozen=True)
class _Breaker(Pass):
    name = "breaker"

    def run(self, module, analyses):
        graph = next(iter(module.graphs.values()))
        graph.nodes[0].outputs[0].name = graph.inputs[0].name  # a name defined twice
        return module


@pytest.fixture(autouse=True)
def demo_passes():
    for cls in (_Demo, _Breaker):
        register_pass(cls)
    yield
    for cls in (_Demo, _Breaker):
        PASSES.pop(cls.name)


def test_pipeline_with_typed_options():
    p1, p2, p3 = parse_pipeline("verify, demo-options{bits=4, ratio=0.25,strict=true,mode=exact},dce")
    assert p1.name == "verify" and p3.name == "dce"
    assert p2 == _Demo(bits=4, ratio=0.25, strict=True, mode="exact")
    assert p2.spec() == "demo-options{bits=4,ratio=0.25,strict=true,mode=exact}"
    assert parse_pipeline(p2.spec()) == [p2]


@pytest.mark.parametrize("text, message", [
    ("", "empty pass pipeline"),
    ("nope", "unknown pass 'nope'; known passes: "),
    ("demo-options{size=3}", "pass 'demo-options': unknown option 'size' (options: bits, mode, ratio, strict)"),
    ("demo-options{bits=x}", "pass 'demo-options': option 'bits' must be int, got 'x'"),
    ("demo-options{bits=40}", "pass 'demo-options': bits must be in [1, 16], got 40"),
    ("demo-options{mode=slow}", "option 'mode' must be one of fast, exact, got 'slow'"),
    ("demo-options{strict=maybe}", "option 'strict' must be bool"),
    ("demo-options{bits}", "bad option 'bits' (expected key=value)"),
    ("demo-options{bits=1,bits=2}", "option 'bits' given twice"),
    ("verify,", "ends with ','"),
    ("verify dce", "expected ',' at character 8"),
])
def test_bad_pipelines(text, message):
    with pytest.raises(OptionError) as e:
        parse_pipeline(text)
    assert message in str(e.value)


SIMPLE = """module {
  weight @w : tensor<2x3xf32> hash "{hash}"

  graph @t(%x: tensor<4x3xf32>) -> ("y": tensor<4x2xf32>) {
    %0 = weight {name = @w} : tensor<2x3xf32>
    %1 = transpose(%0) {perm = [1, 0]} : tensor<3x2xf32>
    %2 = matmul(%x, %1) : tensor<4x2xf32>
    %3 = tanh(%x) : tensor<4x3xf32>
    return %2
  }
}
"""


def _with_data() -> tuple[Module, np.ndarray]:
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    module = parse_module(SIMPLE.replace("{hash}", content_hash(data)))
    module.weights["w"].data = data
    return module, data


def test_manager_names_the_pass_that_broke_the_ir():
    module, _ = _with_data()
    with pytest.raises(IRVerifyError,
                       match=r"after pass 'breaker': graph @t, node '%x = weight\(\)': %x defined twice"):
        PassManager(parse_pipeline("verify,breaker")).run(module)


def test_manager_keeps_text_after_each_pass():
    module, _ = _with_data()
    manager = PassManager(parse_pipeline("dce,verify"), keep_text=True)
    manager.run(module)
    assert [name for name, _ in manager.dumps] == ["01-dce.ir", "02-verify.ir"]
    assert "tanh" not in manager.dumps[0][1]


def test_fold_transposes_stores_the_data_transposed():
    """The text of the fold is checked in tests/passes/fold-transposes.ir; here, the data."""
    module, data = _with_data()
    PassManager(parse_pipeline("fold-transposes,dce")).run(module)
    np.testing.assert_array_equal(module.weights["w"].data, data.T)
    assert module.weights["w"].hash == content_hash(data.T.copy())


def test_merge_deduplicates_weights_by_content():
    a, _ = _with_data()
    b, _ = _with_data()
    b.graphs["u"] = b.graphs.pop("t")
    b.graphs["u"].name = "u"
    a.merge(b)
    assert list(a.weights) == ["w"] and list(a.graphs) == ["t", "u"]
    with pytest.raises(ValueError, match="task 't' defined twice"):
        a.merge(_with_data()[0])
