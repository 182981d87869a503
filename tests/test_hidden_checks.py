"""Hidden checks: each catches a realistic mistake the core checks let through, carries no
points unless configured, and judges only what students write: a correct completion of the
original skeleton, however it is written, passes every one."""
import html

import pytest

from conftest import COURSE, copy_course
from gradekit import contract
from gradekit.course import Course
from gradekit.grade.battery import Battery
from mutants import batchnorm

BY_NAME = {m.name: m for m in batchnorm.MUTANTS}
# The one hidden check whose mistake the ten also see (moving_sigma holding a std fails check 8).
ALSO_FAILS_CORE = {"moving_average_convergence": {8}}
def test_every_hidden_check_has_a_hint_and_a_mutant():
    hidden = [c for c in contract.get("batchnorm").scored_checks() if c.hidden]
    assert len(hidden) >= 10 and all(c.hint for c in hidden)
    assert set(batchnorm.HIDDEN_CATCHES) == {c.name for c in hidden}


@pytest.mark.parametrize("mutant", batchnorm.HONEST, ids=[m.name for m in batchnorm.HONEST])
def test_correct_completions_pass_every_check(grade, mutant):
    result = grade("batchnorm", mutant.code())
    assert [(r.check.label, r.message) for r in result.checks if not r.passed] == []


@pytest.mark.parametrize("check_name", sorted(batchnorm.HIDDEN_CATCHES))
def test_hidden_check_catches_what_the_core_checks_miss(grade, check_name):
    mutant = BY_NAME[batchnorm.HIDDEN_CATCHES[check_name]]
    result = grade("batchnorm", mutant.code())
    failed_core = {r.check.number for r in result.core if not r.passed}
    assert failed_core == ALSO_FAILS_CORE.get(check_name, set()), [r.message for r in result.core if not r.passed]
    verdict = next(r for r in result.hidden if r.check.name == check_name)
    assert not verdict.passed and verdict.message
    assert verdict.check.hint in html.unescape(result.feedback_html())


def test_hidden_points_are_zero_unless_configured(grade, sandbox, tmp_path):
    result = grade("batchnorm", BY_NAME["reference"].code())
    assert result.score == 10 and result.max_score == 10
    course = copy_course(tmp_path)
    with open(course / "grader_config.py", "a") as config:
        config.write('\nc.Grading.hidden_points = {"gradients": 2, "initial_values": 1}\n')
    configured = Battery(contract.get("batchnorm"), Course(course).grading.hidden_points)
    wrong = configured.grade(sandbox, "zero-sigma", [(1, BY_NAME["moving-sigma-starts-at-zero"].code())])
    assert wrong.max_score == 13 and wrong.score == 12  # ten + gradients; initial_values failed
    assert [r.passed for r in wrong.core] == [True] * 10


def test_hidden_checks_never_reach_students():
    released = (COURSE / "release" / "batchnorm")
    text = "".join(p.read_text() for p in released.iterdir())
    for secret in ("gradekit.assignments", "registered_parameters", "moving_average_convergence", "BEGIN SOLUTION",
                   "register_buffer", "HIDDEN TESTS"):
        assert secret not in text, secret
