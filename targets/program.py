"""The emitted schedule: instructions with explicit buffers and dependencies.

A `Program` is what the accelerator would execute for one task's inference:

- `dma`: move bytes between memory levels, or from a level into one of the
  PE array's weight buffer slots (`wbuf0`, `wbuf1`);
- `gemm`: a matrix product on the PE array, `batch x m x k x n`, in a number
  format, with the stationary operand's density (zero-skipping);
- `vec`: an elementwise or normalization op on the special-function unit;
- `exit`: the test after an off-ramp (`targets.exits`): the sentence stops
  there when the entropy just computed is below the task's threshold; it
  waits for everything before it and everything after it waits for it;
- each on a `unit` (`pe`, `sfu`, `dma.<source level>`), which runs its
  instructions in order; `deps` are the instructions whose results (or
  whose reads of a buffer about to be overwritten) it waits for.

A buffer is `level[offset:offset+bytes]`. `node` and `cols` tie an
instruction to the graph node it implements (and the output columns of a
GEMM chunk), for reports and for functional execution; `traffic` says how
many bytes an instruction reads and writes in each memory level (a GEMM may
read its activations more than once), which is what energy and port time
are charged for. Programs print as an assembly listing and serialize to JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class Buf:
    level: str       # a memory level, or wbuf0 / wbuf1
    offset: int
    nbytes: int

    def __str__(self) -> str:
        return f"{self.level}[{self.offset:#x}+{self.nbytes}]"


@dataclass(frozen=True, slots=True)
class Instr:
    id: int
    kind: str                      # dma | gemm | vec | exit
    unit: str                      # pe | sfu | dma.<level> | ctrl (exit tests)
    deps: tuple[int, ...]
    node: int                      # index of the graph node it implements
    op: str                        # that node's op
    layer: str                     # a readable name of the node, e.g. "linear %14"
    reads: tuple[Buf, ...] = ()
    writes: tuple[Buf, ...] = ()
    nbytes: int = 0                # dma: bytes moved
    batch: int = 1                 # gemm
    m: int = 0
    k: int = 0
    n: int = 0
    fmt: str = ""
    density: float = 1.0           # gemm: non-zero fraction of the stationary operand
    traffic: tuple[tuple[str, int, int], ...] = ()   # (memory level, bytes read, bytes written)
    elements: int = 0              # vec
    passes: int = 1                # vec
    cols: tuple[int, int] | None = None   # gemm chunk: output columns [lo, hi); dma chunk: the same
    slot: int = -1                 # weight-buffer slot a gemm reads / a dma fills

    @property
    def macs(self) -> int:
        return self.batch * self.m * self.k * self.n if self.kind == "gemm" else 0

    def text(self) -> str:
        if self.kind == "dma":
            body = f"dma   {self.nbytes:>9} B  {', '.join(map(str, self.reads))} -> {', '.join(map(str, self.writes))}"
        elif self.kind == "gemm":
            shape = f"{self.batch}x{self.m}x{self.k}x{self.n}"
            body = (f"gemm  {shape:>16} {self.fmt} density {self.density:.2f}  "
                    f"{', '.join(map(str, self.reads))} -> {', '.join(map(str, self.writes))}")
        elif self.kind == "exit":
            body = "exit  if the entropy is below the threshold"
        else:
            body = (f"vec   {self.op} {self.elements} x{self.passes}  "
                    f"{', '.join(map(str, self.reads))} -> {', '.join(map(str, self.writes))}")
        after = f"  after {','.join(f'{d:04d}' for d in self.deps)}" if self.deps else ""
        return f"{self.id:04d}  {self.unit:<10} {body}{after}  ; {self.layer}"


@dataclass
class Program:
    target: str
    task: str
    instrs: list[Instr] = field(default_factory=list)

    def asm(self) -> str:
        lines = [f"; aalbert program: task {self.task} on {self.target}, {len(self.instrs)} instructions"]
        lines += [i.text() for i in self.instrs]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        def one(i: Instr) -> dict:
            d = asdict(i)
            d["reads"] = [asdict(b) for b in i.reads]
            d["writes"] = [asdict(b) for b in i.writes]
            d["traffic"] = [list(t) for t in i.traffic]
            return {k: v for k, v in d.items() if v not in ((), None, "", -1) or k in ("deps", "node")}
        return {"target": self.target, "task": self.task, "instructions": [one(i) for i in self.instrs]}


def programs_json(programs: list[Program]) -> str:
    return json.dumps({"programs": [p.to_json() for p in programs]}, indent=1, sort_keys=True) + "\n"


def programs_asm(programs: list[Program]) -> str:
    return "\n".join(p.asm() for p in programs)
