"""How one matrix product runs on the PE array: the `Mapping` fact of a `linear` or `matmul` node.

A mapping fixes, for a product `out[b, m, n] = sum_k a[b, m, k] * w[b, k, n]`:

- `dataflow`: which loop dimensions the array unrolls on its rows and columns
  - `ws` (weight-stationary): rows = k, columns = n, rows of `a` stream through;
  - `os` (output-stationary): rows = m, columns = n, the reduction streams;
  - `is` (input-stationary): rows = k, columns = m, columns of `w` stream;
- `hold`: where the stationary operand's block lives while the array uses it:
  `pe` (in the PE registers, all of it) or `buf` (in an operand buffer, one
  array tile at a time in the PE registers); `os` keeps partial sums in the PEs (`pe`);
- `block`: the tile (b, m, k, n) one step of the array works on, from the buffers;
- `order`: the innermost loop over blocks (m, k or n; the other two follow in
  m, k, n order, the batch outermost): which operand stays put between steps;
- `bufs`: operand buffers given to `a` and to `w` (0: read from its memory on every use);
- `slots`: 1 or 2 slots for `a`'s buffer, `w`'s buffer and the PE registers
  (2: double buffering, the next tile loads while this one computes);
- `stage` and `stage_tile`: the operand (a, w or o, or none) that keeps a
  larger tile in an intermediate memory on its way from off-chip memory, and that tile.

Its one-line text form, printed in the IR and the program listing, reads

    ws.pe 1x128x768x32 order=n bufs=0,0 slots=1,1,2 stage=o:1x512x4096x2048

`Mapping.parse(text)` reads it back; `text()` of the result is the same line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from aalbert.ir.facts import FactError, check_record

Dataflow = Literal["ws", "os", "is"]
DATAFLOWS: tuple[str, ...] = get_args(Dataflow)
DATAFLOW_NAMES = {"ws": "weight_stationary", "os": "output_stationary", "is": "input_stationary"}
Hold = Literal["pe", "buf"]
Order = Literal["m", "k", "n"]
Stage = Literal["", "a", "w", "o"]

_TEXT = re.compile(r"(ws|os|is)\.(pe|buf) (\d+)x(\d+)x(\d+)x(\d+) order=([mkn]) bufs=(\d),(\d) "
                   r"slots=([12]),([12]),([12])(?: stage=([awo]):(\d+)x(\d+)x(\d+)x(\d+))?\Z")


@dataclass(frozen=True)
class Mapping:
    dataflow: Dataflow
    hold: Hold
    block: tuple[int, ...] = field(metadata={"min": 1})
    order: Order
    bufs: tuple[int, ...]
    slots: tuple[int, ...]
    stage: Stage = ""
    stage_tile: tuple[int, ...] = ()

    def check(self) -> None:
        if len(self.block) != 4 or min(self.block) < 1:
            raise ValueError(f"a block is b x m x k x n, positive, got {self.block}")
        if len(self.bufs) != 2 or min(self.bufs) < 0:
            raise ValueError(f"bufs gives the buffers of a and w, got {self.bufs}")
        if len(self.slots) != 3 or not set(self.slots) <= {1, 2}:
            raise ValueError(f"slots are 1 or 2 for a's buffer, w's buffer and the PE registers, got {self.slots}")
        if self.dataflow == "os" and self.hold != "pe":
            raise ValueError("output-stationary keeps its partial sums in the PEs: hold pe")
        if bool(self.stage) != bool(self.stage_tile) or (self.stage_tile and len(self.stage_tile) != 4):
            raise ValueError("a staged operand has a stage tile b x m x k x n, and only then")

    def text(self) -> str:
        b, m, k, n = self.block
        line = (f"{self.dataflow}.{self.hold} {b}x{m}x{k}x{n} order={self.order} bufs={self.bufs[0]},{self.bufs[1]} "
                f"slots={self.slots[0]},{self.slots[1]},{self.slots[2]}")
        if self.stage:
            line += f" stage={self.stage}:" + "x".join(str(x) for x in self.stage_tile)
        return line

    def __str__(self) -> str:
        return self.text()

    @classmethod
    def parse(cls, text: str) -> Mapping:
        """A mapping from its one-line text form; FactError if the line is not one."""
        m = _TEXT.match(text)
        if m is None:
            raise FactError(f"not a mapping: {text!r} (expected e.g. 'ws.pe 1x128x768x32 order=n bufs=0,0 "
                            "slots=1,1,2')")
        g = m.groups()
        stage_tile = tuple(int(x) for x in g[13:17]) if g[12] else ()
        # the pattern admits only the choices of the Literal fields
        record = cls(cast(Dataflow, g[0]), cast(Hold, g[1]), tuple(int(x) for x in g[2:6]), cast(Order, g[6]),
                     (int(g[7]), int(g[8])), (int(g[9]), int(g[10]), int(g[11])), cast(Stage, g[12] or ""),
                     stage_tile)
        check_record(record)
        return record
