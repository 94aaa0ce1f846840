"""Elementwise ops with numpy broadcasting: arithmetic, comparisons, logic,
activations, `cast`, `clip` and `where`.

Binary ops require operands of one element type (the exponent of `pow`
excepted) and broadcast like numpy; comparisons produce `bool`.
"""

from __future__ import annotations

import math

import numpy as np

from aalbert.ir.registry import AttrKind, OpDef, OpKind, Trait, register, require
from aalbert.ir.types import DType, TensorType


def broadcast(types, op: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*(t.shape for t in types)))
    except ValueError:
        shapes = " and ".join(str(t) for t in types)
        from aalbert.ir.registry import InferError
        raise InferError(f"{op}: shapes {shapes} do not broadcast") from None


def _unary(name: str, fn, *, domain: str, result: DType | None = None, doc: str = "",
           traits: frozenset[Trait] = frozenset()):
    """Declare a one-operand op. domain: float | numeric | bool."""

    class Unary(OpDef):
        kind = OpKind.ELEMENTWISE
        operands = (1, 1)

        def infer(self, types, attrs, ctx):
            (t,) = types
            _check_domain(self.name, t.dtype, domain)
            return [TensorType(t.shape, result or t.dtype)]

        def eval(self, args, attrs):
            out = fn(args[0])
            return [np.asarray(out, dtype=(result or DType.from_numpy(args[0].dtype)).np)]

    Unary.name = name
    Unary.doc = doc
    Unary.traits = traits
    Unary.__name__ = Unary.__qualname__ = f"{name.title()}Op"
    register(Unary)


def _check_domain(op: str, dtype: DType, domain: str) -> None:
    if domain == "float":
        require(dtype.is_float, f"{op} needs a floating-point operand, got {dtype}")
    elif domain == "numeric":
        require(dtype is not DType.BOOL, f"{op} needs a numeric operand, got {dtype}")
    elif domain == "bool":
        require(dtype is DType.BOOL, f"{op} needs a bool operand, got {dtype}")


def _binary(name: str, fn, *, domain: str, compare: bool = False, doc: str = "",
            traits: frozenset[Trait] = frozenset()):
    """Declare a two-operand op. Operands share one element type unless the op has MIXED_OPERANDS
    (then the second needs only be numeric)."""

    class Binary(OpDef):
        kind = OpKind.ELEMENTWISE
        operands = (2, 2)

        def infer(self, types, attrs, ctx):
            a, b = types
            _check_domain(self.name, a.dtype, domain)
            if Trait.MIXED_OPERANDS in self.traits:
                _check_domain(self.name, b.dtype, "numeric")
            else:
                require(a.dtype == b.dtype,
                        f"{self.name}: operand types differ ({a.dtype} and {b.dtype})")
            shape = broadcast(types, self.name)
            return [TensorType(shape, DType.BOOL if compare else a.dtype)]

        def eval(self, args, attrs):
            out = fn(args[0], args[1])
            dtype = np.dtype(bool) if compare else args[0].dtype
            return [np.asarray(out, dtype=dtype)]

    Binary.name = name
    Binary.doc = doc
    Binary.traits = traits
    Binary.__name__ = Binary.__qualname__ = f"{name.title()}Op"
    register(Binary)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.divide(a, b)
    # integer division truncates toward zero, as in ONNX and C
    q = np.abs(a) // np.where(b == 0, 1, np.abs(b))
    return np.where((a < 0) != (b < 0), -q, q)


def _power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return np.power(a, b.astype(a.dtype))
    return np.power(a, b.astype(a.dtype))


def _scipy_special(name: str):
    """scipy.special's `name`, imported at first use: it costs a fifth of a second at start-up."""

    def fn(x):
        from scipy import special

        return getattr(special, name)(x)

    return fn


_erf = _scipy_special("erf")


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    dt = x.dtype
    if approximate == "tanh":
        c = dt.type(math.sqrt(2.0 / math.pi))
        inner = c * (x + dt.type(0.044715) * x * x * x)
        return dt.type(0.5) * x * (dt.type(1.0) + np.tanh(inner))
    return dt.type(0.5) * x * (dt.type(1.0) + _erf(x * dt.type(1.0 / math.sqrt(2.0))))


ACTIVATION = frozenset({Trait.ACTIVATION})
COMMUTATIVE = frozenset({Trait.COMMUTATIVE})

# --- unary -------------------------------------------------------------------
_unary("neg", np.negative, domain="numeric")
_unary("abs", np.abs, domain="numeric")
_unary("relu", lambda x: np.maximum(x, x.dtype.type(0)), domain="numeric", traits=ACTIVATION)
_unary("sqrt", np.sqrt, domain="float")
_unary("exp", np.exp, domain="float")
_unary("log", np.log, domain="float")
_unary("erf", _erf, domain="float", traits=ACTIVATION)
_unary("tanh", np.tanh, domain="float")
_unary("sigmoid", _scipy_special("expit"), domain="float", traits=ACTIVATION)
_unary("silu", lambda x: x * _scipy_special("expit")(x), domain="float", traits=ACTIVATION,
       doc="x * sigmoid(x) (SiLU, swish): the activation of Llama-style gated FFNs.")
_unary("sin", np.sin, domain="float")
_unary("cos", np.cos, domain="float")
_unary("reciprocal", lambda x: x.dtype.type(1) / x, domain="float")
_unary("sign", np.sign, domain="numeric")
_unary("floor", np.floor, domain="float")
_unary("ceil", np.ceil, domain="float")
_unary("not", np.logical_not, domain="bool")
_unary("isnan", np.isnan, domain="float", result=DType.BOOL)

# --- binary ------------------------------------------------------------------
_binary("add", np.add, domain="numeric", traits=COMMUTATIVE)
_binary("sub", np.subtract, domain="numeric")
_binary("mul", np.multiply, domain="numeric", traits=COMMUTATIVE)
_binary("div", _divide, domain="numeric")
_binary("pow", _power, domain="numeric", traits=frozenset({Trait.MIXED_OPERANDS}))
_binary("max", np.maximum, domain="numeric", traits=COMMUTATIVE)
_binary("min", np.minimum, domain="numeric", traits=COMMUTATIVE)
_binary("equal", np.equal, domain="any", compare=True, traits=COMMUTATIVE)
_binary("less", np.less, domain="numeric", compare=True)
_binary("less_equal", np.less_equal, domain="numeric", compare=True)
_binary("greater", np.greater, domain="numeric", compare=True)
_binary("greater_equal", np.greater_equal, domain="numeric", compare=True)
_binary("and", np.logical_and, domain="bool", traits=COMMUTATIVE)
_binary("or", np.logical_or, domain="bool", traits=COMMUTATIVE)
_binary("xor", np.logical_xor, domain="bool", traits=COMMUTATIVE)


@register
class GeluOp(OpDef):
    name = "gelu"
    kind = OpKind.ELEMENTWISE
    traits = ACTIVATION
    attrs = {"approximate": AttrKind.STR}
    doc = "GELU; approximate is 'none' (erf form) or 'tanh'."

    def infer(self, types, attrs, ctx):
        (t,) = types
        _check_domain("gelu", t.dtype, "float")
        require(attrs["approximate"] in ("none", "tanh"),
                f"gelu: approximate must be 'none' or 'tanh', got {attrs['approximate']!r}")
        return [t]

    def eval(self, args, attrs):
        return [np.asarray(gelu(args[0], attrs["approximate"]), dtype=args[0].dtype)]


@register
class CastOp(OpDef):
    name = "cast"
    kind = OpKind.ELEMENTWISE
    attrs = {"to": AttrKind.STR}
    doc = "Convert the element type (floats to ints truncate toward zero)."

    def infer(self, types, attrs, ctx):
        (t,) = types
        try:
            to = DType(attrs["to"])
        except ValueError:
            from aalbert.ir.registry import InferError
            raise InferError(f"cast: unknown element type {attrs['to']!r}") from None
        return [TensorType(t.shape, to)]

    def eval(self, args, attrs):
        return [np.asarray(args[0]).astype(DType(attrs["to"]).np)]


@register
class ClipOp(OpDef):
    name = "clip"
    kind = OpKind.ELEMENTWISE
    attrs = {"min": AttrKind.FLOAT, "max": AttrKind.FLOAT}
    doc = "Clamp to [min, max]; -inf and inf mean unbounded."

    def infer(self, types, attrs, ctx):
        (t,) = types
        _check_domain("clip", t.dtype, "numeric")
        return [t]

    def eval(self, args, attrs):
        x = args[0]
        lo, hi = attrs["min"], attrs["max"]
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            lo = info.min if math.isinf(lo) else int(lo)
            hi = info.max if math.isinf(hi) else int(hi)
        out = np.minimum(np.maximum(x, x.dtype.type(lo)), x.dtype.type(hi))
        return [np.asarray(out, dtype=x.dtype)]


@register
class WhereOp(OpDef):
    name = "where"
    kind = OpKind.ELEMENTWISE
    operands = (3, 3)
    doc = "Select from the second or third operand by a bool condition."

    def infer(self, types, attrs, ctx):
        c, a, b = types
        require(c.dtype is DType.BOOL, f"where: condition must be bool, got {c.dtype}")
        require(a.dtype == b.dtype, f"where: branch types differ ({a.dtype} and {b.dtype})")
        return [TensorType(broadcast(types, "where"), a.dtype)]

    def eval(self, args, attrs):
        return [np.asarray(np.where(args[0], args[1], args[2]), dtype=args[1].dtype)]
