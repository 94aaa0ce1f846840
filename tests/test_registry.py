"""The op registry: kinds and traits are true of every op, and a new op needs only its declaration."""

from __future__ import annotations

import numpy as np
import pytest

from aalbert.ir import registry
from aalbert.ir.interpreter import run
from aalbert.ir.registry import OpDef, OpKind, Trait, all_ops, register
from aalbert.ir.types import DType, TensorType
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.codegen.lower import lower
from aalbert.targets.hardware.spec import load_target
from aalbert.targets.sim.functional import execute

from .ir_cases import module_with_data


def test_every_op_declares_a_kind_and_known_traits():
    for name, op in all_ops().items():
        assert isinstance(op.kind, OpKind), name
        assert isinstance(op.traits, frozenset) and all(isinstance(t, Trait) for t in op.traits), name


def _operands(op: OpDef, rng) -> list[np.ndarray]:
    dtype = np.bool_ if op.name in ("and", "or", "xor") else np.float32
    return [(rng.standard_normal((3, 4)) > 0).astype(dtype) if dtype is np.bool_
            else rng.standard_normal((3, 4)).astype(dtype) for _ in range(2)]


@pytest.mark.parametrize("name", sorted(n for n, op in all_ops().items() if Trait.COMMUTATIVE in op.traits))
def test_commutative_ops_commute(name):
    op = all_ops()[name]
    a, b = _operands(op, np.random.default_rng(0))
    assert np.array_equal(op.eval([a, b], {})[0], op.eval([b, a], {})[0])


INDEX_MAP_CASES = {
    "reshape": {"shape": (4, 6)}, "transpose": {"perm": (2, 0, 1)}, "broadcast": {"shape": (2, 2, 3, 4)},
    "tile": {"repeats": (1, 2, 1)}, "slice": {"starts": (0, 1, 3), "stops": (2, 3, -1), "steps": (1, 1, -2)},
}


@pytest.mark.parametrize("name", sorted(n for n, op in all_ops().items() if Trait.INDEX_MAP in op.traits))
def test_index_map_ops_only_move_data(name):
    """An INDEX_MAP op applied to any tensor equals picking elements by its map (its result on positions)."""
    op = all_ops()[name]
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    positions = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    if name in ("gather", "gather_nd"):
        index = np.array([[1, 0], [2, 2]], dtype=np.int64) if name == "gather" else np.array([[1, 2]], dtype=np.int64)
        attrs = {"axis": 1} if name == "gather" else {"batch_dims": 0}
        got, where = op.eval([x, index], attrs)[0], op.eval([positions, index], attrs)[0]
    else:
        attrs = INDEX_MAP_CASES[name]
        got, where = op.eval([x], attrs)[0], op.eval([positions], attrs)[0]
    assert np.array_equal(got, x.reshape(-1)[where])
    if Trait.VIEW in op.traits:  # a view reads the bytes in their order
        assert np.array_equal(where.reshape(-1), positions.reshape(-1))


# --- a new op is one declaration --------------------------------------------------------------------------
@pytest.fixture
def new_ops():
    """Declare two ops the project has never seen, for one test."""

    class Square(OpDef):
        name = "square_for_test"
        kind = OpKind.ELEMENTWISE

        def infer(self, types, attrs, ctx):
            return [types[0]]

        def eval(self, args, attrs):
            return [args[0] * args[0]]

    class Flip(OpDef):
        name = "flip_for_test"
        kind = OpKind.LAYOUT

        def infer(self, types, attrs, ctx):
            return [types[0]]

        def eval(self, args, attrs):
            return [np.ascontiguousarray(np.flip(args[0], axis=-1))]

    register(Square)
    register(Flip)
    yield
    del registry.REGISTRY["square_for_test"], registry.REGISTRY["flip_for_test"]


NEW_OPS_IR = """module {
  weight @w : tensor<32x16xf32> hash "0"
  graph @t(%x: tensor<8x32xf32>) -> ("y": tensor<8x16xf32>) {
    %0 = weight {name = @w} : tensor<32x16xf32>
    %1 = square_for_test(%x) : tensor<8x32xf32>
    %2 = linear(%1, %0) : tensor<8x16xf32>
    %3 = flip_for_test(%2) : tensor<8x16xf32>
    return %3
  }
}
"""


def test_a_new_op_compiles_lowers_and_runs_with_no_other_change(new_ops):
    """Passes, lowering and functional execution ask the op's kind, so a declaration is all a new op needs."""
    module = module_with_data(NEW_OPS_IR)
    PassManager(parse_pipeline("canonicalize,share,plan-activations,allocate{target=edge_accel}")).run(module)
    target = load_target("edge_accel")
    program = lower(module, target, "t")
    by_op = {i.op: i.kind for i in program.instrs}
    assert by_op["square_for_test"] == "vec" and by_op["flip_for_test"] == "dma"
    x = {"x": np.random.default_rng(2).standard_normal((8, 32)).astype(np.float32)}
    np.testing.assert_allclose(execute(program, module, target, x)["y"], run(module, "t", x)["y"], rtol=1e-5)
    assert TensorType((8, 16), DType.F32) == module.graphs["t"].outputs[0][1].type
