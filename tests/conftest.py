"""Shared fixtures. `--submission PATH` points the battery (tests/battery) at a student notebook."""
from pathlib import Path

import pytest

from gradekit import assignment as assignments
from gradekit.grade.one import Grader
from gradekit.notebook import SubmissionError, code_cells

COURSE = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    group = parser.getgroup("gradekit")
    group.addoption("--submission", metavar="PATH", help="notebook (or .py) to run the battery on; "
                    "default: the assignment's reference solution")
    group.addoption("--assignment", default="batchnorm", help="assignment whose battery runs (default: batchnorm)")


def pytest_configure(config):
    # Bad input is reported once, in one line, before any test runs.
    try:
        assignment = assignments.get(config.getoption("assignment"))
        path = config.getoption("submission") or assignment.solution_path(COURSE)
        config.gradekit_submission = (Path(path), code_cells(path))
    except (SubmissionError, assignments.UnknownAssignment) as error:
        raise pytest.UsageError(str(error)) from None


@pytest.fixture(scope="session")
def grader(pytestconfig):
    with Grader(pytestconfig.getoption("assignment"), COURSE) as grader:
        yield grader


@pytest.fixture(scope="session")
def battery(pytestconfig, grader):
    """The submission's Result: every check judged, keyed by check id."""
    path, cells = pytestconfig.gradekit_submission
    result = grader.grade_cells(str(path), cells)
    return {r.check.id: r for r in result.checks}, result
