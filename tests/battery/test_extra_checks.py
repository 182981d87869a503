"""The hidden extra checks, one pytest item each (`extra-<name>`); same `--submission` option."""
import pytest

from gradekit import assignment as assignments

EXTRA = [c for c in assignments.get("batchnorm").checks() if c.is_extra]


@pytest.mark.parametrize("check", EXTRA, ids=[c.id for c in EXTRA])
def test_extra_check(battery, check):
    results, _ = battery
    verdict = results[check.id]
    if not verdict.passed:
        pytest.fail(f"{check.name}: {verdict.message}\nHint: {check.hint}", pytrace=False)
