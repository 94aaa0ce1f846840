"""What a mapping needs to hold: whether a candidate's blocks fit the array's buffers, registers and
accumulators, and whether its staging region fits what is free in the level the data passes through."""

from __future__ import annotations

import numpy as np

from aalbert.targets.mapping.columns import Candidates
from aalbert.targets.mapping.loops import DF, DIMS, ORDERS, STAGE_BYTES, STAGE_DIMS, STAGE_LOOPS, block_loops, ceil_div
from aalbert.targets.mapping.problem import Arch, Gemm


def fits(g: Gemm, arch: Arch, c: Candidates) -> np.ndarray:
    """Which candidates the hardware can run (`fits_block` and `fits_stage`)."""
    return fits_block(g, arch, c) & fits_stage(g, arch, c)


def fits_block(g: Gemm, arch: Arch, c: Candidates) -> np.ndarray:
    """The dataflow, the buffers and their slots, the PE registers and the accumulators can hold the block."""
    R, C = arch.rows, arch.cols
    ws, os_, is_, pe_hold = c.ws, c.os, c.is_, c.pe_hold
    bb, bm, bk, bn = c.block["b"], c.block["m"], c.block["k"], c.block["n"]
    ok = np.isin(c.dataflow, [DF.index(d) for d in arch.dataflows])
    ok &= c.a_bufs + c.w_bufs <= arch.buffers
    w_vals = np.where(g.w_batched, bb, 1) * bk * bn
    a_bytes = bb * bm * bk * g.a_elem
    w_bytes = w_vals * (g.w_elem + (0.0 if arch.mask_bytes else g.w_mask))
    ok &= (c.a_bufs == 0) | (a_bytes * c.a_slots <= c.a_bufs * arch.buffer_bytes)
    ok &= (c.w_bufs == 0) | (w_bytes * c.w_slots <= c.w_bufs * arch.buffer_bytes)
    if arch.mask_bytes and g.w_mask:
        ok &= (c.w_bufs == 0) | (w_vals * g.w_mask * c.w_slots <= c.w_bufs * arch.mask_bytes)
    t_rows = np.where(os_, ceil_div(bm, R), ceil_div(bk, R))
    t_cols = np.where(is_, ceil_div(bm, C), ceil_div(bn, C))
    s_buf = np.where(is_, c.a_bufs > 0, np.where(ws, c.w_bufs > 0, False))
    per_pe = t_rows * t_cols * np.where(ws & (not g.w_batched), 1, bb)
    ok &= os_ | ~pe_hold | ((per_pe * c.pe_slots <= arch.reg_entries) & ~s_buf)
    ok &= os_ | pe_hold | (s_buf & (arch.reg_entries >= 2))
    ok &= ~os_ | pe_hold
    stream_ext = np.where(ws, bm, bn)
    ok &= ~(~os_ & ~pe_hold & (t_rows > 1)) | (stream_ext * C <= arch.acc_entries)
    return ok


def fits_stage(g: Gemm, arch: Arch, c: Candidates) -> np.ndarray:
    """The staged operand can be staged, its tile holds whole blocks, the staging region fits the free bytes;
    and the reduction is not the innermost loop with partial sums going back to memory every block (the next
    loop innermost moves no more)."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    ok = np.ones(len(c), dtype=bool)
    homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
    via = {op: arch.via.get(h) for op, h in homes.items()}
    stage_level = next((v for v in via.values() if v is not None), None)
    for i, op in enumerate(("a", "w", "o"), start=1):
        if via[op] is None:
            ok &= c.stage != i
    blk, stile = c.block, c.tile
    for d in DIMS:
        ok &= (stile[d] == full[d]) | (stile[d] % blk[d] == 0)
    nblk = {d: ceil_div(full[d], blk[d]) for d in DIMS}
    nst = {d: ceil_div(full[d], stile[d]) for d in DIMS}
    too_big = blk["b"] * blk["m"] * blk["n"] > arch.acc_entries
    if too_big.any():
        for i, order in enumerate(ORDERS):
            sel = (c.order == i) & too_big
            if not sel.any():
                continue
            found = np.zeros(len(ok), dtype=bool)
            k_first = np.zeros(len(ok), dtype=bool)
            loops = [(d, nblk[d] > nst[d]) for d in block_loops(order)[:3]] + [(d, nst[d] > 1) for d in STAGE_LOOPS]
            for d, runs in loops:
                if d == "k":
                    k_first |= ~found & runs
                found |= runs
            ok &= ~(sel & k_first)
    if stage_level is None:
        return ok & (c.stage == 0)
    return ok & (staging_need(g, arch, c) <= arch.free.get(stage_level, 0))


def staging_need(g: Gemm, arch: Arch, c: Candidates) -> np.ndarray:
    """Bytes of the staging region: the staged operand's tile twice, two blocks of every operand passing."""
    homes = {"a": g.a_home, "w": g.w_home, "o": g.o_home}
    via = {op: arch.via.get(h) for op, h in homes.items()}
    stage_level = next((v for v in via.values() if v is not None), None)
    need = np.zeros(len(c))
    for i, op in enumerate(("a", "w", "o"), start=1):
        if via[op] is None or via[op] != stage_level:
            continue
        tile = np.ones(len(need))
        block = np.ones(len(need))
        for d in STAGE_DIMS[op](g):
            tile = tile * c.tile[d]
            block = block * c.block[d]
        need = need + np.where(c.stage == i, 2 * tile * STAGE_BYTES[op](g), 2 * block * STAGE_BYTES[op](g))
    return need
