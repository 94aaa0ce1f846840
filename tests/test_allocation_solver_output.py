"""The allocator's integer program is solved without a word on stdout or stderr.

`data/allocation_repaired_by_highs.json` is the program of one decoder study configuration (study size, 8 adapters,
LoRA merge-on-switch, the sized RRAM + SRAM chip with the KV cache on chip). With HiGHS's presolve on, an incumbent
found on the presolved program broke a row of the original, and HiGHS printed a debugging line to stdout as it
repaired it (`solvers.solve_milp` says how the line is kept off stdout).
"""

from __future__ import annotations

import json
from pathlib import Path

from aalbert.passes.allocation.solvers import ArenaOption, BankModel, Item, Option, Problem, solve_milp

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
