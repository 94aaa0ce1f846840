"""Lowering: an allocated task graph into a `Program` for a target.

Every canonical op becomes instructions:

- `linear` and `matmul` with a mapping (`Node.mapping`, chosen by
  `allocate`): one instruction with the cost model's cycles and traffic, or,
  expanded, blocks in the mapping's loop order, each a `gemm` and its
  transfers, as the cost model counts them (`targets.codegen.mapped`);
  without one (`--mapping fixed`): chunks of columns (or heads) through the
  weight buffer's two slots (`targets.codegen.fixed`).
- `embedding`: a DMA of the gathered rows from the table's level.
- elementwise ops, softmax, layernorm, reductions: one SFU instruction.
- layout ops (transpose, slice, ...): a DMA within the arena; `reshape` is
  free (same bytes);
- state (a decoder's KV cache, `ir.state`) lives in its own region, where
  `allocate` put it (`Arena.state_level`): an operand read from it is
  charged to that level, and `index_copy` into it is an update in place, a
  DMA of only the copied entries;
- an off-ramp's entropy (a reduction) goes to the SFU like any other, and an
  exit test follows it (`targets.exits.mark_exits`).

Dependencies: a reader waits for the writers of its operands; a writer
waits for every instruction still reading or writing bytes it reuses (the
arena reuses addresses by liveness). Nodes run one after another: a node's
instructions start when the previous node's have finished (the controller
issues a layer at a time; transfers overlap computation inside a node,
through its buffers' slots).
"""

from __future__ import annotations

import dataclasses
import functools

from aalbert.ir.analysis import buffer_bytes, state_layout
from aalbert.ir.graph import Graph, Node, Value
from aalbert.ir.module import Module, Weight
from aalbert.ir.registry import OpKind, Trait, get_op, is_data
from aalbert.ir.types import TensorType
from aalbert.targets.codegen.exit_tests import mark_exits
from aalbert.targets.codegen.fixed import FixedLowering
from aalbert.targets.codegen.mapped import MappedLowering
from aalbert.targets.codegen.program import Buf, Instr, LoweringError, Program
from aalbert.targets.hardware.spec import Target
from aalbert.targets.mapping.problem import Arch, arch_of, gemm_of
from aalbert.targets.mapping.search import cost_of

STATE_SPACE = 1 << 60  # hazards: state region addresses lie after every arena address
VECTOR_KINDS = frozenset({OpKind.ELEMENTWISE, OpKind.NORMALIZATION, OpKind.REDUCTION})  # run on the SFU


def lower(module: Module, target: Target, task: str, expand: bool = False) -> Program:
    """The program of `task`; `expand` lowers every mapped product block by block (for functional execution
    and for checking the cost model against the simulator) instead of as one instruction."""
    graph = module.graphs[task]
    if graph.arena is None or graph.arena.level is None:
        raise LoweringError(f"task {task!r}: activations are not placed; run plan-activations and allocate "
                            "(aalbert-compile --target)")
    missing = [w.name for w in module.used_weights(task) if w.placement is None]
    if missing:
        raise LoweringError(f"task {task!r}: weight @{missing[0]} is not placed; run allocate first")
    return mark_exits(_Lowering(module, target, graph, expand).run(), graph)


class _Lowering:
    def __init__(self, module: Module, target: Target, graph: Graph, expand: bool = False):
        self.module, self.t, self.g = module, target, graph
        self.expand = expand
        self.program = Program(target.name, graph.name)
        self.arena = graph.arena.level
        self.base = graph.arena.offset
        self.state = {id(v) for v in state_layout(graph, graph.arena.activation_bits, graph.arena.align)[0]}
        self.state_level = graph.arena.state_level or self.arena
        self.state_base = graph.arena.state_offset or 0
        self.writers: dict[int, list[int]] = {}   # value id -> instructions that write it
        self.readers: dict[int, list[int]] = {}   # value id -> instructions that read it
        self.root: dict[int, Value] = {}          # reshape outputs alias their operand
        self.regions: list[tuple[int, int, Value]] = []  # arena byte ranges written so far
        self.barrier: list[int] = []              # the previous node's last instruction on each unit
        self._stage_base: dict[str, int] | None = None
        self._bytes: dict[TensorType, int] = {}
        self._bufs: dict[tuple[int, int, bool], Buf] = {}
        self.fixed = FixedLowering(self)

    @functools.cached_property
    def arch(self) -> Arch:
        return arch_of(self.t)

    @property
    def stage_base(self) -> dict[str, int]:
        if self._stage_base is None:
            self._stage_base = staging_base(self.module, self.t)
        return self._stage_base

    # -- helpers ---------------------------------------------------------------------------------------
    def bytes_of(self, v: Value) -> int:
        n = self._bytes.get(v.type)
        if n is None:  # once per type: the values of like nodes share theirs
            n = self._bytes[v.type] = buffer_bytes(v, self.t.compute.activation_bits)
        return n

    def rootof(self, v: Value) -> Value:
        return self.root.get(id(v), v)

    def buf(self, v: Value) -> Buf:
        """The arena bytes of `v`; one `Buf` per distinct range (they are immutable, and a long graph reuses a
        few ranges over and over)."""
        r = self.root.get(id(v), v)
        if r.offset is None and (w := self.weight_of(r)) is not None:
            # a view of a weight read as an activation operand (a rotary table's frequencies, say): its bytes
            # are where the weight was placed
            return Buf(w.placement.level, w.placement.offset, w.nbytes)
        key = (r.offset, self.bytes_of(v), id(r) in self.state)
        b = self._bufs.get(key)
        if b is None:
            b = self._bufs[key] = (Buf(self.state_level, self.state_base + key[0], key[1]) if key[2] else
                                   Buf(self.arena, self.base + key[0], key[1]))
        return b

    def level_of(self, v: Value) -> str:
        """The level an activation operand is read from or written to: the arena's, or the state region's."""
        return self.state_level if id(self.root.get(id(v), v)) in self.state else self.arena

    def address(self, v: Value) -> int:
        """`v`'s first byte for hazards: arena and state region are apart (the state region after any arena
        address)."""
        return (STATE_SPACE + self.state_base if id(v) in self.state else self.base) + v.offset

    def weight_of(self, v: Value) -> Weight | None:
        p = v.producer
        return self.module.weights[p.attrs["name"].name] if p is not None and p.op == "weight" else None

    def check_format(self, w: Weight) -> str:
        """The number format of `w`, which the target's PE array must run."""
        fmt = str(w.encoding.number_format)
        if fmt not in self.t.compute.formats:
            raise LoweringError(f"{self.t.name} does not run {fmt} (weight @{w.name}); it runs "
                                f"{', '.join(self.t.compute.formats)}: compress to one of them")
        return fmt

    def is_data(self, v: Value) -> bool:
        return is_data(v)

    def emit(self, node_index: int, node: Node, **fields) -> Instr:
        deps = fields.pop("deps", ())
        deps = tuple(sorted(set(deps).union(self.barrier))) if deps or self.barrier else ()
        ins = Instr(id=len(self.program.instrs), node=node_index, op=node.op, layer=self.layer(node),
                    deps=deps, **fields)
        self.program.instrs.append(ins)
        return ins

    def layer(self, node: Node) -> str:
        return f"{node.op} %{node.outputs[0].name}" if node.outputs else node.op

    def read_deps(self, values) -> list[int]:
        deps = []
        for v in values:
            if not self.is_data(v):
                deps += self.writers.get(id(self.rootof(v)), [])
        return deps

    def write_deps(self, v: Value) -> list[int]:
        """Wait for everyone still using the bytes `v` is about to overwrite."""
        lo = self.address(v)
        hi = lo + self.bytes_of(v)
        deps = []
        for a, b, old in self.regions:
            if a < hi and lo < b:
                deps += self.writers.get(id(old), []) + self.readers.get(id(old), [])
        return deps

    def note_reads(self, ins: Instr, values) -> None:
        for v in values:
            if not self.is_data(v):
                self.readers.setdefault(id(self.rootof(v)), []).append(ins.id)

    def note_write(self, v: Value, ids: list[int]) -> None:
        lo = self.address(v)
        hi = lo + self.bytes_of(v)
        # values wholly overwritten are dead: their hazards now reach later writers through `v`'s writers
        self.regions = [r for r in self.regions if not (lo <= r[0] and r[1] <= hi)]
        self.regions.append((lo, hi, v))
        self.writers[id(v)] = ids

    # -- the walk ------------------------------------------------------------------------------------------
    def run(self) -> Program:
        for v in self.g.inputs:
            if v.offset is not None:
                self.note_write(v, [])
        instrs = self.program.instrs
        for i, node in enumerate(self.g.nodes):
            start = len(instrs)
            self.node(i, node)
            if len(instrs) == start + 1:
                self.barrier = [instrs[start].id]
            elif len(instrs) > start:
                last: dict[str, int] = {}
                for ins in instrs[start:]:
                    last[ins.unit] = ins.id
                self.barrier = sorted(last.values())
        return self.program

    def node(self, i: int, node: Node) -> None:
        op = node.op
        opdef = get_op(op)
        if opdef.kind is OpKind.SOURCE:
            return
        if opdef.has(Trait.VIEW):
            self.root[id(node.output)] = self.rootof(node.inputs[0])
            return
        if all(v.type.numel == 0 for v in node.outputs):
            return  # nothing to compute or move
        if opdef.kind in VECTOR_KINDS:  # the most common, and of no other branch's kinds
            self.vector(i, node, opdef)
        elif opdef.kind is OpKind.MATMUL and node.mapping is not None:
            self.mapped(i, node)
        elif opdef.kind is OpKind.MATMUL and self.weight_of(node.inputs[1]) is not None:
            self.fixed.linear(i, node)
        elif opdef.kind is OpKind.MATMUL:
            self.fixed.act_matmul(i, node)
        elif opdef.has(Trait.GATHERS_ROWS) and self.weight_of(node.inputs[0]) is not None:
            self.gather_rows(i, node)
        elif op == "index_copy" and id(node.output) in self.state:
            self.update_state(i, node)
        elif opdef.kind is OpKind.LAYOUT:
            self.copy(i, node)
        else:
            raise LoweringError(f"task {self.g.name!r}: {self.t.name} has no lowering for op '{op}' "
                                f"(node %{node.outputs[0].name})")

    def mapped(self, i: int, node: Node) -> None:
        g = gemm_of(self.module, node, self.t, self.arena)
        if self.state:
            second = node.inputs[1]
            g = dataclasses.replace(g, a_home=self.level_of(node.inputs[0]), o_home=self.level_of(node.output),
                                    w_home=g.w_home if self.weight_of(second) is not None else self.level_of(second))
        w = self.weight_of(node.inputs[1])
        if w is not None:
            self.check_format(w)
        places = {"a": self.buf(node.inputs[0]), "o": self.buf(node.output),
                  "w": Buf(w.placement.level, w.placement.offset, w.nbytes) if w is not None else
                  self.buf(node.inputs[1])}
        if len(node.inputs) == 3 and self.weight_of(node.inputs[2]) is not None:
            b = self.weight_of(node.inputs[2])
            places["bias"] = Buf(b.placement.level, b.placement.offset, b.nbytes)
        if self.expand:
            ids = MappedLowering(self, i, node, g, places).run()
        else:
            ids = [self.mapped_product(i, node, g, places)]
        reads = [v for v in node.inputs if not self.is_data(v)]
        for v in reads:
            self.readers.setdefault(id(self.rootof(v)), []).extend(ids[-1:])
        self.note_write(node.output, ids[-1:])

    def mapped_product(self, i: int, node: Node, g, places: dict) -> int:
        """A mapped product as one instruction: the cost model's cycles and traffic for its block schedule."""
        mp = node.mapping
        cost = cost_of(g, self.arch, mp)
        parts = self.t.parts
        ops = [b.name for b in parts.operand_buffers()]
        used = ops[:mp.bufs[0] + mp.bufs[1]] or ops[:1]
        names = {"buf": used, "mask": [b.name for b in parts.buffers if b.holds == "masks"][:max(1, len(used))],
                 "aux": [b.name for b in parts.buffers if b.holds == "aux"]}
        traffic: dict[str, list[float]] = {}
        for how, table in ((0, cost.reads), (1, cost.writes)):
            for where, nbytes in table.items():
                targets = names.get(where, [where])
                for name in targets:
                    traffic.setdefault(name, [0.0, 0.0])[how] += nbytes / len(targets)
        self.program.mappings[i] = mp.text()
        ins = self.emit(i, node, kind="gemm", unit="pe", deps=[], reads=tuple(places[k] for k in ("a", "w")),
                        writes=(places["o"],), batch=g.b, m=g.m, k=g.k, n=g.n, fmt=g.fmt, density=g.density,
                        traffic=tuple((name, int(round(rw[0])), int(round(rw[1]))) for name, rw in traffic.items()
                                      if round(rw[0]) or round(rw[1])),
                        tile=(0, g.b, 0, g.m, 0, g.k, 0, g.n), role=f"{mp.dataflow}.{mp.hold}",
                        acc=int(round(cost.acc_accesses)), regfill=int(round(cost.reg_fills)),
                        nbytes=int(round(cost.noc_bytes)), cycles=cost.cycles)
        return ins.id

    def gather_rows(self, i: int, node: Node) -> None:
        table, ids = node.inputs[0], node.inputs[1]
        w = self.weight_of(table)
        out = node.output
        nbytes = max(1, round(w.nbytes * min(1.0, out.type.numel / w.numel)))
        level = w.placement.level
        same = level == self.arena
        ins = self.emit(i, node, kind="dma", unit=f"dma.{level}",
                        deps=self.read_deps([ids]) + self.write_deps(out),
                        reads=(Buf(level, w.placement.offset, nbytes),)
                        + ((self.buf(ids),) if not self.is_data(ids) else ()),
                        writes=(self.buf(out),), nbytes=nbytes,
                        traffic=((level, nbytes, self.bytes_of(out) if same else 0),)
                        + (() if same else ((self.arena, 0, self.bytes_of(out)),)))
        self.note_reads(ins, [ids])
        self.note_write(out, [ins.id])

    def copy(self, i: int, node: Node) -> None:
        """A DMA of the result's bytes into the arena. An operand that is a weight (a fused weight split or
        sliced in the graph) is read where the weight is kept, its share of what moves in its stored bytes;
        the rest is read from the arena."""
        moved = sum(self.bytes_of(v) for v in node.outputs)
        reads = [v for v in node.inputs if not self.is_data(v)]
        deps = self.read_deps(reads)
        for v in node.outputs:
            deps += self.write_deps(v)
        bufs = [self.buf(v) for v in reads]
        from_arena: float = moved
        traffic: dict[str, list[int]] = {}  # level -> [bytes read, bytes written]
        for v in node.inputs:
            w = self.weight_of(v)
            if w is None:
                continue
            part = min(1.0, moved / self.bytes_of(v))  # a slice moves part of the weight
            from_arena -= part * self.bytes_of(v)
            traffic.setdefault(w.placement.level, [0, 0])[0] += round(part * w.nbytes)
            bufs.append(Buf(w.placement.level, w.placement.offset, w.nbytes))
        if reads or not traffic:
            level = self.level_of(reads[0]) if reads else self.arena
            traffic.setdefault(level, [0, 0])[0] += max(0, round(from_arena))
        for v in node.outputs:
            traffic.setdefault(self.level_of(v), [0, 0])[1] += self.bytes_of(v)
        source = self.level_of(reads[0]) if reads else next(iter(traffic))
        ins = self.emit(i, node, kind="dma", unit=f"dma.{source}", deps=deps, reads=tuple(bufs),
                        writes=tuple(self.buf(v) for v in node.outputs), nbytes=moved,
                        traffic=tuple((lvl, rw[0], rw[1]) for lvl, rw in traffic.items()))
        self.note_reads(ins, reads)
        for v in node.outputs:
            self.note_write(v, [ins.id])

    def vector(self, i: int, node: Node, opdef) -> None:
        """One SFU instruction. The most common node by far, so written out rather than through `emit`'s
        keywords: a 100,000-node graph lowers this path 100,000 times."""
        out = node.output
        arena, writers = self.arena, self.writers
        acts: list[Value] = []
        reads: list[Buf] = []
        deps: list[int] = []
        act_bytes = 0
        weights = []
        for v in node.inputs:
            if is_data(v):
                w = self.weight_of(v)
                if w is not None:  # LayerNorm scales and shifts, adapter biases: read where they are kept
                    weights.append(w)
                continue
            r = self.root.get(id(v), v)
            b = self.buf(v)
            acts.append(r)
            reads.append(b)
            act_bytes += b.nbytes
            deps += writers.get(id(r), ())
        traffic = {arena: [act_bytes, self.bytes_of(out)]}
        if self.state:
            traffic = self.split_state(traffic, reads, self.buf(out))
        for w in weights:
            traffic.setdefault(w.placement.level, [0, 0])[0] += w.nbytes
            reads.append(Buf(w.placement.level, w.placement.offset, w.nbytes))
        deps += self.write_deps(out)
        after = tuple(sorted(set(deps).union(self.barrier))) if self.barrier else tuple(sorted(set(deps)))
        elements = node.inputs[0].type.numel if opdef.kind is OpKind.REDUCTION else out.type.numel
        instrs = self.program.instrs
        ins = Instr(len(instrs), "vec", "sfu", after, i, node.op, self.layer(node), tuple(reads), (self.buf(out),),
                    elements=elements, scans=self.t.sfu.scans.get(node.op, 1),
                    traffic=tuple([(lvl, rw[0], rw[1]) for lvl, rw in traffic.items()]))
        instrs.append(ins)
        readers = self.readers
        for r in acts:
            readers.setdefault(id(r), []).append(ins.id)
        self.note_write(out, [ins.id])


    def split_state(self, traffic: dict[str, list[int]], reads: list[Buf], write: Buf) -> dict[str, list[int]]:
        """`traffic` with the bytes of operands in the state region charged to its level."""
        moved = [b for b in reads if b.level == self.state_level and self.state_level != self.arena]
        if not moved and write.level == self.arena:
            return traffic
        out = {lvl: list(rw) for lvl, rw in traffic.items()}
        for b in moved:
            out[self.arena][0] -= b.nbytes
            out.setdefault(b.level, [0, 0])[0] += b.nbytes
        if write.level != self.arena:
            out[self.arena][1] -= write.nbytes
            out.setdefault(write.level, [0, 0])[1] += write.nbytes
        return out

    def update_state(self, i: int, node: Node) -> None:
        """`index_copy` into the state region, in place: a DMA of the copied entries (and their positions)
        from the arena into the region; the rest of the state stays where it is."""
        data, idx, src = node.inputs
        out = node.output
        level = self.level_of(out)
        nbytes = self.bytes_of(src)
        moved = nbytes + (0 if self.is_data(idx) else self.bytes_of(idx))
        reads = [v for v in (idx, src) if not self.is_data(v)]
        traffic: dict[str, list[int]] = {self.arena: [moved, 0]}
        traffic.setdefault(level, [0, 0])[1] += nbytes
        ins = self.emit(i, node, kind="dma", unit=f"dma.{self.arena}",
                        deps=self.read_deps([data, *reads]) + self.write_deps(out),
                        reads=tuple(self.buf(v) for v in reads), writes=(self.buf(out),), nbytes=nbytes,
                        traffic=tuple((lvl, rw[0], rw[1]) for lvl, rw in traffic.items()))
        self.note_reads(ins, reads)
        self.writers[id(out)] = self.writers.get(id(self.rootof(data)), []) + [ins.id]


def staging_base(module: Module, target: Target) -> dict[str, int]:
    """Per memory level, the first byte after every weight (and staged home) and arena placed there: where
    staging tiles go."""
    end = {m.name: 0 for m in target.memories}
    for w in module.weights.values():
        p = w.placement
        if p is None:
            continue
        size = w.nbytes
        end[p.level] = max(end[p.level], p.offset + size)
        if p.home is not None and p.home_offset is not None:
            end[p.home] = max(end[p.home], p.home_offset + size)
    for g in module.graphs.values():
        if g.arena is not None and g.arena.level is not None and g.arena.offset is not None:
            end[g.arena.level] = max(end[g.arena.level], g.arena.offset + g.arena.size)
    align = target.alignment_bytes
    return {k: -(-v // align) * align for k, v in end.items()}
