"""Early exit in the program: the test after every off-ramp.

`mark_exits` puts an `exit` instruction after the last instruction of every
off-ramp's entropy (the off-ramps of `ir.offramps`; the `early-exit` pass
ordered the graph so that nothing of a later layer comes before it). The
test is a fence: it waits for every instruction before it (the last one of
each unit, since a unit runs its instructions in order), and the first
instruction of every unit after it waits for the test, because the chip
cannot start layer k + 1 before it knows the sentence goes on. So the
instructions up to the test after layer k are exactly what a sentence that
leaves there executes, and they are scheduled the same whether or not it
leaves (what that costs: `targets.sim.exit_costs`).
"""

from __future__ import annotations

import dataclasses

from aalbert.ir.graph import Graph
from aalbert.ir.offramps import off_ramps
from aalbert.targets.codegen.program import Instr, LoweringError, Program


def mark_exits(program: Program, graph: Graph) -> Program:
    """`program` with an exit test (a fence) after every off-ramp's entropy; unchanged without off-ramps."""
    ramps = off_ramps(graph)
    if not ramps:
        return program
    node_of = {id(v): i for i, node in enumerate(graph.nodes) for v in node.outputs}
    tests = {node_of[id(r.entropy)]: r.layer for r in ramps if r.entropy is not None and id(r.entropy) in node_of}
    if len(tests) != len(ramps):
        raise LoweringError(f"task {graph.name!r}: its off-ramps have no entropy test: run the early-exit pass")
    last = {ins.node: pos for pos, ins in enumerate(program.instrs) if ins.node in tests}
    after = {pos: node for node, pos in last.items()}
    out: list[Instr] = []
    ids: dict[int, int] = {}
    units = {i.unit for i in program.instrs}
    fence, since, waiting = None, {}, set()  # since the last test: each unit's last instruction (units run in order)
    for pos, ins in enumerate(program.instrs):
        deps = {ids[d] for d in ins.deps}
        if fence is not None and ins.unit in waiting:
            deps.add(fence)
            waiting.discard(ins.unit)
        ids[ins.id] = len(out)
        out.append(dataclasses.replace(ins, id=len(out), deps=tuple(sorted(deps))))
        since[ins.unit] = out[-1].id
        if pos in after:
            node = after[pos]
            test = Instr(id=len(out), kind="exit", unit="ctrl", deps=tuple(sorted(since.values())), node=node,
                         op=graph.nodes[node].op, layer=f"exit test after layer {tests[node]}")
            out.append(test)
            fence, since = test.id, {"ctrl": test.id}
            waiting = set(units)
    return dataclasses.replace(program, instrs=out)


def exit_tests(program: Program) -> list[int]:
    """The ids of the program's exit tests, in order."""
    return [ins.id for ins in program.instrs if ins.kind == "exit"]
