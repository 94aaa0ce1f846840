"""The block schedule of a mapped product: its blocks in execution order (stage tiles, then blocks within each,
in the mapping's loop orders) and whether partial sums stay in the accumulators between reduction blocks.
`targets.codegen.mapped` emits instructions along it."""

from __future__ import annotations

import itertools

from aalbert.ir.mapping import Mapping
from aalbert.targets.mapping.loops import DIMS, STAGE_LOOPS, block_loops, ceil_div
from aalbert.targets.mapping.problem import Gemm

Block = dict[str, tuple[int, int]]  # {dim: (lo, hi)}


def _cuts(extent: int, tile: int) -> list[tuple[int, int]]:
    return [(lo, min(extent, lo + tile)) for lo in range(0, extent, tile)]


def block_sequence(g: Gemm, mp: Mapping) -> list[tuple[int, Block]]:
    """(stage tile number, {dim: (lo, hi)}) of every block, in execution order."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    tile = dict(zip(DIMS, mp.stage_tile or (g.b, g.m, g.k, g.n)))
    blk = dict(zip(DIMS, mp.block))
    stage_cuts = {d: _cuts(full[d], tile[d]) for d in DIMS}
    out = []
    s_order = list(reversed(STAGE_LOOPS))                # outer to inner
    b_order = list(reversed(block_loops(mp.order)))
    for snum, sidx in enumerate(itertools.product(*(range(len(stage_cuts[d])) for d in s_order))):
        region = {d: stage_cuts[d][i] for d, i in zip(s_order, sidx)}
        cuts = {d: [(lo + a, lo + b) for a, b in _cuts(region[d][1] - lo, blk[d])]
                for d, (lo, _) in region.items()}
        for bidx in itertools.product(*(range(len(cuts[d])) for d in b_order)):
            out.append((snum, {d: cuts[d][i] for d, i in zip(b_order, bidx)}))
    return out


def k_runs_kept(g: Gemm, mp: Mapping, acc_entries: int) -> bool:
    """Do partial sums stay in the accumulators between reduction blocks (the model's `keep`): the
    reduction is the innermost loop that runs more than once, and an output block fits."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    tile = dict(zip(DIMS, mp.stage_tile or (g.b, g.m, g.k, g.n)))
    nblk = {d: ceil_div(full[d], mp.block[i]) for i, d in enumerate(DIMS)}
    nst = {d: ceil_div(full[d], tile[d]) for d in DIMS}
    loops = [(d, nblk[d] / nst[d]) for d in block_loops(mp.order)] + [(d, nst[d]) for d in STAGE_LOOPS]
    first = next((d for d, count in loops if count > 1), None)
    o_blk = g.b * g.m * g.n / (nblk["b"] * nblk["m"] * nblk["n"])
    return first == "k" and o_blk <= acc_entries
