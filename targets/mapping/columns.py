"""Candidate mappings as named numpy columns, one row per candidate: what the cost model reads.

`space` builds, slices and joins candidates as a dict of columns keyed by
`loops.FIELDS` (cheap to index row-wise); `Candidates.of` names them, and the
cost model and the capacity checks read the names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aalbert.targets.mapping.loops import DIMS


@dataclass(frozen=True)
class Candidates:
    """The columns of the candidates (integer arrays of one length unless said otherwise).

    Dataflow codes index `loops.DF`, orders `loops.ORDERS`, stages `loops.STAGES`."""

    dataflow: np.ndarray         # "df": 0 weight-, 1 output-, 2 input-stationary
    hold: np.ndarray             # "hold": where the stationary block lives, 0 the PE registers, 1 an operand buffer
    a_bufs: np.ndarray           # "na": operand buffers given to a (0: a is streamed, or held in the PEs)
    w_bufs: np.ndarray           # "nw": operand buffers given to w
    a_slots: np.ndarray          # "sa": blocks of a its buffers hold at once (2: the next one arrives meanwhile)
    w_slots: np.ndarray          # "sw": blocks of w its buffers hold at once
    pe_slots: np.ndarray         # "sp": blocks of the stationary operand the PE registers hold at once
    order: np.ndarray            # "order": the innermost block loop (index into ORDERS)
    stage: np.ndarray            # "stage": the operand staged in the intermediate level (index into STAGES; 0 none)
    block: dict[str, np.ndarray]  # "bb".."bn": block extent per dimension b, m, k, n
    tile: dict[str, np.ndarray]   # "tb".."tn": stage tile extent per dimension (the full extent when not staged;
                                  # empty in the columns `space` checks before it chooses stage tiles)
    ws: np.ndarray               # bool: weight-stationary (w is the stationary operand)
    os: np.ndarray               # bool: output-stationary
    is_: np.ndarray              # bool: input-stationary (a is the stationary operand)
    pe_hold: np.ndarray          # bool: the stationary block is held in the PE registers

    @classmethod
    def of(cls, c: dict[str, np.ndarray]) -> Candidates:
        """Names for the columns of `c` (keyed by `loops.FIELDS`); no copies."""
        df = c["df"]
        return cls(df, c["hold"], c["na"], c["nw"], c["sa"], c["sw"], c["sp"], c["order"], c["stage"],
                   {d: c["b" + d] for d in DIMS}, {d: c["t" + d] for d in DIMS if "t" + d in c},
                   df == 0, df == 1, df == 2, c["hold"] == 0)

    def __len__(self) -> int:
        return len(self.dataflow)
