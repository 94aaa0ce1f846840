"""The allocator's integer program is solved without a word on stdout or stderr, gives the same answer every
time, and says so when it stops at a limit before proving optimality.

`data/allocation_repaired_by_highs.json` is the program of one decoder study configuration (study size, 8 adapters,
LoRA merge-on-switch, the sized RRAM + SRAM chip with the KV cache on chip). With HiGHS's presolve on, an incumbent
found on the presolved program broke a row of the original, and HiGHS printed a debugging line to stdout as it
repaired it (`solvers.solve_milp` says how the line is kept off stdout). Branch and bound takes a few nodes on it,
so a node limit of one stops it early.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from aalbert.mapper.cli import compile as compile_cli
from aalbert.mapper.frontends import DimSpec
from aalbert.mapper.loading import ExampleSpec, load_example
from aalbert.mapper.reports.memory import allocation_lines, memory_json
from aalbert.passes import allocate
from aalbert.passes.allocation.record import Allocation
from aalbert.passes.allocation.solvers import (
    NODE_STOP,
    TIME_STOP,
    ArenaOption,
    BankModel,
    Item,
    Option,
    Problem,
    Solution,
    feasible,
    solve_milp,
)
from aalbert.passes.base import PassManager, parse_pipeline
from aalbert.targets.hardware.spec import load_target

DATA = Path(__file__).parent / "data" / "allocation_repaired_by_highs.json"


def _pairs(rows: list) -> tuple:
    return tuple((level, amount) for level, amount in rows)


def _option(d: dict) -> Option:
    return Option(d["kind"], d["level"], d["home"], d["cost"], _pairs(d["resident"]), _pairs(d["swap"]),
                  _pairs(d["present"]), d["uses_dram"], _pairs(d["stage"]))


def _problem() -> Problem:
    d = json.loads(DATA.read_text())
    items = [Item(i["name"], tuple(i["tasks"]), [_option(o) for o in i["options"]]) for i in d["items"]]
    arenas = [ArenaOption(a["level"], a["size"], a["cost"], a["uses_dram"], _pairs(a["stage"]))
              for a in d["arena_options"]]
    return Problem(items, d["capacities"], arenas, tuple(d["tasks"]), [BankModel(**b) for b in d["banks"]],
                   d["dram_pj"], d["constant_pj"])


def test_the_solve_prints_nothing(capfd):
    problem = _problem()
    capfd.readouterr()
    solution = solve_milp(problem)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert solution is not None and solution.method == "ilp"
    assert solution.choice.keys() == {item.name for item in problem.items}
    assert abs(solution.objective - solution.bound) <= 1e-6 * abs(solution.objective)  # proved optimal


@pytest.fixture(scope="module")
def stored() -> Problem:
    return _problem()


@pytest.fixture(scope="module")
def optimal(stored) -> Solution:
    solution = solve_milp(stored)
    assert solution is not None
    return solution


@pytest.fixture(scope="module")
def stopped(stored) -> Solution:
    solution = solve_milp(stored, node_limit=1)
    assert solution is not None
    return solution


def _answer(solution: Solution | None) -> tuple:
    assert solution is not None
    return dict(solution.choice), solution.arena, solution.objective, solution.bound, solution.limit


def test_a_solve_stopped_at_its_node_limit_says_so(stored, optimal, stopped):
    assert stopped.limit == NODE_STOP and optimal.limit == ""
    assert stopped.choice.keys() == optimal.choice.keys() and feasible(stored, stopped.choice, stopped.arena)
    assert stopped.bound < optimal.bound <= optimal.objective <= stopped.objective  # the early bound is weaker
    assert stopped.gap > 1e-9


def test_the_same_program_gives_the_same_answer(stored, optimal, stopped):
    """Whether it ran to optimality or stopped at the node limit: the node count, unlike a time, does not
    depend on the machine's load."""
    assert _answer(solve_milp(stored)) == _answer(optimal)
    assert _answer(solve_milp(stored, node_limit=1)) == _answer(stopped)


def test_a_stop_at_the_time_limit_is_reported_and_warned_about(capsys, monkeypatch):
    """Every solve of an allocation made to look stopped at the time limit: one warning line on stderr, the
    report's status and note, the JSON report's and the emitted program's word on it."""
    solve = allocate.solve_milp

    def timed_out(problem, **kw):
        solution = solve(problem, **kw)
        solution.limit = TIME_STOP
        return solution

    module = load_example(ExampleSpec("adapter-albert", 1, "tiny", layers=2), DimSpec(1, 8))
    monkeypatch.setattr(allocate, "solve_milp", timed_out)
    capsys.readouterr()
    manager = PassManager(parse_pipeline("canonicalize,share,plan-activations{target=edge_accel},"
                                         "allocate{target=edge_accel}"))
    manager.run(module)
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("aalbert: warning: ") and "machine load" in err
    a = manager.analyses.get(Allocation)
    lines = allocation_lines(a)
    assert lines[0].startswith("allocation (stopped at its time limit)")
    assert any(line.startswith("note: ") and "time limit" in line for line in lines)
    assert json.loads(memory_json(module, load_target("edge_accel"), a))["allocation"]["stopped_at"] == TIME_STOP
    assert "stopped at its time limit" in compile_cli._with_stop("0000  nop\n", "asm", a).splitlines()[0]


def test_emitted_json_names_the_limit_only_when_there_was_one():
    body = json.dumps({"programs": []}, indent=1, sort_keys=True) + "\n"
    stopped = SimpleNamespace(solution=SimpleNamespace(limit=NODE_STOP, gap=1e-3))
    proven = SimpleNamespace(solution=SimpleNamespace(limit="", gap=0.0))
    assert json.loads(compile_cli._with_stop(body, "json", stopped))["allocation_stopped_at"] == NODE_STOP
    assert compile_cli._with_stop(body, "json", proven) == body
