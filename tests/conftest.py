"""Shared fixtures. `--submission PATH` (with `--assignment NAME`) points the battery
(tests/battery) at a student's notebook instead of the reference solutions."""
import shutil
from pathlib import Path

import pytest

from gradekit import contract
from gradekit.course import Course
from gradekit.grade.battery import Battery
from gradekit.grade.sandbox import Sandbox
from gradekit.grade.submission import SubmissionError, code_cells

COURSE = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    group = parser.getgroup("gradekit")
    group.addoption("--submission", metavar="PATH", help="notebook (or .py) to run the battery on; "
                    "default: each assignment's reference solution")
    group.addoption("--assignment", help="the assignment of --submission (default: the file's name)")


def pytest_configure(config):
    # Bad input is reported once, in one line, before any test runs.
    path = config.getoption("submission")
    config.gradekit_submission = None
    if path:
        from gradekit.cli import _assignment_of
        from gradekit.errors import KitError
        try:
            assignment = _assignment_of(path, config.getoption("assignment"))
            config.gradekit_submission = (assignment, Path(path), code_cells(path, assignment.kit_cell))
        except (SubmissionError, KitError) as error:
            raise pytest.UsageError(str(error)) from None


@pytest.fixture(scope="session")
def course():
    return Course(COURSE)


@pytest.fixture(scope="session")
def sandbox(course):
    with Sandbox(course.sandbox) as box:
        yield box


@pytest.fixture(scope="session")
def grade(course, sandbox):
    """grade(assignment name, code or [(cell number, source)]) -> Result, in the shared sandbox.
    Each assignment's battery is built the first time it is needed."""
    batteries = {}

    def run(name, code, student="student"):
        if name not in batteries:
            batteries[name] = Battery(contract.get(name), course.grading.hidden_points)
        cells = [(1, code)] if isinstance(code, str) else code
        return batteries[name].grade(sandbox, student, cells)
    return run


def copy_course(target):
    target.mkdir(parents=True, exist_ok=True)
    """A throwaway copy of the course (configs, solutions, source and release), for tests that
    grade a class or run nbgrader."""
    for name in ("grader_config.py", "nbgrader_config.py"):
        shutil.copy(COURSE / name, target / name)
    for folder in ("source", "release", "solutions"):
        shutil.copytree(COURSE / folder, target / folder)
    return target
