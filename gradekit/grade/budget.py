"""A bound on the tensors a judgement may build from what a submission answered.

Observations are bounded in bytes where they cross the wire, but arithmetic on them is not:
broadcasting three small tensors of shapes (n, 1, 1), (1, n, 1) and (1, 1, n) builds n**3
elements, and a few KiB of answers can make the grader allocate tens of GiB. Judgements (and
expectations computed from what a submission left in its inputs) therefore run under
`ElementBudget`, a torch function mode that refuses, before it runs, any operation whose result
would hold more elements than the budget: for the common elementwise operations and reductions
from the shapes of their operands alone, for torch.zeros and its kind from the size they ask
for, for every other one from a dry run on the "meta" device, which computes shapes without
data. The mode is per thread, as torch keeps it. Being where every judgement's torch call
passes, it also answers torch.allclose through close.py.
"""
import itertools
import math
import operator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from gradekit.grade import close


class OverBudget(RuntimeError):
    pass


ALLCLOSE = (torch.allclose, torch.Tensor.allclose)


# Operations whose result is never larger than their operands broadcast together: elementwise
# arithmetic and comparisons, reductions, conversions, views and property reads.
BY_SHAPES = frozenset("""
__get__ __set__ __bool__ __float__ __int__ __index__ __len__ __iter__ __contains__ __format__ __repr__ __hash__
__add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ __truediv__ __rtruediv__
__itruediv__ __floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ __rpow__ __neg__ __pos__ __abs__ __and__
__rand__ __or__ __ror__ __xor__ __rxor__ __invert__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__
add sub subtract mul multiply div divide true_divide floor_divide remainder fmod pow neg negative abs sqrt
rsqrt square reciprocal exp expm1 log log1p log2 log10 sin cos tan tanh sigmoid relu clamp clip where eq ne
lt le gt ge isclose isfinite isnan isinf isreal logical_and logical_or logical_not logical_xor sign sgn
signbit round floor ceil trunc frac maximum minimum fmax fmin lerp addcmul addcdiv nan_to_num copy_ fill_
sum nansum mean nanmean std var std_mean var_mean max min amax amin aminmax argmax argmin all any prod norm
allclose equal count_nonzero median nanmedian logsumexp cumsum cumprod
to double float half bfloat16 int long short bool type type_as detach detach_ clone contiguous cpu numpy
tolist item dim size numel nelement stride element_size is_complex is_floating_point is_contiguous
requires_grad_ reshape view view_as expand_as flatten ravel squeeze unsqueeze transpose t permute movedim chunk
split unbind narrow select
""".split())


def _tensors(values, found):
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif type(value) in (list, tuple):
            _tensors(value, found)
    return found


def _shapes_size(tensors):
    """Elements of the tensors' shapes broadcast together (each dimension's largest size)."""
    size = 1
    for dims in itertools.zip_longest(*(reversed(t.shape) for t in tensors), fillvalue=1):
        size *= max(dims)
    return size


# Factories that take a size first, as (n, m) or as n, m: the size says what they allocate.
FACTORIES = frozenset({"zeros", "ones", "empty", "full"})


def _requested(args, kwargs):
    """Elements a factory's size asks for; None where the size is not integers (torch refuses it,
    or the dry run decides). An integer tensor counts as its value, as torch reads it: the meta
    dry run cannot read it, so `torch.zeros(answer, n)` used to allocate unchecked."""
    sized = "size" in kwargs or (args and type(args[0]) in (tuple, list, torch.Size))
    dims = kwargs["size"] if "size" in kwargs else args[0] if sized else args
    if type(dims) not in (tuple, list, torch.Size):
        return None
    try:
        dims = [operator.index(d) for d in dims]
    except (TypeError, RuntimeError):  # a float, a tensor of many elements...
        return None
    return math.prod(dims) if all(d >= 0 for d in dims) else None


def _meta(leaf):
    if isinstance(leaf, torch.Tensor):
        return torch.empty_strided(leaf.shape, leaf.stride(), dtype=leaf.dtype, device="meta")
    return leaf


class ElementBudget(TorchFunctionMode):
    """Refuse any torch operation whose result would hold more than `limit` elements."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = _tensors(args, _tensors(kwargs.values(), []))
        if tensors and _shapes_size(tensors) > self.limit:
            self._refuse(func)
        name = getattr(func, "__name__", None)
        # Indexing with ints and slices only takes a part; with tensors it can gather any number of rows.
        by_shapes = name in BY_SHAPES or (name in ("__getitem__", "__setitem__") and len(tensors) == 1)
        if not by_shapes:
            requested = _requested(args, kwargs) if name in FACTORIES else None
            if requested is None:
                self._dry_run(func, args, kwargs, bool(tensors))  # about 0.13 ms a call
            elif requested > self.limit:
                self._refuse(func)
        if func in ALLCLOSE:
            return close.allclose(func, args, kwargs)
        return func(*args, **kwargs)

    def _dry_run(self, func, args, kwargs, has_tensors):
        leaves, spec = tree_flatten((args, kwargs))
        meta_args, meta_kwargs = tree_unflatten([_meta(leaf) for leaf in leaves], spec)
        if not has_tensors:  # a factory: torch.zeros(n, n) and the like
            meta_kwargs = {**meta_kwargs, "device": "meta"}
        try:
            result = func(*meta_args, **meta_kwargs)
        except Exception:  # no meta kernel, a size that depends on the data (bounded by the operands),
            return  # or no `device` to make a factory's result on: nothing to allocate from
        outputs, _ = tree_flatten(result)
        if sum(o.numel() for o in outputs if isinstance(o, torch.Tensor)) > self.limit:
            self._refuse(func)

    def _refuse(self, func):
        name = getattr(func, "__name__", "an operation")
        raise OverBudget(f"{name} would build a tensor of more than {self.limit} elements")
