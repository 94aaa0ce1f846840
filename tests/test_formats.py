"""Number formats and exact byte accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aalbert.ir.encoding import Encoding
from aalbert.ir.formats import (
    CHUNK,
    afloat_bias,
    afloat_decode,
    afloat_encode,
    afloat_encode_search,
    afloat_magnitudes,
    int_decode,
    int_encode,
    int_scales,
)
from aalbert.ir.types import DType, TensorType


# --- AdaptivFloat --------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits, exp_bits", [(8, 3), (8, 4), (6, 2), (4, 1)])
@pytest.mark.parametrize("bias", [-10, -7, 0, 3])
def test_every_afloat_value_round_trips(bits, exp_bits, bias):
    codes = np.arange(2 ** bits, dtype=np.uint8)
    values = afloat_decode(codes, bits, exp_bits, bias)
    again = afloat_encode(values, bits, exp_bits, bias)
    half = 2 ** (bits - 1)
    # the two zeros (+0 and the sign bit alone) both encode as code 0; everything else exactly
    expect = np.where(codes == half, 0, codes)
    np.testing.assert_array_equal(again, expect)
    np.testing.assert_array_equal(afloat_decode(again, bits, exp_bits, bias), values)


def test_afloat83_by_hand():
    # max |w| = 1.0: top exponent 2^0, so bias = 0 - (2^3 - 1) = -7
    w = np.array([1.0, 0.3, -0.3, 0.0, 5.0, 0.004, 0.0042, 0.00830078125], np.float32)
    assert afloat_bias(np.array([1.0, -0.5]), 3) == -7
    codes = afloat_encode(w, 8, 3, -7)
    # 0.3 = 2^-2 * 1.2, mantissa round(0.2 * 16) = 3: sign 0, exponent 5, mantissa 3
    assert codes[1] == 0b0_101_0011 and codes[2] == 0b1_101_0011
    assert afloat_decode(codes[1:2], 8, 3, -7)[0] == 0.25 * (1 + 3 / 16)
    # largest magnitude 2^0 * (1 + 15/16); larger values saturate
    assert afloat_decode(codes[[0, 4]], 8, 3, -7).tolist() == [1.0, 1.9375]
    assert codes[4] == 0b0_111_1111
    # zero is reserved (E=0, M=0); the smallest magnitude is 2^-7 * (1 + 1/16) = 0.00830078125
    assert codes[3] == 0
    smallest = 2.0 ** -7 * (1 + 1 / 16)
    assert afloat_decode(codes[7:8], 8, 3, -7)[0] == smallest and codes[7] == 1
    # below half the smallest magnitude rounds to zero, above it to the smallest
    assert codes[5] == 0 and codes[6] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=1, max_size=40))
def test_afloat_rounds_to_nearest(values):
    w = np.array(values, np.float32)
    bias = afloat_bias(w, 3)
    got = afloat_decode(afloat_encode(w, 8, 3, bias), 8, 3, bias).astype(np.float64)
    mags = np.sort(afloat_magnitudes(8, 3, bias))
    grid = np.concatenate([-mags[::-1], mags])
    nearest = np.abs(w.astype(np.float64)[:, None] - grid[None, :]).min(axis=1)
    assert np.all(np.abs(got - w) <= nearest + 1e-12)


@pytest.mark.parametrize("bits, exp_bits", [(8, 3), (8, 4), (8, 1), (8, 6), (6, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_afloat_bit_rounding_equals_the_search(bits, exp_bits, dtype):
    """The linear-time encoder gives the codes of the nearest-value search, ties and edges included."""
    rng = np.random.default_rng(bits * 10 + exp_bits)
    for shift in (-3, 0, 2):
        w = (rng.standard_normal(CHUNK + 999) * 10.0 ** rng.uniform(-4, 2)).astype(np.float32)
        bias = afloat_bias(w, exp_bits) + shift
        mags = afloat_magnitudes(bits, exp_bits, bias).astype(np.float32)
        mids = ((mags[1:] + mags[:-1]) / 2).astype(np.float32)  # exact in float32: ties
        edges = np.concatenate([mags, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf), mags[1:2] / 2,
                                [0.0, np.inf, 1e-45, mags[-1] * 3]]).astype(np.float32)
        for x in (w, np.concatenate([edges, -edges])):
            x = x.astype(dtype)
            np.testing.assert_array_equal(afloat_encode(x, bits, exp_bits, bias),
                                          afloat_encode_search(x, bits, exp_bits, bias))
    grid = w[: 40 * 30].reshape(40, 30)[:, ::2].T  # not contiguous
    np.testing.assert_array_equal(afloat_encode(grid, bits, exp_bits, bias),
                                  afloat_encode_search(grid, bits, exp_bits, bias))


# --- integers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("per_channel", [False, True])
def test_int_symmetric(bits, per_channel):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((6, 5)) * np.array([0.1, 1, 2, 3, 4])).astype(np.float32)
    scales = int_scales(w, bits, per_channel)
    assert scales.shape == ((5,) if per_channel else ())
    codes = int_encode(w, bits, scales)
    limit = 2 ** (bits - 1) - 1
    assert codes.min() >= -limit and codes.max() <= limit
    peaks = np.abs(codes).max(axis=0)
    assert (peaks == limit).all() if per_channel else peaks.max() == limit
    assert np.all(np.abs(int_decode(codes, scales) - w) <= scales / 2 + 1e-7)


# --- bytes ------------------------------------------------------------------------------------------------
T = TensorType((300, 7), DType.F32)


@pytest.mark.parametrize("encoding, expected", [
    (Encoding.plain(DType.F32), 300 * 7 * 4),
    (Encoding(format="f16", bits=16), 300 * 7 * 2),
    (Encoding(format="int", bits=8, scale=0.1), 2100 + 4),
    (Encoding(format="int", bits=4, granularity="channel"), 1050 + 7 * 4),
    (Encoding(format="afloat", bits=8, exp_bits=3, exp_bias=-7), 2100 + 1),
    (Encoding(format="afloat", bits=8, exp_bits=3, storage="bitmask", nnz=1000), math.ceil(2100 / 8) + 1000 + 1),
    (Encoding(format="int", bits=4, storage="bitmask", nnz=1001, scale=1.0), math.ceil(2100 / 8) + 501 + 4),
    (Encoding(bits=32, storage="bitmask", nnz=5), math.ceil(2100 / 8) + 20),
])
def test_storage_bytes_formula(encoding, expected):
    assert encoding.storage_bytes(T) == expected


def test_a_number_format_has_one_name_everywhere():
    """Policies, encodings, target files and program listings spell a format the same way."""
    from aalbert.ir.formats import parse_format
    from aalbert.passes.compress import BUILTIN_POLICIES
    from aalbert.targets.hardware.spec import load_target

    for alias, name in [("afloat8", "afloat<8,3>"), ("AFLOAT<8, 3>", "afloat<8,3>"), ("fp16", "f16"),
                        ("float32", "f32"), ("int4", "int4")]:
        assert str(parse_format(alias)) == name
    rule = BUILTIN_POLICIES["edgebert"].rules[0]
    assert str(rule.format) == "afloat<8,3>"
    enc = Encoding(format="afloat", bits=8, exp_bits=3, storage="bitmask", nnz=5)
    assert enc.label == "afloat<8,3>+bitmask" and str(enc.number_format) == "afloat<8,3>"
    target = load_target("edge_accel")  # its file says [compute.formats.afloat8]
    assert "afloat<8,3>" in target.compute.formats and target.compute.matmul_format == "afloat<8,3>"
    assert str(Encoding.plain(DType.F32).number_format) == "f32"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("per_channel", [True, False])
def test_int_codes_equal_the_float64_computation(dtype, per_channel):
    """Scales and codes computed in the weight's own type where that is exact equal the all-float64 ones."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((37, 24)) * 0.05).astype(dtype)
    w[0, :] = 0.0
    w[:, 3] = 0.0
    w64 = w.astype(np.float64)
    peak = np.abs(w64).max(axis=0) if per_channel else np.asarray(np.abs(w64).max())
    want_scales = np.where(peak / 127 > 0, peak / 127, 1.0).astype(np.float32)
    want_codes = np.clip(np.rint(w64 / want_scales.astype(np.float64)), -127, 127).astype(np.int8)
    scales = int_scales(w, 8, per_channel)
    assert scales.dtype == np.float32 and np.array_equal(scales, want_scales)
    assert np.array_equal(int_encode(w, 8, scales), want_codes)
