"""A check several backend tests share: a placed module's programs compute what the interpreter computes."""

from __future__ import annotations

import numpy as np

from aalbert.ir.interpreter import run
from aalbert.mapper.fidelity import sample_inputs
from aalbert.targets.codegen.lower import lower
from aalbert.targets.sim.functional import execute


def assert_programs_match_interpreter(module, target, samples: int, seed: int) -> None:
    """Every task's program, executed functionally on `samples` seeded inputs, equals the interpreter; lowered
    block by block (`expand`), it computes the same bits as with each mapped product one instruction."""
    for task, graph in module.graphs.items():
        program = lower(module, target, task)
        blocks = lower(module, target, task, expand=True)
        for feeds in sample_inputs(graph, samples, seed=seed):
            want = run(module, task, feeds)
            got = execute(program, module, target, feeds)
            by_block = execute(blocks, module, target, feeds)
            for key in want:
                np.testing.assert_allclose(got[key], want[key], atol=1e-5, rtol=1e-5)
                assert got[key].dtype == by_block[key].dtype and got[key].tobytes() == by_block[key].tobytes(), key
