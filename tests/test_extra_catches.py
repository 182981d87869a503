"""Each hidden extra check catches a realistic mistake that the original ten let through."""
import pytest

from course import copy_course
from gradekit.assignments.batchnorm.mutants import EXTRA_CATCHES, MUTANTS
from gradekit.grade.one import Grader
from gradekit.grade.outputs import feedback_html

BY_NAME = {m.name: m for m in MUTANTS}
# The one extra check whose mistake the ten also see (moving_sigma holding a std fails check 8):
ALSO_FAILS_TEN = {"moving_average_convergence": {8}}


def test_every_extra_check_has_a_hint_and_a_mutant(grader):
    extra = [c for c in grader.checks if c.is_extra]
    assert len(extra) >= 10 and all(c.hint for c in extra)
    assert set(EXTRA_CATCHES) == {c.name for c in extra}


def test_reference_passes_every_extra_check(grader):
    result = grader.grade_cells("reference", [BY_NAME["reference"].code()])
    assert [(r.check.name, r.message) for r in result.extra if not r.passed] == []


@pytest.mark.parametrize("check_name", sorted(EXTRA_CATCHES))
def test_extra_check_catches_what_the_ten_miss(grader, check_name):
    mutant = BY_NAME[EXTRA_CATCHES[check_name]]
    result = grader.grade_cells(mutant.name, [mutant.code()])
    failed_ten = {r.check.number for r in result.ten if not r.passed}
    assert failed_ten == ALSO_FAILS_TEN.get(check_name, set()), [r.message for r in result.ten if not r.passed]
    verdict = next(r for r in result.extra if r.check.name == check_name)
    assert not verdict.passed and verdict.message
    page = feedback_html(result)
    assert verdict.check.hint.split(":")[0][:40].replace("'", "&#x27;") in page


def test_extra_points_are_zero_unless_configured(grader, tmp_path):
    result = grader.grade_cells("reference", [BY_NAME["reference"].code()])
    assert result.score == 10 and result.max_score == 10
    course = copy_course(tmp_path)
    with open(course / "grader_config.py", "a") as config:
        config.write('\nc.Grading.extra_points = {"gradients": 2, "initial_values": 1}\n')
    with Grader("batchnorm", course) as configured:
        wrong = configured.grade_cells("zero-sigma", [BY_NAME["moving-sigma-starts-at-zero"].code()])
    assert wrong.max_score == 13 and wrong.score == 12  # ten + gradients; initial_values failed
    assert [r.passed for r in wrong.ten] == [True] * 10
