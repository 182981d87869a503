"""The sandboxed grader gives, check for check, the verdicts of the original battery run in one
process (selfcheck.run_checks on the real class), and the release scores 0."""
import pytest

from conftest import COURSE
from gradekit import contract, selfcheck
from gradekit.grade.submission import code_cells
from mutants import batchnorm

CHECKS = contract.get("batchnorm").modules()[0]


def run_in_one_process(code):
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<submission>", "exec"), namespace)
    return [passed for passed, _ in selfcheck.run_checks(CHECKS, namespace)]


@pytest.mark.parametrize("mutant", batchnorm.MUTANTS, ids=[m.name for m in batchnorm.MUTANTS])
def test_grader_matches_the_original_battery(grade, mutant):
    original = run_in_one_process(mutant.code())
    result = grade("batchnorm", mutant.code())
    graded = [r.passed for r in result.core]
    assert graded == original, [r.message for r in result.core]
    if mutant.expected_failures is not None:
        assert {n for n, ok in enumerate(graded) if not ok} == mutant.expected_failures


@pytest.mark.parametrize("name", contract.names())
def test_release_scores_zero(grade, name):
    assignment = contract.get(name)
    cells = code_cells(COURSE / "release" / name / assignment.notebook, assignment.kit_cell)
    result = grade(name, cells)
    assert result.status == "ok", result.message
    assert [r.passed for r in result.core] == [False] * len(result.core)
    assert result.score == 0


def test_release_scores_zero_in_one_process():
    cells = code_cells(COURSE / "release" / "batchnorm" / "batchnorm.ipynb", contract.get("batchnorm").kit_cell)
    assert run_in_one_process("\n".join(source for _, source in cells)) == [False] * 10


def test_summary_format():
    names = [c["name"] for c in CHECKS.CHECKS]
    lines = selfcheck.summary(names, [True] * 3 + [False] * 7).splitlines()
    assert lines[0] == "" and lines[1] == "3/10 TESTS PASSED:" and set(lines[2]) == {"#"}
    assert lines[3].startswith("0 - Learnable parameters set correctly:") and lines[3].endswith(" Pass")
    assert lines[12].startswith("9 - Final scale and shift:") and lines[12].endswith(" *FAIL*")
