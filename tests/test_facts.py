"""The schema of weight and graph facts: one declaration read by the printer, the parser and the verifier."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from aalbert.errors import IRParseError, IRVerifyError
from aalbert.ir.encoding import Encoding, Role
from aalbert.ir.facts import FactError, fact_attrs, fact_record, schema
from aalbert.ir.parser import parse_module
from aalbert.ir.placement import Arena, Placement
from aalbert.ir.printer import print_module
from aalbert.ir.verifier import verify

PLACED = """module {
  weight @w : tensor<4x4xf32> hash "0" {role = "task", tasks = ["a"], uses = 1, kind = "adapter", format = "afloat", bits = 8, exp_bits = 3, exp_bias = -4, storage = "bitmask", nnz = 9, level = "sram", residency = "staged", offset = 64, home = "dram", home_offset = 0}

  graph @a(%x: tensor<1x4xf32> at 0) -> ("y": tensor<1x4xf32>) {
    arena {size = 128, total = 192, activation_bits = 16, align = 64, level = "sram", offset = 4096}
    %0 = weight {name = @w} : tensor<4x4xf32>
    %1 = linear(%x, %0) : tensor<1x4xf32> at 64
    return %1
  }
}
"""  # noqa: E501 (the printed form: a weight's facts on one line)


def test_every_fact_round_trips_through_the_text():
    module = parse_module(PLACED)
    w = module.weights["w"]
    assert w.role == Role(scope="task", tasks=("a",), uses=1, kind="adapter")
    assert w.encoding.format == "afloat" and w.encoding.nnz == 9 and w.encoding.exp_bias == -4
    assert w.placement == Placement("sram", "staged", 64, "dram", 0)
    assert module.graphs["a"].arena == Arena(128, 192, 16, 64, "sram", 4096)
    assert print_module(module) == PLACED


@pytest.mark.parametrize("facts, message", [
    ('role = "shared", uses = 1, colour = "red"', "unknown fact 'colour'"),
    ('role = "everyone", uses = 1', "fact 'role' must be 'shared' or 'task'"),
    ('role = "task", uses = 1', "a role is shared \\(no tasks\\) or task-specific"),
    ('uses = 1', "fact 'role' is missing"),
    ('role = "shared", uses = -2', "fact 'uses' must be an integer >= 0"),
    ('role = "shared", uses = 1.5', "fact 'uses' must be an integer"),
    ('format = "afloat", bits = 8, exp_bits = 9', "afloat<8,9> needs"),
    ('block = [16, "x"]', "a list attribute holds only ints"),
    ('level = "sram", residency = "resident"', "fact 'offset' is missing"),
    ('level = "sram", residency = "staged", offset = 0', "a staged placement has a home"),
    ('level = "sram", residency = "resident", offset = -64', "fact 'offset' must be an integer >= 0"),
])
def test_a_bad_fact_is_one_error_at_its_weight(facts, message):
    text = f'module {{\n  weight @w : tensor<4x4xf32> hash "0" {{{facts}}}\n}}\n'
    with pytest.raises(IRParseError, match=message) as e:
        parse_module(text, "m.ir")
    assert str(e.value).startswith("m.ir:2:") and len(str(e.value).splitlines()) == 1


def test_a_bad_arena_is_one_error():
    text = PLACED.replace("size = 128, total = 192", "size = 128")
    with pytest.raises(IRParseError, match="arena: fact 'total' is missing"):
        parse_module(text)


def test_the_verifier_checks_the_facts_a_pass_wrote():
    module = parse_module(PLACED)
    module.weights["w"].placement = Placement("sram", "resident", -8)
    with pytest.raises(IRVerifyError, match="weight @w: fact 'offset' must be an integer >= 0"):
        verify(module)
    module = parse_module(PLACED)
    module.graphs["a"].arena = dataclasses.replace(module.graphs["a"].arena, size=-1)
    with pytest.raises(IRVerifyError, match="graph @a: arena: fact 'size'"):
        verify(module)
    module = parse_module(PLACED)
    module.weights["w"].role = Role(scope="shared", tasks=("a",), uses=1)
    with pytest.raises(IRVerifyError, match="a role is shared"):
        verify(module)


@dataclass(frozen=True)
class _Future:
    """A record with fields of every kind the schema takes, as a later pass might add."""

    ratio: float | None = None
    label: str = "x"
    choice: Literal["a", "b"] = "a"
    count: int = field(default=0, metadata={"min": 0, "key": "n"})
    names: tuple[str, ...] = ()
    flag: bool = False


def test_a_new_record_needs_only_its_declaration():
    record = _Future(ratio=0.25, choice="b", count=3, names=("p", "q"), flag=True)
    attrs = fact_attrs(record)
    assert attrs == {"ratio": 0.25, "choice": "b", "n": 3, "names": ("p", "q"), "flag": True}
    assert fact_record(_Future, attrs) == record
    assert fact_attrs(_Future()) == {}
    with pytest.raises(FactError, match="fact 'ratio' must be a number"):
        fact_record(_Future, {"ratio": "high"})
    assert [f.key for f in schema(_Future)] == ["ratio", "label", "choice", "n", "names", "flag"]


def test_encoding_facts_are_those_that_differ_from_the_plain_storage_of_the_weights_type():
    from aalbert.ir.types import DType
    assert fact_attrs(Encoding.plain(DType.F16), Encoding.plain(DType.F16)) == {}
    stored_f16 = Encoding(format="f16", bits=16)
    assert fact_attrs(stored_f16, Encoding.plain(DType.F32)) == {"format": "f16", "bits": 16}
    assert fact_record(Encoding, {"format": "f16", "bits": 16}, Encoding.plain(DType.F32)) == stored_f16
