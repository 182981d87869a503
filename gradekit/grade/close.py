"""torch.allclose's answer in fewer passes over large tensors, for the grader's judgements.

torch.isclose builds about ten full-size temporaries (equality, NaN and infinity masks, the two
error tensors, their comparison), so one allclose over a 1M-element tensor costs about 7 ms on
one core, a third of a T04 submission's judging. Judgements call torch.allclose as the checks'
authors wrote it; the judging mode (budget.py) routes each call here.

Only a proof of "close" is taken from the short path: every element's error computed as torch
computes it, `|input - other| <= atol + |rtol * other|`, with a finite bound (so a finite error).
torch counts such an element as close, so all of them passing means torch.allclose is True. Any
other outcome (an element outside the bound, NaN, infinity, other dtypes, shapes that broadcast,
small tensors) is torch.allclose's own answer.
"""
import torch

MIN_ELEMENTS = 1 << 16  # below this, torch.allclose's single call is cheaper than several passes
DTYPES = (torch.float32, torch.float64)
DEFAULTS = {"rtol": 1e-05, "atol": 1e-08, "equal_nan": False}


def allclose(func, args, kwargs):
    """`func(*args, **kwargs)`'s answer, where `func` is torch.allclose or Tensor.allclose."""
    if _provably_close(*_arguments(args, kwargs)):
        return True
    return func(*args, **kwargs)


def _arguments(args, kwargs):
    """(input, other, rtol, atol, equal_nan) as torch would bind them; None where they do not bind."""
    names = ("input", "other", "rtol", "atol", "equal_nan")
    if len(args) > len(names) or any(name in kwargs for name in names[:len(args)]):
        return (None,) * 5
    bound = dict(DEFAULTS, **dict(zip(names, args)), **kwargs)
    if set(bound) != set(names):
        return (None,) * 5
    return tuple(bound[name] for name in names)


def _provably_close(a, b, rtol, atol, equal_nan):
    if not (type(a) is torch.Tensor and type(b) is torch.Tensor and a.dtype == b.dtype and a.dtype in DTYPES
            and a.shape == b.shape and a.numel() >= MIN_ELEMENTS and a.device.type == b.device.type == "cpu"
            and a.layout == b.layout == torch.strided and not a.is_conj() and not b.is_conj()):
        return False
    if not (type(rtol) in (int, float) and type(atol) in (int, float) and rtol >= 0 and atol >= 0
            and rtol + atol > 0 and type(equal_nan) is bool):  # no tolerance: torch compares for equality
        return False
    with torch.no_grad():
        error = torch.sub(a, b).abs_()
        bound = torch.mul(b, rtol).abs_().add_(atol)  # atol + |rtol * other|, as torch.isclose
        if not bool(torch.isfinite(bound.amax())):
            return False
        # le_ leaves 1.0 where close and 0.0 elsewhere: its least value is 1 exactly when every
        # element is close (a float amin is about 0.6 ms faster than `all` on 1M elements).
        return bool(error.le_(bound).amin() == 1)
