"""The judging mode's torch.allclose (gradekit/grade/close.py) answers as torch.allclose does, on
values at the edge of the tolerance, special values and every way of calling it, and takes its
short path where a judgement compares large tensors."""
import pytest
import torch

from gradekit.grade import close
from gradekit.grade.budget import ElementBudget

SIZE = close.MIN_ELEMENTS
TOLERANCES = [{}, {"rtol": 1e-4, "atol": 1e-5}, {"rtol": 0.0, "atol": 1e-6}, {"rtol": 1e-5, "atol": 0.0},
              {"rtol": 0.0, "atol": 0.0}, {"rtol": 0.5, "atol": 0.0}, {"rtol": 1e-5, "atol": 1e-6, "equal_nan": True}]


def near_the_edge(dtype, rtol, atol, seed):
    """(other, input) whose errors sit within a few ulps of atol + |rtol * other|, on both sides,
    over magnitudes from subnormal to huge; away from zero for even seeds, towards it for odd."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.pow(10.0, torch.randint(-40 if dtype == torch.float64 else -30, 30, (SIZE,), generator=g).double())
    other = (torch.randn(SIZE, generator=g, dtype=torch.float64) * scale).to(dtype)
    bound = atol + (rtol * other).abs()
    steps = torch.randint(-3, 4, (SIZE,), generator=g).to(dtype)
    sign = torch.sign(other) * (1 if seed % 2 == 0 else -1)
    error = bound * (1 + steps * torch.finfo(dtype).eps)
    return other, other + sign * error


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tolerance", TOLERANCES, ids=lambda t: ",".join(f"{k}={v}" for k, v in t.items()) or "defaults")
def test_same_answer_at_the_edge_of_the_tolerance(dtype, tolerance):
    options = {"rtol": 1e-5, "atol": 1e-8, **tolerance}
    for seed in range(20):
        other, got = near_the_edge(dtype, options["rtol"], options["atol"], seed)
        close_ones = torch.isclose(got, other, **tolerance)
        # all of the elements torch calls close, then one element at a time that it does not
        passing = torch.where(close_ones, got, other)
        assert close.allclose(torch.allclose, (passing, other), tolerance) == torch.allclose(passing, other, **tolerance)
        for index in torch.nonzero(~close_ones).flatten()[:5].tolist():
            one = passing.clone()
            one[index] = got[index]
            assert close.allclose(torch.allclose, (one, other), tolerance) is torch.allclose(one, other, **tolerance)


SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 5e-324, torch.finfo(torch.float32).max]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mine", SPECIAL)
@pytest.mark.parametrize("expected", SPECIAL)
def test_same_answer_on_special_values(dtype, mine, expected):
    other = torch.linspace(-3, 3, SIZE, dtype=dtype)
    got = other.clone()
    other[7], got[7] = expected, mine
    for tolerance in ({}, {"equal_nan": True}):
        assert close.allclose(torch.allclose, (got, other), tolerance) == torch.allclose(got, other, **tolerance)


def test_every_way_of_calling_it_and_its_errors():
    a = torch.randn(SIZE)
    calls = [((a, a + 1e-9), {}), ((a, a), {"rtol": 0.1}), ((a, a, 1e-3, 1e-3), {}), ((a,), {"other": a}),
             ((), {"input": a, "other": a * (1 + 1e-6)}), ((a, a.double()), {}), ((a, a[:-1]), {}),
             ((a, a[:1]), {}), ((a, a), {"rtol": -1.0}), ((a.reshape(256, -1), a.reshape(256, -1).t()), {}),
             ((a, a, 1e-5), {"rtol": 1e-5}), ((a, torch.zeros_like(a, dtype=torch.int64)), {})]
    for args, kwargs in calls:
        try:
            expected = torch.allclose(*args, **kwargs)
        except Exception as error:
            with pytest.raises(type(error)):
                close.allclose(torch.allclose, args, kwargs)
        else:
            assert close.allclose(torch.allclose, args, kwargs) == expected, (args, kwargs)


def test_judgements_take_the_short_path_on_large_tensors(monkeypatch):
    proofs = []
    provably_close = close._provably_close
    monkeypatch.setattr(close, "_provably_close", lambda *a: proofs.append(provably_close(*a)) or proofs[-1])
    a = torch.randn(64, 16, 32, 32)
    with ElementBudget(1 << 24):
        assert torch.allclose(a, a * (1 + 1e-7))
        assert a.allclose(a + 1e-9, rtol=1e-4)
        assert not torch.allclose(a, a + 1)
        assert torch.allclose(a[:2], a[:2])  # small: torch.allclose itself
    assert proofs == [True, True, False, False]
