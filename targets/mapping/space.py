"""The mapping space of one product on one architecture, as numpy columns of candidates.

A candidate is a `Mapping` (see `aalbert.ir.mapping`): a dataflow the
array supports, where the stationary block lives, the block, the innermost
block loop, the buffers and slots of each operand, and the staged operand
with its stage tile. The space is the cross product of

- block extents per dimension: the divisors of the extent that are whole
  array tiles, and the extent itself (`tile_choices`), so that every block of
  a product is alike;
- the dataflows of the target, hold in the PEs or in a buffer, every split of
  the operand buffers between `a` and `w`, one or two slots for each, every
  innermost loop;
- staging, for operands whose home passes its data through an intermediate
  memory: none, or one operand (a, w or o) whose stage tile covers a whole
  number of blocks and the whole extent of the dimensions it does not have,
  and is as large as the free memory allows (`stage_rows`: for every extent
  of its first dimensions, the largest last one that fits twice over next to
  the blocks passing through).

`space(..., prune=True)` leaves out what provably changes nothing: an
innermost loop that runs once (the next loop is innermost then, the same
mapping), and a second slot for an operand fetched only once (the same
transfers in twice the room). With `prune=False` it is the whole space, which
tests enumerate as the oracle of the pruned search.

With `fine=True` blocks may also be narrower than an array tile (every
divisor of the extent): some PEs idle, but a block passing through a small
memory may then fit where no whole tile does. The search looks there only
when nothing in the coarse space fits.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from aalbert.ir.mapping import Mapping
from aalbert.targets.mapping.capacity import fits_block, fits_stage
from aalbert.targets.mapping.columns import Candidates
from aalbert.targets.mapping.loops import DF, DIMS, FIELDS, ORDERS, STAGE_BYTES, STAGE_DIMS, STAGES, ceil_div
from aalbert.targets.mapping.problem import Arch, Gemm


def tile_choices(extent: int, unit: int) -> list[int]:
    """Block extents along a dimension of `extent` elements: the divisors of the extent that are whole
    array tiles (multiples of `unit`), or the extent itself; blocks are then all alike."""
    return sorted({extent} | {t for t in range(unit, extent, unit) if extent % t == 0})


def _hardware(arch: Arch) -> list[tuple]:
    """(df, hold, na, nw, sa, sw, sp): what holds what, before any loop order or staging."""
    out = []
    for df in arch.dataflows:
        for hold in ((0,) if df == "os" else (0, 1)):
            for na in range(arch.buffers + 1):
                for nw in range(arch.buffers + 1 - na):
                    for sa in ((1, 2) if na else (1,)):
                        for sw in ((1, 2) if nw else (1,)):
                            for sp in ((1, 2) if hold == 0 and df != "os" else (1,)):
                                out.append((DF.index(df), hold, na, nw, sa, sw, sp))
    return out


def stage_rows(g: Gemm, arch: Arch, op: str, part: dict, choices: dict[str, list[int]]) -> list[dict]:
    """Candidate rows of `part` joined with the tiles a staged `op` may keep: whole in the dimensions `op` does
    not have, whole blocks in the others, and for every extent of its first dimensions the largest last one
    that fits the free bytes twice over next to the blocks passing through."""
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    level = arch.via.get({"a": g.a_home, "w": g.w_home, "o": g.o_home}[op])
    free = arch.free.get(level, 0) if level else 0
    dims = [d for d in DIMS if d in STAGE_DIMS[op](g)]
    *heads, last = dims
    size = len(part["df"])
    passing = np.zeros(size)
    for other in ("a", "w", "o"):
        if other != op and arch.via.get({"a": g.a_home, "w": g.w_home, "o": g.o_home}[other]) == level:
            block = np.ones(size)
            for d in STAGE_DIMS[other](g):
                block = block * part["b" + d]
            passing = passing + 2 * block * STAGE_BYTES[other](g)
    rows = []
    for head in itertools.product(*(choices[d] for d in heads)):
        ok = np.ones(size, dtype=bool)
        for d, t in zip(heads, head):
            ok &= (t >= part["b" + d]) & ((t == full[d]) | (t % part["b" + d] == 0))
        if not ok.any():
            continue
        room = (free - passing) / 2 / STAGE_BYTES[op](g) / max(1, math.prod(head))
        best = np.zeros(size, dtype=np.int64)
        b_last = part["b" + last]
        for t in choices[last]:
            good = (t <= room) & (t >= b_last) & ((t == full[last]) | (t % b_last == 0))
            best = np.where(good, np.maximum(best, t), best)
        ok &= best > 0
        if not ok.any():
            continue
        joined = {f: v[ok] for f, v in part.items()}
        for d in DIMS:
            joined["t" + d] = np.full(ok.sum(), full[d])
        for d, t in zip(heads, head):
            joined["t" + d] = np.full(ok.sum(), t)
        joined["t" + last] = best[ok]
        rows.append(joined)
    return rows


def space(g: Gemm, arch: Arch, prune: bool = True, fine: bool = False) -> dict[str, np.ndarray]:
    """Every candidate mapping of `g` on `arch` that the hardware can run (columns named as `loops.FIELDS`)."""
    unit = 1 if fine else min(arch.rows, arch.cols)
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    choices = {"b": [t for t in range(1, g.b + 1) if g.b % t == 0]}
    for d in "mkn":
        choices[d] = tile_choices(full[d], unit)
    blocks = np.array(list(itertools.product(*(choices[d] for d in DIMS))), dtype=np.int64)
    nblk = {d: ceil_div(full[d], blocks[:, j]) for j, d in enumerate(DIMS)}
    stages = [0] + [STAGES.index(op) for op, home in (("a", g.a_home), ("w", g.w_home), ("o", g.o_home))
                    if arch.via.get(home) is not None]
    parts = []
    for hw in _hardware(arch):
        c = {f: np.full(len(blocks), v) for f, v in zip(("df", "hold", "na", "nw", "sa", "sw", "sp"), hw)}
        for j, d in enumerate(DIMS):
            c["b" + d] = blocks[:, j]
        c.update(order=np.zeros(len(blocks), dtype=np.int64), stage=np.zeros(len(blocks), dtype=np.int64))
        keep = fits_block(g, arch, Candidates.of(c))
        if prune:  # a second slot for what is fetched once moves the same bytes in twice the room
            once_a = nblk["b"] * nblk["m"] * nblk["k"] == 1
            once_w = (nblk["b"] if g.w_batched else 1) * nblk["k"] * nblk["n"] == 1
            keep &= ~((c["sa"] == 2) & once_a) & ~((c["sw"] == 2) & once_w)
            keep &= ~((c["sp"] == 2) & np.where(c["df"] == 2, once_a, once_w))
        if not keep.any():
            continue
        base = {f: v[keep] for f, v in c.items()}
        for order in range(3):
            sel = np.ones(len(base["df"]), dtype=bool)
            if prune:  # an innermost loop that runs once: the next one is innermost, the same mapping
                o = ORDERS[order]
                nb = {d: ceil_div(full[d], base["b" + d]) for d in "mkn"}
                trivial = nb[o] == 1
                all_trivial = (nb["m"] == 1) & (nb["k"] == 1) & (nb["n"] == 1)
                sel &= ~trivial | (all_trivial & (o == "m"))
            if not sel.any():
                continue
            ordered = {f: v[sel] for f, v in base.items()}
            ordered["order"] = np.full(sel.sum(), order)
            parts.append(ordered)
    if not parts:
        return {f: np.zeros(0, dtype=np.int64) for f in FIELDS}
    plain = {f: np.concatenate([p[f] for p in parts]) for f in parts[0]}
    parts = []
    for st in stages:
        part = dict(plain)
        part["stage"] = np.full(len(part["df"]), st)
        if st == 0:
            for d in DIMS:
                part["t" + d] = np.full(len(part["df"]), full[d])
            parts.append(part)
        else:
            parts.extend(stage_rows(g, arch, STAGES[st], part, choices))
    if not parts:
        return {f: np.zeros(0, dtype=np.int64) for f in FIELDS}
    out = {f: np.concatenate([p[f] for p in parts]) for f in FIELDS}
    keep = fits_stage(g, arch, Candidates.of(out))
    return {f: v[keep] for f, v in out.items()}


def smallest(g: Gemm, arch: Arch) -> dict[str, np.ndarray]:
    """The candidates of blocks of one element, nothing staged, every hardware choice and loop order: the
    mappings that need the least room in a level their operands pass through (`fits` says which run)."""
    rows = [(*hw[:7], order) for hw in _hardware(arch) for order in range(len(ORDERS))]
    c = {f: np.array([r[j] for r in rows], dtype=np.int64) for j, f in enumerate(FIELDS[:8])}
    n = len(rows)
    c["stage"] = np.zeros(n, dtype=np.int64)
    for d, extent in zip(DIMS, (g.b, g.m, g.k, g.n)):
        c["b" + d] = np.ones(n, dtype=np.int64)
        c["t" + d] = np.full(n, extent, dtype=np.int64)
    return {f: c[f] for f in FIELDS}


def mapping_at(c: dict[str, np.ndarray], i: int) -> Mapping:
    """The candidate at row i as a `Mapping`."""
    v = {f: int(c[f][i]) for f in FIELDS}
    stage = STAGES[v["stage"]]
    return Mapping(DF[v["df"]], ("pe", "buf")[v["hold"]], (v["bb"], v["bm"], v["bk"], v["bn"]), ORDERS[v["order"]],
                   (v["na"], v["nw"]), (v["sa"], v["sw"], v["sp"]), stage,
                   (v["tb"], v["tm"], v["tk"], v["tn"]) if stage else ())


def columns_of(g: Gemm, mappings: list[Mapping]) -> dict[str, np.ndarray]:
    """Candidate columns for given mappings (to evaluate them with the same model)."""
    full = (g.b, g.m, g.k, g.n)
    rows = []
    for mp in mappings:
        tile = mp.stage_tile or full
        rows.append((DF.index(mp.dataflow), ("pe", "buf").index(mp.hold), mp.bufs[0], mp.bufs[1], mp.slots[0],
                     mp.slots[1], mp.slots[2], ORDERS.index(mp.order), STAGES.index(mp.stage),
                     *mp.block, *tile))
    arr = np.array(rows, dtype=np.int64).reshape(len(mappings), len(FIELDS))
    return {f: arr[:, j] for j, f in enumerate(FIELDS)}
