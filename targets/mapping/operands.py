"""The named quantities of the cost model, derived once per evaluation: the block grid, the array's work, and each
operand's path, sizes and way to the array (per candidate: numpy columns).

Notation: a product b x (m x k) @ (k x n) with extents E_d, blocks of B_d and stage tiles of T_d per dimension d;
the array has R rows and C columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from aalbert.targets.mapping.columns import Candidates
from aalbert.targets.mapping.loops import DIMS, STAGES, ceil_div, max_sum, relevant, tiles_sum
from aalbert.targets.mapping.problem import Arch, Gemm


@dataclass(frozen=True)
class Blocks:
    """The block grid of each candidate.

    count[d] = ceil(E_d / B_d) blocks and tiles[d] = ceil(E_d / T_d) stage tiles along d; inner[d] = count[d] /
    tiles[d] blocks of a stage tile along d; n = prod_d count[d] blocks, one step each."""

    count: dict[str, np.ndarray]
    tiles: dict[str, np.ndarray]
    inner: dict[str, np.ndarray]
    n: np.ndarray                  # float
    out_elems: np.ndarray          # elements of one output block, on average: b m n / distinct output blocks
    bias_slice: np.ndarray         # bias bytes read with each final output block: bias bytes / count[n]

    @property
    def stage_tiles(self) -> np.ndarray:
        """Stage tiles of the product: prod_d tiles[d]."""
        return self.tiles["b"] * self.tiles["m"] * self.tiles["k"] * self.tiles["n"]


def blocks_of(g: Gemm, c: Candidates) -> Blocks:
    """The block grid (see `Blocks`)."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    count = {d: ceil_div(full[d], c.block[d]) for d in DIMS}
    tiles = {d: ceil_div(full[d], c.tile[d]) for d in DIMS}
    inner = {d: count[d] / tiles[d] for d in DIMS}
    n = (count["b"] * count["m"] * count["k"] * count["n"]).astype(float)
    out_elems = g.b * g.m * g.n / (count["b"] * count["m"] * count["n"])
    bias_slice = g.bias_bytes / count["n"] if g.bias_home is not None else 0.0 * n
    return Blocks(count, tiles, inner, n, out_elems, bias_slice)


@dataclass(frozen=True)
class ArrayWork:
    """The products of the blocks on the R x C array. Sums over the blocks of one dimension of ceil(block / R)
    (`tiles_sum`): k_rows, n_cols, m_rows, m_cols. A stationary tile per PE, the other operand streamed past it:

        ws: b m k_rows n_cols (held in the PEs), else b k_rows n_cols sum_blocks max(B_m, R)
        is: b n k_rows m_cols (held in the PEs), else b k_rows m_cols sum_blocks max(B_n, R)
        os: b m_rows n_cols sum_blocks max(B_k, R)

    cycles, with zero-skipping (ws): ceil(cycles x density)."""

    rows: np.ndarray               # array tiles along the PE rows in one block: ceil(B_m / R) (os), else ceil(B_k / R)
    k_rows: np.ndarray
    n_cols: np.ndarray
    m_rows: np.ndarray
    m_cols: np.ndarray
    compute: np.ndarray            # cycles of the block products (float)


def array_of(g: Gemm, arch: Arch, c: Candidates) -> ArrayWork:
    """The array's work (see `ArrayWork`)."""
    R, C = arch.rows, arch.cols
    bm, bk, bn = c.block["m"], c.block["k"], c.block["n"]
    t_rows = np.where(c.os, ceil_div(bm, R), ceil_div(bk, R))
    tk_r, tn_c = tiles_sum(g.k, bk, R), tiles_sum(g.n, bn, C)
    tm_r, tm_c = tiles_sum(g.m, bm, R), tiles_sum(g.m, bm, C)
    g_ws = np.where(c.pe_hold, g.b * g.m * tk_r * tn_c, g.b * tk_r * tn_c * max_sum(g.m, bm, R))
    g_is = np.where(c.pe_hold, g.b * g.n * tk_r * tm_c, g.b * tk_r * tm_c * max_sum(g.n, bn, R))
    g_os = g.b * tm_r * tn_c * max_sum(g.k, bk, R)
    compute = np.where(c.ws, g_ws, np.where(c.os, g_os, g_is)).astype(float)
    if arch.skip_cycles and g.density < 1.0:
        compute = np.where(c.ws, np.ceil(compute * g.density), compute)
    return ArrayWork(t_rows, tk_r, tn_c, tm_r, tm_c, compute)


@dataclass(frozen=True)
class Operand:
    """One operand, a, w or the output o, as the model moves it (bytes as stored; w: values and mask bits)."""

    name: str
    home: str                      # the memory level it lives in
    via: str | None                # the level its data passes on the way to the array (DRAM -> SRAM), or None
    dims: frozenset[str]           # the dimensions it depends on
    staged: np.ndarray             # bool: a stage tile of it is kept in `via`; its block transfers start there
    total: float                   # bytes of the whole operand
    block: np.ndarray              # bytes of one block, on average: total / its distinct blocks
    staging: np.ndarray            # bytes between home and `via` for its stage tiles: total when staged, else 0


@dataclass(frozen=True)
class Input(Operand):
    """An input operand, a or w: how its blocks reach the array."""

    stationary: np.ndarray         # bool: the dataflow keeps it in the PEs (w under ws, a under is)
    fetched: np.ndarray            # bool: its blocks are fetched into a buffer or the PE registers, else streamed
    one_slot: np.ndarray           # bool: its place holds one block: the next block's fill waits for the product
    array_reads: np.ndarray        # values the array reads of it, not stationary: each use of a value
    visits: np.ndarray             # values written into the PEs, stationary and not held: each block's values
    stream: np.ndarray             # bytes streamed from memory (neither fetched nor stationary): array_reads x bytes


def operands_of(g: Gemm, arch: Arch, c: Candidates, blocks: Blocks, work: ArrayWork) -> dict[str, Operand]:
    """a, w (`Input`) and o (`Operand`), in that order."""
    nb = blocks.count
    w_b = g.b if g.w_batched else 1
    total = {"a": g.b * g.m * g.k * g.a_elem, "w": w_b * g.k * g.n * (g.w_elem + g.w_mask),
             "o": g.b * g.m * g.n * g.o_elem}
    distinct = {"a": nb["b"] * nb["m"] * nb["k"], "w": (nb["b"] if g.w_batched else 1) * nb["k"] * nb["n"],
                "o": nb["b"] * nb["m"] * nb["n"]}
    homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
    dims = relevant(g)
    common = {}
    for op in ("a", "w", "o"):
        staged = c.stage == STAGES.index(op)
        common[op] = (op, homes[op], arch.via.get(homes[op]), frozenset(dims[op]), staged, total[op],
                      total[op] / distinct[op], np.where(staged, total[op], 0.0))
    fetched = {"a": (c.a_bufs > 0) | (c.is_ & c.pe_hold), "w": (c.w_bufs > 0) | (c.ws & c.pe_hold)}
    one_slot = {"a": np.where(c.a_bufs > 0, c.a_slots == 1, c.pe_slots == 1),
                "w": np.where(c.w_bufs > 0, c.w_slots == 1, c.pe_slots == 1)}
    a_array = g.b * g.m * g.k * np.where(c.is_, 1, work.n_cols)
    w_array = g.b * g.k * g.n * np.where(c.os, work.m_rows, np.where(c.is_, work.m_cols, 1))
    visits = {"a": g.b * g.m * g.k * nb["n"], "w": (g.b if g.w_batched else nb["b"]) * g.k * g.n * nb["m"]}
    a = Input(*common["a"], c.is_, fetched["a"], one_slot["a"], a_array, visits["a"],
              np.where(~fetched["a"] & ~c.is_, a_array * g.a_elem, 0.0))
    w = Input(*common["w"], c.ws, fetched["w"], one_slot["w"], w_array, visits["w"],
              np.where(~fetched["w"] & ~c.ws, w_array * (g.w_elem + g.w_mask), 0.0))
    return {"a": a, "w": w, "o": Operand(*common["o"])}


def inputs_of(ops: dict[str, Operand]) -> tuple[Input, Input]:
    """a and w of `operands_of`'s operands, the `Input`s they are."""
    return cast(Input, ops["a"]), cast(Input, ops["w"])
