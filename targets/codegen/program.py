"""The emitted schedule: instructions with explicit buffers and dependencies.

A `Program` is what the accelerator would execute for one task's inference:

- `dma`: move bytes between memory levels, or from a level into one of the
  PE array's weight buffer slots (`wbuf0`, `wbuf1`);
- `gemm`: a matrix product on the PE array, `batch x m x k x n`, in a number
  format, with the stationary operand's density (zero-skipping); a mapped
  product (see `targets.mapping`) is one `gemm` that stands for its whole
  block schedule, with the cycles and traffic the cost model gives it (its
  blocks, one instruction each, are what `lower(..., expand=True)` emits);
- `vec`: an elementwise or normalization op on the special-function unit;
- `exit`: the test after an off-ramp (`targets.exits`): the sentence stops
  there when the entropy just computed is below the task's threshold; it
  waits for everything before it and everything after it waits for it;
- `power`: a memory bank's power state (`targets.sim.gating`): `on`
  wakes it (taking the level's wake-up latency, on the unit of that bank,
  `power.<level>.<bank>`; an access that depends on a wake-up not finished
  yet waits for it), `retention` or `off` gates it (SRAM in retention keeps
  its data, off loses it; non-volatile memory keeps it when off); the
  simulator charges each bank's leakage by these instructions;
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

from aalbert.errors import AalbertError


class LoweringError(AalbertError):
    """A module the target cannot run as it stands."""


@dataclass(frozen=True, slots=True)
class Buf:
    level: str       # a memory level, or wbuf0 / wbuf1
    offset: int
    nbytes: int

    def __str__(self) -> str:
        return f"{self.level}[{self.offset:#x}+{self.nbytes}]"


# not frozen: a program has an instruction per node and then some, and a frozen dataclass's __init__ pays a
# call per field; instructions are still never changed once emitted (dataclasses.replace makes a new one)
@dataclass(slots=True)
class Instr:
    id: int
    kind: str                      # dma | gemm | vec | exit | power
    unit: str                      # pe | sfu | dma.<level> | ctrl (exit tests) | power.<level>.<bank>
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
    scans: int = 1                 # vec: reads over its data ([sfu.scans])
    cols: tuple[int, int] | None = None   # gemm chunk: output columns [lo, hi); dma chunk: the same
    slot: int = -1                 # weight-buffer slot a gemm reads / a dma fills
    # mapped products (see targets.mapping): the block, what a transfer carries, what the array does
    tile: tuple[int, ...] | None = None   # b0, b1, m0, m1, k0, k1, n0, n1 of a gemm's block or a dma's tile
    role: str = ""                 # dma: fill | stream | drain | reload | stage | bias; gemm: its dataflow.hold
    operand: str = ""              # dma: a | w | o
    final: bool = False            # drain: final outputs (else partial sums)
    fill: bool = True              # gemm: pays the array's fill and drain (rows + columns cycles)
    acc: int = 0                   # gemm: accumulator accesses
    regfill: int = 0               # gemm: stationary values written into the PE registers
    hops: int = 1                  # dma: stretches of interconnect its bytes cross
    cycles: float = 0.0            # a mapped product as one instruction: its cycles, from its block schedule
    level: str = ""                # power: the memory level ...
    bank: int = -1                 # ... the bank ...
    state: str = ""                # ... and the state it enters: on | retention | off

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
        elif self.kind == "power":
            body = f"power {self.level} bank {self.bank} {self.state}"
        elif self.kind == "exit":
            body = "exit  if the entropy is below the threshold"
        else:
            body = (f"vec   {self.op} {self.elements} x{self.scans}  "
                    f"{', '.join(map(str, self.reads))} -> {', '.join(map(str, self.writes))}")
        if self.tile is not None:
            body += "  [" + ",".join(f"{self.tile[i]}:{self.tile[i + 1]}" for i in range(0, 8, 2)) + "]"
        if self.role and self.kind == "dma":
            body += f" {self.role} {self.operand}" + (" final" if self.final else "")
        after = f"  after {','.join(f'{d:04d}' for d in self.deps)}" if self.deps else ""
        return f"{self.id:04d}  {self.unit:<10} {body}{after}  ; {self.layer}"


@dataclass
class Program:
    target: str
    task: str
    instrs: list[Instr] = field(default_factory=list)

    mappings: dict[int, str] = field(default_factory=dict)   # graph node -> its mapping's text

    def asm(self) -> str:
        lines = [f"; aalbert program: task {self.task} on {self.target}, {len(self.instrs)} instructions"]
        shown = set()
        for i in self.instrs:
            if i.node in self.mappings and i.node not in shown:
                shown.add(i.node)
                lines.append(f"; {i.layer}: mapping {self.mappings[i.node]}")
            lines.append(i.text())
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        def one(i: Instr) -> dict:
            d = asdict(i)
            d["reads"] = [asdict(b) for b in i.reads]
            d["writes"] = [asdict(b) for b in i.writes]
            d["traffic"] = [list(t) for t in i.traffic]
            defaults = {"final": False, "fill": True, "acc": 0, "regfill": 0, "hops": 1, "cycles": 0.0}
            return {k: v for k, v in d.items() if (v not in ((), None, "", -1) or k in ("deps", "node"))
                    and not (k in defaults and v == defaults[k])}
        return {"target": self.target, "task": self.task, "instructions": [one(i) for i in self.instrs],
                "mappings": {str(k): v for k, v in sorted(self.mappings.items())}}


def programs_json(programs: list[Program]) -> str:
    return json.dumps({"programs": [p.to_json() for p in programs]}, indent=1, sort_keys=True) + "\n"


def programs_asm(programs: list[Program]) -> str:
    return "\n".join(p.asm() for p in programs)
