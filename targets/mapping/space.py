"""The mapping space of one product on one architecture, as numpy columns of candidates.

A candidate is a `Mapping` (see `aalbert.ir.schedule`): a dataflow the
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
  number of blocks and the whole extent of the dimensions it does not have.

`space(..., prune=True)` leaves out what provably changes nothing: an
innermost loop that runs once (the next loop is innermost then, the same
mapping), and a second slot for an operand fetched only once (the same
transfers in twice the room). With `prune=False` it is the whole space, which
tests enumerate as the oracle of the pruned search.
"""

from __future__ import annotations

import itertools

import numpy as np

from aalbert.ir.schedule import Mapping

from .cost import DF, DIMS, FIELDS, ORDERS, STAGES, ceil_div, fits
from .problem import Arch, Gemm


def tile_choices(extent: int, unit: int) -> list[int]:
    """Block extents along a dimension of `extent` elements: the divisors of the extent that are whole
    array tiles (multiples of `unit`), or the extent itself; blocks are then all alike."""
    return sorted({extent} | {t for t in range(unit, extent, unit) if extent % t == 0})


def _configs(g: Gemm, arch: Arch, prune: bool) -> list[tuple]:
    stages = [0] + [STAGES.index(op) for op, home in (("a", g.a_home), ("w", g.w_home), ("o", g.o_home))
                    if arch.via.get(home) is not None]
    out = []
    for df in arch.dataflows:
        for hold in ((0,) if df == "os" else (0, 1)):
            for na in range(arch.buffers + 1):
                for nw in range(arch.buffers + 1 - na):
                    for sa in ((1, 2) if na else (1,)):
                        for sw in ((1, 2) if nw else (1,)):
                            for sp in ((1, 2) if hold == 0 and df != "os" else (1,)):
                                for stage in stages:
                                    out.append((DF.index(df), hold, na, nw, sa, sw, sp, stage))
    return out


def space(g: Gemm, arch: Arch, prune: bool = True) -> dict[str, np.ndarray]:
    """Every candidate mapping of `g` on `arch` (columns named as `cost.FIELDS`)."""
    unit = min(arch.rows, arch.cols)
    full = {"b": g.b, "m": g.m, "k": g.k, "n": g.n}
    choices = {"b": [t for t in range(1, g.b + 1) if g.b % t == 0]}
    for d in "mkn":
        choices[d] = tile_choices(full[d], unit)
    blocks = np.array(list(itertools.product(*(choices[d] for d in DIMS))), dtype=np.int64)
    configs = np.array(_configs(g, arch, prune), dtype=np.int64)
    rows = []
    stage_dims = {1: "bmk", 2: "kn" + ("b" if g.w_batched else ""), 3: "bmn"}
    for order in range(3):
        cfg = configs
        # every (config, block) pair
        ci, bi = np.meshgrid(np.arange(len(cfg)), np.arange(len(blocks)), indexing="ij")
        ci, bi = ci.ravel(), bi.ravel()
        c = {f: cfg[ci, j] for j, f in enumerate(("df", "hold", "na", "nw", "sa", "sw", "sp", "stage"))}
        for j, d in enumerate(DIMS):
            c["b" + d] = blocks[bi, j]
        c["order"] = np.full(len(ci), order)
        keep = np.ones(len(ci), dtype=bool)
        if prune:
            nblk = {d: ceil_div(full[d], c["b" + d]) for d in DIMS}
            o = ORDERS[order]
            trivial = nblk[o] == 1
            all_trivial = (nblk["m"] == 1) & (nblk["k"] == 1) & (nblk["n"] == 1)
            keep &= ~trivial | (all_trivial & (o == "m"))
            distinct_a = nblk["b"] * nblk["m"] * nblk["k"]
            distinct_w = (nblk["b"] if g.w_batched else 1) * nblk["k"] * nblk["n"]
            keep &= (c["sa"] == 1) | (distinct_a > 1)
            keep &= (c["sw"] == 1) | (distinct_w > 1)
            keep &= (c["sp"] == 1) | np.where(c["df"] == 2, distinct_a > 1, distinct_w > 1)
        c = {k: v[keep] for k, v in c.items()}
        # stage tiles: none (the whole extents), or the staged operand's dimensions from the block choices
        for st in sorted(set(c["stage"].tolist())):
            sel = c["stage"] == st
            part = {k: v[sel] for k, v in c.items()}
            if st == 0:
                for d in DIMS:
                    part["t" + d] = np.full(sel.sum(), full[d])
                rows.append(part)
                continue
            dims = stage_dims[st]
            options = list(itertools.product(*(choices[d] if d in dims else [full[d]] for d in DIMS)))
            opts = np.array(options, dtype=np.int64)
            pi, oi = np.meshgrid(np.arange(sel.sum()), np.arange(len(opts)), indexing="ij")
            pi, oi = pi.ravel(), oi.ravel()
            joined = {k: v[pi] for k, v in part.items()}
            for j, d in enumerate(DIMS):
                joined["t" + d] = opts[oi, j]
            ok = np.ones(len(pi), dtype=bool)
            for d in DIMS:
                t, b = joined["t" + d], joined["b" + d]
                ok &= (t >= b) & ((t == full[d]) | (t % b == 0))
            ok &= np.any([joined["t" + d] != full[d] for d in dims], axis=0)
            rows.append({k: v[ok] for k, v in joined.items()})
    out = {f: np.concatenate([r[f] for r in rows]) for f in FIELDS}
    keep = fits(g, arch, out)  # what the hardware cannot run costs nothing to leave out
    return {f: v[keep] for f, v in out.items()}


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
