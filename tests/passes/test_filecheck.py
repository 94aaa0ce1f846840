"""The IR-file checker itself: each directive can fail, and malformed cases are refused."""

from __future__ import annotations

import pytest

from .filecheck import CaseError, Mismatch, match, read_cases
from .test_ir_files import check_case

OUTPUT = """module {
  weight @w : tensor<3xf32> hash "0123abcd"

  graph @t(%x: tensor<3xf32>) -> ("y": tensor<3xf32>) {
    %0 = tanh(%x) : tensor<3xf32>
    %1 = exp(%0) : tensor<3xf32>
    return %1
  }
}
"""

MODULE = """module {
  graph @t(%x: tensor<3xf32>) -> ("y": tensor<3xf32>) {
    %0 = tanh(%x) : tensor<3xf32>
    %1 = exp(%x) : tensor<3xf32>
    return %0
  }
}
"""


def checks(tmp_path, lines: str):
    path = tmp_path / "c.ir"
    path.write_text("// RUN: dce\n" + MODULE + lines)
    (case,) = read_cases(path)
    return case


@pytest.mark.parametrize("lines", [
    "// CHECK: tanh\n// CHECK: exp\n// CHECK-NEXT: return %1\n",
    "// CHECK: weight @w\n// CHECK-EMPTY:\n// CHECK-NEXT: graph @t\n",
    "// CHECK-NOT: sqrt\n// CHECK: tanh(%x)  :   tensor<3xf32>\n",
    '// CHECK: hash "{{[0-9a-f]{8}}}"\n// CHECK: %{{[0-9]}} = exp\n',
    "// CHECK: tanh\n// CHECK-NOT: tanh\n// CHECK: return\n",
])
def test_checks_that_hold(tmp_path, lines):
    case = checks(tmp_path, lines)
    match(case.checks, OUTPUT, case.path)


@pytest.mark.parametrize("lines, why", [
    ("// CHECK: sqrt\n", "not found after output line 0"),
    ("// CHECK: exp\n// CHECK: tanh\n", "'tanh' not found after output line 6"),
    ("// CHECK: tanh\n// CHECK-NEXT: return\n", "does not match output line 6"),
    ("// CHECK: weight\n// CHECK-NEXT: graph\n", "does not match output line 3"),
    ("// CHECK: graph\n// CHECK-EMPTY:\n", "does not match output line 5"),
    ("// CHECK: graph\n// CHECK-NOT: exp\n// CHECK: return\n", "matches output line 6"),
    ("// CHECK: graph\n// CHECK-NOT: }\n", "matches output line 8"),
    ('// CHECK: hash "{{[0-9]+}}"\n', "not found"),
    ("// CHECK: }\n// CHECK-NEXT: }\n// CHECK-NEXT: }\n", "the output ends"),
])
def test_checks_that_fail(tmp_path, lines, why):
    case = checks(tmp_path, lines)
    with pytest.raises(Mismatch, match=r"c\.ir:\d+: CHECK") as e:
        match(case.checks, OUTPUT, case.path)
    assert why in str(e.value)


@pytest.mark.parametrize("text, message", [
    (MODULE + "// CHECK: tanh\n", "no '// RUN:' line"),
    ("// RUN: dce\n" + MODULE, "nothing to check"),
    ("// RUN: dce\n" + MODULE + "// CHECK-NOT: exp\n", "nothing to check"),
    ("// RUN: dce\n" + MODULE + "// CHECK: tanh\n// ERROR: x\n", "an ERROR or checks its result, not both"),
    ("// RUN: dce\n" + MODULE + "// CHECK-NEXT: tanh\n", "needs a match before it"),
    ("// RUN: dce\n" + MODULE + "// CHECK: tanh\n// CHECK-NOT: exp\n// CHECK-NEXT: x\n", "leaves it nothing"),
    ("// RUN: dce\n// DATA: lots\n" + MODULE + "// CHECK: tanh\n", "expected '// DATA: seeded [SEED]'"),
    ("// RUN: dce\n// SAME-OUTPUTS: tol=1\n" + MODULE + "// CHECK: tanh\n", "SAME-OUTPUTS takes"),
    ("// RUN: dce\n" + MODULE + "// CHECK: {{[a-z]\n", "unclosed"),
])
def test_malformed_cases_are_refused(tmp_path, text, message):
    (tmp_path / "bad.ir").write_text(text)
    with pytest.raises(CaseError, match="bad.ir") as e:
        read_cases(tmp_path / "bad.ir")
    assert message in str(e.value)


def test_cases_split_inherit_the_pipeline_and_keep_file_lines(tmp_path):
    path = tmp_path / "two.ir"
    path.write_text("// RUN: dce\n" + MODULE + "// CHECK: tanh\n// -----\n// DATA: seeded 7\n" + MODULE
                    + "// CHECK: exp\n")
    first, second = read_cases(path)
    assert (first.pipeline, second.pipeline) == ("dce", "dce")
    assert (first.seed, second.seed) == (None, 7)
    assert second.first_line == 11 and second.checks[0].line == 19
    assert second.module_text.splitlines()[11] == MODULE.splitlines()[0]


def test_the_runner_fails_a_wrong_expectation(tmp_path):
    """A case whose pass does not do what it says fails: dce removes %1, an ERROR that never comes."""
    path = tmp_path / "wrong.ir"
    path.write_text("// RUN: dce\n" + MODULE + "// CHECK: exp\n// -----\n" + MODULE + "// ERROR: something\n")
    wrong_check, wrong_error = read_cases(path)
    with pytest.raises(Mismatch, match="'exp' not found"):
        check_case(wrong_check)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        check_case(wrong_error)


def test_same_outputs_catches_a_pipeline_that_changes_results(tmp_path):
    path = tmp_path / "lossy.ir"
    path.write_text("""// RUN: quantize{format=int4}
// DATA: seeded
// SAME-OUTPUTS: atol=1e-6 rtol=0
module {
  weight @w : tensor<4x3xf32> hash "0"
  graph @t(%x: tensor<2x4xf32>) -> ("y": tensor<2x3xf32>) {
    %0 = weight {name = @w} : tensor<4x3xf32>
    %1 = linear(%x, %0) : tensor<2x3xf32>
    return %1
  }
}
// CHECK: linear
""")
    (case,) = read_cases(path)
    with pytest.raises(AssertionError, match="lossy.ir:1: t/y"):
        check_case(case)
