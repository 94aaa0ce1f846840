"""Number formats for stored weights: their one name, and encoding to codes and decoding to values.

`NumberFormat` is a format as a value, with the one spelling every report,
program listing and target file uses (`f32`, `f16`, `int8`, `afloat<8,3>`);
`parse_format` reads it from any accepted spelling (`afloat8` is
`afloat<8,3>`, `fp16` is `f16`, ...).

- `f16`: IEEE half precision.
- `int<b>`: symmetric integers in [-(2^(b-1) - 1), 2^(b-1) - 1] times a scale,
  one scale per tensor or per output channel (the last axis, which is the
  output axis of canonical [in, out] linear weights).
- `afloat<n,e>`: AdaptivFloat (Tambe et al., DAC 2020), as in EdgeBERT: a
  sign, e exponent bits, m = n-1-e mantissa bits (possibly none: afloat<4,3>)
  and one exponent bias per tensor; magnitude 2^(E + bias) * (1 + M / 2^m) for E in [0, 2^e - 1],
  M in [0, 2^m - 1]; no denormals; the code with E = 0 and M = 0 is zero.
  The bias is chosen from the tensor's largest magnitude so that the top
  exponent covers it: bias = floor(log2(max|w|)) - (2^e - 1).

Encoding rounds to the nearest representable value (ties to even mantissa /
even integer) and saturates at the largest magnitude.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class NumberFormat:
    family: Literal["float", "int", "afloat"]
    bits: int
    exp_bits: int = 0   # afloat

    def __str__(self) -> str:
        if self.family == "float":
            return f"f{self.bits}"
        if self.family == "int":
            return f"int{self.bits}"
        return f"afloat<{self.bits},{self.exp_bits}>"


F32 = NumberFormat("float", 32)
F16 = NumberFormat("float", 16)
AFLOAT8 = NumberFormat("afloat", 8, 3)


def parse_format(text: str) -> NumberFormat:
    """A number format from its name or a common alias; ValueError naming the known ones."""
    t = text.strip().lower().replace(" ", "")
    if t in ("f32", "fp32", "float32", "none"):
        return F32
    if t in ("f16", "fp16", "float16"):
        return F16
    m = re.fullmatch(r"int(\d+)", t)
    if m:
        bits = int(m.group(1))
        if not 2 <= bits <= 16:
            raise ValueError(f"int formats take 2 to 16 bits, got {bits}")
        return NumberFormat("int", bits)
    m = re.fullmatch(r"afloat(?:<(\d+),(\d+)>|(\d+))", t)
    if m:
        bits = int(m.group(1) or m.group(3))
        exp = int(m.group(2)) if m.group(2) else 3
        if not (1 <= exp and exp + 1 <= bits <= 16):  # no mantissa bit: E3M0, EdgeBERT's FP4, is afloat<4,3>
            raise ValueError(f"afloat<{bits},{exp}> needs 1 <= exponent bits <= total bits - 1 <= 15")
        return NumberFormat("afloat", bits, exp)
    raise ValueError(f"unknown number format {text!r} (f32, f16, int8, int4, int<b>, afloat<n,e>, afloat8)")


# -- integers -----------------------------------------------------------------------------------
def int_limit(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def int_scales(w: np.ndarray, bits: int, per_channel: bool) -> np.ndarray:
    """Scale per tensor (shape ()) or per last-axis channel (shape (C,))."""
    # |w| and its maximum are exact in w's own type: widened afterwards, the peak is the same number
    mag = np.abs(w if w.dtype.kind == "f" else w.astype(np.float64))
    peak = mag.reshape(-1, w.shape[-1]).max(axis=0) if per_channel else np.asarray(mag.max() if mag.size else 0.0)
    scale = peak.astype(np.float64) / int_limit(bits)
    return np.where(scale > 0, scale, 1.0).astype(np.float32)


def int_encode(w: np.ndarray, bits: int, scales: np.ndarray) -> np.ndarray:
    limit = int_limit(bits)
    # float16 widens exactly to float32, and numpy's float32 -> float64 cast is the fast one; in place after that
    q = (w.astype(np.float32) if w.dtype == np.float16 else w).astype(np.float64)
    np.divide(q, scales.astype(np.float64), out=q)
    np.rint(q, out=q)
    np.clip(q, -limit, limit, out=q)
    return q.astype(np.int8 if bits <= 8 else np.int16)


def int_decode(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return (codes.astype(np.float32) * scales.astype(np.float32)).astype(np.float32)


# -- AdaptivFloat -------------------------------------------------------------------------------
def afloat_bias(w: np.ndarray, exp_bits: int) -> int:
    """The exponent bias that makes the top exponent cover max|w| (0 for an all-zero tensor)."""
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        return 0
    return math.floor(math.log2(peak)) - (2 ** exp_bits - 1)


def afloat_magnitudes(bits: int, exp_bits: int, bias: int) -> np.ndarray:
    """Magnitude of every code without its sign bit, indexed by code (index 0 is zero)."""
    m = bits - 1 - exp_bits
    if m < 0 or exp_bits < 1:
        raise ValueError(f"afloat<{bits},{exp_bits}> needs at least one exponent bit and no more than {bits - 1}")
    codes = np.arange(2 ** (bits - 1))
    e, mant = codes >> m, codes & (2 ** m - 1)
    mags = np.ldexp(1.0 + mant / 2.0 ** m, e + bias)
    mags[0] = 0.0
    return mags


CHUNK = 1 << 18


def afloat_encode(w: np.ndarray, bits: int, exp_bits: int, bias: int) -> np.ndarray:
    m = bits - 1 - exp_bits
    if w.dtype in (np.float32, np.float16) and bits <= 8 and m >= 1 and -100 < bias < 100:
        flat = np.ascontiguousarray(w).reshape(-1)
        out = np.empty(flat.shape, dtype=np.uint8)
        for i in range(0, flat.size, CHUNK):  # in chunks: temporaries stay small and in cache
            out[i:i + CHUNK] = _afloat_encode_bits(flat[i:i + CHUNK], bits, exp_bits, bias)
        return out.reshape(w.shape)
    return afloat_encode_search(w, bits, exp_bits, bias)


def _afloat_encode_bits(w: np.ndarray, bits: int, exp_bits: int, bias: int) -> np.ndarray:
    """The nearest code by rounding float32 bit patterns: linear time, the same codes as the search.

    Rounding the 23-bit float32 mantissa to m bits, ties to even, is rounding to the nearest
    representable value among those with the same exponent (a carry moves to the next exponent);
    an even mantissa is an even code. Below the smallest non-zero magnitude the choice is between it
    and zero (ties to zero, the even code); above the largest, codes saturate.
    """
    m = bits - 1 - exp_bits
    top = (1 << (bits - 1)) - 1
    mags = afloat_magnitudes(bits, exp_bits, bias).astype(np.float32)
    x = np.abs(w.astype(np.float32, copy=False))
    u = x.view(np.uint32)
    shift = np.uint32(23 - m)
    # ties to even: add half an ulp of the target, less one, plus the target's lowest kept bit
    rounded = (u + np.uint32((1 << (22 - m)) - 1) + ((u >> shift) & np.uint32(1))) >> shift
    # code = (float32 exponent - 127 - bias) << m | mantissa = rounded - ((127 + bias) << m)
    codes = rounded.view(np.int32) - np.int32((127 + bias) << m)
    np.clip(codes, 0, top, out=codes)
    codes = np.where(x < mags[1], (x > mags[1] / 2).astype(np.int32), codes)
    codes = np.where(x <= mags[top], codes, top)  # saturate: above the largest magnitude, and NaN
    out = codes.astype(np.uint8)
    out |= (np.signbit(w) & (out != 0)).view(np.uint8) << np.uint8(bits - 1)
    return out


def afloat_encode_search(w: np.ndarray, bits: int, exp_bits: int, bias: int) -> np.ndarray:
    """The nearest code by searching the sorted magnitudes (any format, any dtype)."""
    mags = afloat_magnitudes(bits, exp_bits, bias)
    order = np.argsort(mags, kind="stable")  # ascending magnitude: code 0, then codes 1.. in order
    # float32 is exact here (grid points and their midpoints have few significant bits; a difference
    # of two nearby float32 values is exact), and twice as fast as float64 on big tensors
    work = np.float32 if w.dtype in (np.float32, np.float16) and -120 < bias < 100 else np.float64
    grid = mags[order].astype(work)
    x = np.abs(w.astype(work))
    hi = np.clip(np.searchsorted(grid, x, side="left"), 1, len(grid) - 1)
    lo = hi - 1
    d_lo, d_hi = x - grid[lo], grid[hi] - x
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (order[hi] % 2 == 0) & (order[lo] % 2 == 1))
    idx = np.where(pick_hi, hi, lo)
    idx = np.where(x < grid[-1], idx, len(grid) - 1)  # saturate: above the largest magnitude, and NaN
    codes = order[idx].astype(np.int64)
    sign = (np.signbit(w) & (codes != 0)).astype(np.int64) << (bits - 1)
    return (codes | sign).astype(np.uint8 if bits <= 8 else np.uint16)


def afloat_decode(codes: np.ndarray, bits: int, exp_bits: int, bias: int) -> np.ndarray:
    mags = afloat_magnitudes(bits, exp_bits, bias).astype(np.float32)
    c = codes.astype(np.int64)
    half = 2 ** (bits - 1)
    values = mags[c % half]
    return np.where(c >= half, -values, values).astype(np.float32)
