"""The sandboxed grader gives, check for check, the verdicts of the original battery run in one process."""
import pytest

from gradekit.assignments.batchnorm import ten_checks
from gradekit.assignments.batchnorm.mutants import MUTANTS


def run_in_one_process(code):
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<mutant>", "exec"), namespace)
    return [ok for ok, _ in ten_checks.run_checks(namespace["BatchNorm"])]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_grader_matches_the_original_battery(grader, mutant):
    original = run_in_one_process(mutant.code())
    result = grader.grade_cells(mutant.name, [mutant.code()])
    graded = [r.passed for r in result.ten]
    assert graded == original, [r.message for r in result.ten]
    if mutant.expected_failures is not None:
        assert {n for n, ok in enumerate(graded) if not ok} == mutant.expected_failures


def test_skeleton_fails_every_check(grader):
    from gradekit.notebook import code_cells
    from conftest import COURSE
    result = grader.grade("skeleton", COURSE / "release" / "batchnorm" / "batchnorm.ipynb")
    assert result.status == "ok"
    assert [r.passed for r in result.ten] == [False] * 10
    cells = code_cells(COURSE / "release" / "batchnorm" / "batchnorm.ipynb")
    assert run_in_one_process("\n".join(cells[:2])) == [False] * 10


def test_summary_format():
    text = ten_checks.summary([True] * 3 + [False] * 7)
    lines = text.splitlines()
    assert lines[0] == "" and lines[1] == "3/10 TESTS PASSED:" and set(lines[2]) == {"#"}
    assert lines[3].startswith("0 - Learnable parameters set correctly:") and lines[3].endswith(" Pass")
    assert lines[12].startswith("9 - Final scale and shift:") and lines[12].endswith(" *FAIL*")
