"""Every tests/passes/*.ir case, run through the pass manager and checked (see filecheck.py for the format)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aalbert.errors import AalbertError
from aalbert.ir.interpreter import run
from aalbert.ir.parser import parse_module
from aalbert.ir.printer import print_module
from aalbert.passes.base import PASSES, PassManager, parse_pipeline

from ..helpers import random_feeds
from ..ir_cases import give_data
from .filecheck import Case, match, read_cases

HERE = Path(__file__).parent
FILES = sorted(HERE.glob("*.ir"))
CASES = [case for path in FILES for case in read_cases(path)]


def load(case: Case):
    module = parse_module(case.module_text, str(case.path))
    return give_data(module, case.seed) if case.seed is not None else module


def run_case(case: Case) -> str:
    """The printed result of the case's pipeline on its module."""
    module = load(case)
    before = None
    if case.same_outputs:
        before = {t: run(module, t, random_feeds(g, seed=3, vocab=int(case.same_outputs["ids"])))
                  for t, g in module.graphs.items()}
    module = PassManager(parse_pipeline(case.pipeline)).run(module)
    if before is not None:
        for task, want in before.items():
            got = run(module, task, random_feeds(module.graphs[task], seed=3, vocab=int(case.same_outputs["ids"])))
            for name in want:
                np.testing.assert_allclose(got[name], want[name], atol=case.same_outputs["atol"],
                                           rtol=case.same_outputs["rtol"], err_msg=f"{case.where}: {task}/{name}")
    return print_module(module)


def check_case(case: Case) -> None:
    """Fail unless the case's pipeline gives what its checks, or its expected error, say."""
    if case.error is None:
        match(case.checks, run_case(case), case.path)
        return
    with pytest.raises(AalbertError) as e:
        run_case(case)
    message = str(e.value)
    assert "\n" not in message, f"{case.where}: the error is not one line: {message!r}"
    assert case.error in message, f"{case.where}: expected an error holding {case.error!r}, got {message!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_ir_case(case: Case):
    check_case(case)


def test_every_registered_pass_has_a_case():
    """Each registered pass runs, and its result is checked, in at least one case that expects no error."""
    covered = {p.name for case in CASES if case.error is None for p in parse_pipeline(case.pipeline)}
    assert "verify" in PASSES  # the registry is filled
    missing = sorted(set(PASSES) - covered)
    assert not missing, f"registered passes without a case in {HERE}/*.ir: {', '.join(missing)}"
