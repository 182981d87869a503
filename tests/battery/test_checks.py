"""The battery as pytest items: one per check of every assignment (core checks numbered, hidden
checks by name), run on each reference solution, or on `--submission PATH` for its assignment.

    .venv/bin/pytest tests/battery --submission submitted/alice/batchnorm/batchnorm.ipynb
"""
import pytest

from gradekit import contract


def pytest_generate_tests(metafunc):
    if "check" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.gradekit_submission
    names = [chosen[0].name] if chosen else contract.names()
    items = [(name, c) for name in names for c in contract.get(name).scored_checks()]
    metafunc.parametrize("check", items, ids=[f"{name}/{c.id}" for name, c in items])


@pytest.fixture(scope="session")
def graded(pytestconfig, course, grade):
    """{assignment name: its submission's Result}, graded once."""
    chosen = pytestconfig.gradekit_submission
    if chosen:
        assignment, path, cells = chosen
        return {assignment.name: grade(assignment.name, cells, student=str(path))}
    return {name: grade(name, course.solution(contract.get(name)).read_text(), student="reference")
            for name in contract.names()}


def test_check(graded, check):
    name, scored = check
    result = graded[name]
    verdict = next(r for r in result.checks if r.check.key == scored.key)
    if not verdict.passed:
        status = f"\n(status {result.status}: {result.message})" if result.status != "ok" else ""
        pytest.fail(f"{scored.label}: {verdict.message}\nHint: {scored.hint}{status}", pytrace=False)
