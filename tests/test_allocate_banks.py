"""The allocator's layout, bank by bank: the banks an inference wakes do not depend on how many tasks share the
chip, and the SRAM leakage per inference stays flat as tasks are added."""

from __future__ import annotations

import functools

import pytest

from aalbert.mapper.backend import Stream, run_backend
from aalbert.mapper.study.configuration import workload
from aalbert.mapper.study.evaluate import ModelSpec, override_target, place, prepared
from aalbert.passes.allocation.layout import Cursor
from aalbert.targets.hardware.spec import load_target

# edge_accel with its 4 MiB SRAM cut into 1,024 banks of 4 KiB: the tiny model's arena (5,248 bytes) and a task's
# own weights (about 1.3 KB) then take two or three banks, depending on where they land
BANKS = 1024
MOST = 4


@functools.lru_cache(maxsize=1)
def chip():
    return override_target("edge_accel", {"memory.sram.banks": BANKS})


@functools.lru_cache(maxsize=MOST)
def placed(n: int):
    module = prepared(ModelSpec("adapter-albert", n, "tiny", seq_len=16), all_tasks=MOST)
    return place(module, chip(), workload(module, False), spill=False)[0]


def banks_of(module, task: str) -> set[int]:
    """The SRAM banks holding the task's arena, its own weights and the weights every task reads."""
    b = chip().level("sram").bank_bytes
    spans = [(w.placement.offset, w.nbytes) for w in module.weights.values()
             if w.placement.level == "sram" and (w.role.shared or task in w.role.tasks)]
    a = module.graphs[task].arena
    spans.append((a.offset, a.size))
    return {k for lo, size in spans for k in range(lo // b, (lo + size - 1) // b + 1)}


def test_a_tasks_banks_do_not_grow_when_tasks_are_added():
    first = {}
    for n in range(1, MOST + 1):
        module = placed(n)
        for task in module.graphs:
            count = len(banks_of(module, task))
            first.setdefault(task, count)
            assert count <= first[task], f"{task}: {count} banks with {n} tasks, {first[task]} before"
        a = next(iter(module.graphs.values())).arena
        assert a.offset % chip().level("sram").bank_bytes == 0   # the arena starts on a bank boundary
    # every task: the arena's banks and the fewest its own weights fit in
    own = {t: sum(-(-w.nbytes // 64) * 64 for w in placed(MOST).weights.values()
                  if not w.role.shared and w.placement.level == "sram" and t in w.role.tasks)
           for t in placed(MOST).graphs}
    b = chip().level("sram").bank_bytes
    for task, count in first.items():
        assert count == -(-placed(MOST).graphs[task].arena.size // b) + -(-own[task] // b)


def sram_static(n: int) -> tuple[float, list[int]]:
    """Mean SRAM leakage and wake-up energy of one inference over the tasks (pJ), and the banks each accesses."""
    module = placed(n)
    backend = run_backend(module, chip(), workload(module, False), Stream(0))
    pj = [sum(v for k, v in r.energy.items() if k.split(":")[1:2] == ["sram"] and ":" in k)
          for r in backend.results.values()]
    return sum(pj) / len(pj), [r.static.banks["sram"]["accessed"] for r in backend.results.values()]


def test_sram_leakage_is_flat_in_the_task_count():
    figures = [sram_static(n) for n in range(1, MOST + 1)]
    accessed = {c for _, counts in figures for c in counts}
    assert len(accessed) == 1, f"banks accessed per inference vary with the task count: {figures}"
    for (a, _), (b, _) in zip(figures, figures[1:]):
        assert b == pytest.approx(a, rel=0.02)


def test_a_group_moves_to_a_bank_boundary_only_where_that_saves_a_bank():
    sram = load_target("edge_accel").level("sram")          # 16 banks of 256 KiB
    b = sram.bank_bytes
    cur = Cursor(sram, at=b - 1000, slack=b, common=frozenset({0}))
    assert cur.place(500) == b - 1000       # fits in the common bank 0: stays
    assert cur.place(1000) == b - 500       # touches bank 1 wherever it goes: stays
    assert cur.place(b - 100) == 2 * b      # at the cursor it would touch banks 1 and 2, from bank 2 only bank 2
    assert (cur.at, cur.slack) == (3 * b - 100, b - (b - 500))
    cur = Cursor(sram, at=b + 500, slack=100, common=frozenset({0}))
    assert cur.place(b - 100) == b + 500    # no room left to skip to the boundary: packed
