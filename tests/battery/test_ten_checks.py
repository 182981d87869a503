"""The original ten checks, one pytest item each. Run on a student's notebook with
`pytest tests/battery --submission PATH.ipynb`; by default they run on the reference solution."""
import pytest

from gradekit import assignment as assignments

TEN = [c for c in assignments.get("batchnorm").checks() if not c.is_extra]


@pytest.mark.parametrize("check", TEN, ids=[c.id for c in TEN])
def test_check(battery, check):
    results, result = battery
    verdict = results[check.id]
    if not verdict.passed:
        pytest.fail(f"{check.name}: {verdict.message}"
                    + (f"\n(status {result.status}: {result.message})" if result.status != "ok" else ""),
                    pytrace=False)
