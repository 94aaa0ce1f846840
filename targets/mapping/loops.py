"""The loops of a mapped matrix product: dimensions, orders, stages, and block arithmetic.

A product b x (m x k) @ (k x n) is cut into blocks (bb, bm, bk, bn) that the array
runs one after another, inside stage tiles (tb, tm, tk, tn) when an operand is
staged in an intermediate level. These helpers count blocks and array tiles in
closed form, for one candidate or many (numpy columns).
"""

from __future__ import annotations

import numpy as np

from aalbert.ir.mapping import Dataflow, Order, Stage
from aalbert.targets.mapping.problem import Gemm

DIMS = ("b", "m", "k", "n")
ORDERS: tuple[Order, ...] = ("m", "k", "n")
STAGES: tuple[Stage, ...] = ("", "a", "w", "o")
DF: tuple[Dataflow, ...] = ("ws", "os", "is")
FIELDS = ("df", "hold", "na", "nw", "sa", "sw", "sp", "order", "stage", "bb", "bm", "bk", "bn",
          "tb", "tm", "tk", "tn")


def ceil_div(a, b):
    return -(-a // b)


def _blocks(extent: int, tile):
    n = ceil_div(extent, tile)
    return n, extent - (n - 1) * tile


def tiles_sum(extent: int, tile, unit: int):
    """Sum over the blocks of `extent` cut into `tile`s of ceil(block / unit)."""
    n, last = _blocks(extent, tile)
    return (n - 1) * ceil_div(tile, unit) + ceil_div(last, unit)


def max_sum(extent: int, tile, floor: int):
    """Sum over the blocks of max(block, floor)."""
    n, last = _blocks(extent, tile)
    return (n - 1) * np.maximum(tile, floor) + np.maximum(last, floor)


def relevant(g: Gemm) -> dict[str, set[str]]:
    return {"a": {"b", "m", "k"}, "w": {"k", "n"} | ({"b"} if g.w_batched else set()), "o": {"b", "m", "n"}}


def block_loops(order: str) -> list[str]:
    return [order] + [d for d in ("m", "k", "n") if d != order] + ["b"]


STAGE_LOOPS = ["m", "k", "n", "b"]


STAGE_DIMS = {"a": lambda g: "bmk", "w": lambda g: "kn" + ("b" if g.w_batched else ""), "o": lambda g: "bmn"}
STAGE_BYTES = {"a": lambda g: g.a_elem, "w": lambda g: g.w_elem + g.w_mask, "o": lambda g: max(g.o_elem, g.psum_elem)}
