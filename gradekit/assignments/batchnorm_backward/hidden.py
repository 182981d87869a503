"""Hidden checks of the batch normalization backward pass: what the eight core checks, on one
4 x 5 float64 batch, let through.

Never shipped to students. Same contract as checks.py (see selfcheck.py); points are zero unless
grader_config.py sets them (`Grading.hidden_points`). They judge only the three functions students
write: any correct implementation passes every one, except that closed_form_faster also asks the
closed form to be clearly faster than the staged version (see judge_timing). Trusted gradients
come from autograd on torch.nn.functional.batch_norm in float64 (numerical gradients would be too
slow at these sizes).
"""

import torch
import torch.nn.functional as F

from gradekit.assignments.batchnorm_backward.checks import EPS, as_triple

FUNCTIONS = ("batchnorm_backward", "batchnorm_backward_alt")
GRAD_NAMES = ("dx", "dgamma", "dbeta")
FLOAT64_TOLERANCE = 1e-8  # correct code: below 1e-13 here
FLOAT32_TOLERANCE = 1e-4  # correct float32 code: below 3e-6 on a batch around 12 +- 5
OFFSET_FLOAT32_TOLERANCE = 2e-3  # correct float32 code: below 2e-4 around 1e3 (its mean is rounded to 6e-5)
# Relative to the sum of the magnitudes being added up. The sum over the batch is zero up to
# rounding (1e-15); the dot product with x_hat is exactly eps / (var + eps) times a number of
# order one, below 1e-8 on this batch (x spread by 50, so var is about 2500).
PROPERTY_TOLERANCE = 1e-7
SIZES = ((2, 1), (64, 100), (3, 7))
TIMING = {"shape": (512, 1024), "warmup": 2, "pairs": 40, "at_most": 0.7}


def make_inputs():
    g = torch.Generator().manual_seed(20260214)

    def case(n, d, dtype=torch.float64, offset=12.0, scale=5.0):
        return {"x": scale * torch.randn(n, d, generator=g, dtype=dtype) + offset,
                "gamma": torch.randn(d, generator=g, dtype=dtype), "beta": torch.randn(d, generator=g, dtype=dtype),
                "dout": torch.randn(n, d, generator=g, dtype=dtype)}

    inputs = {"sizes": [case(n, d) for n, d in SIZES],
              "float32": case(16, 8, torch.float32),
              "offset": [case(32, 6, dtype, offset=1e3, scale=1.0) for dtype in (torch.float64, torch.float32)],
              "constant": case(8, 4),
              "properties": case(32, 6, scale=50.0),
              "timing": case(*TIMING["shape"])}
    inputs["constant"]["x"][:, 2] = 2.5  # one feature with zero variance over the batch
    return inputs


# ---- helpers ---------------------------------------------------------------------------------

def trusted(case):
    """out, the gradients (dx, dgamma, dbeta), x_hat and the scale of the terms dx is made of, in float64."""
    values = {k: case[k].detach().to(torch.float64) for k in ("x", "gamma", "beta", "dout")}
    with torch.enable_grad():
        leaves = [values[k].clone().requires_grad_(True) for k in ("x", "gamma", "beta")]
        out = F.batch_norm(*leaves[:1], None, None, *leaves[1:], training=True, eps=EPS)
        # dout as a weight: the gradients of autograd.grad(out, leaves, dout), bit for bit, without
        # the gradient argument that imports sympy into the grader (0.4 s, through torch.fx)
        grads = torch.autograd.grad((out * values["dout"]).sum(), leaves)
    x = values["x"]
    inv_std = 1 / torch.sqrt(x.var(dim=0, correction=0) + EPS)
    x_hat = (x - x.mean(dim=0)) * inv_std
    # dx is a difference of terms of this size; where they cancel (N = 2, D = 1) dx is ~0 and
    # its error is judged against them instead.
    scale = (values["dout"] * values["gamma"] * inv_std).abs().max().item()
    return {"out": out.detach(), "grads": grads, "x_hat": x_hat, "scale": scale, "dtype": case["x"].dtype,
            "shape": tuple(case["x"].shape), "label": f"N={x.shape[0]}, D={x.shape[1]}, "
                                                      f"{str(case['x'].dtype).removeprefix('torch.')}"}


def run_case(ns, case):
    """What the student's three functions give on one case, as data."""
    out, cache = ns.batchnorm_forward(case["x"], case["gamma"], case["beta"])
    found = {"out": ns.read(out)}
    for function in FUNCTIONS:
        found[function] = ns.read(as_triple(getattr(ns, function)(case["dout"], cache)))
    return found


def compare(label, got, want, tolerance, floor=0.0):
    """[] when got matches want: max|got - want| <= tolerance * (max|got| + max|want| + floor); else why."""
    if not isinstance(got, torch.Tensor):
        return [f"{label} is a {type(got).__name__}, not a tensor"]
    if tuple(got.shape) != tuple(want.shape):
        return [f"{label} has shape {tuple(got.shape)}, expected {tuple(want.shape)}"]
    got = got.to(torch.float64)
    if not torch.isfinite(got).all():
        return [f"{label} holds inf or nan"]
    off = (got - want).abs().max().item()
    scale = got.abs().max().item() + want.abs().max().item() + floor
    if off <= tolerance * scale:
        return []
    return [f"{label} has error {off / scale:.2g} (allowed {tolerance:g})"]


def dtype_problems(label, got, dtype):
    if isinstance(got, torch.Tensor) and got.dtype != dtype:
        return [f"{label} is {str(got.dtype).removeprefix('torch.')}, expected "
                f"{str(dtype).removeprefix('torch.')} like the input"]
    return []


def case_problems(found, want, tolerance, check_out=True):
    """Everything wrong with one case's results: dtypes, shapes, values, non-finite entries."""
    label = want["label"]
    problems = []
    if check_out:
        problems += dtype_problems(f"{label}: out", found["out"], want["dtype"])
        problems += compare(f"{label}: out", found["out"], want["out"], tolerance)
    for function in FUNCTIONS:
        for name, got, expected in zip(GRAD_NAMES, found[function], want["grads"]):
            where = f"{label}: {function}'s {name}"
            problems += dtype_problems(where, got, want["dtype"])
            problems += compare(where, got, expected, tolerance, floor=want["scale"] if name == "dx" else 0.0)
    return problems


def verdict(problems):
    return not problems, "; ".join(problems[:3])


# ---- the checks ------------------------------------------------------------------------------

def judge_sizes(expected, obs):
    return verdict([p for want, found in zip(expected, obs) for p in case_problems(found, want, FLOAT64_TOLERANCE)])


def judge_float32(expected, found):
    return verdict(case_problems(found, expected, FLOAT32_TOLERANCE))


def judge_offset(expected, obs):
    problems = []
    for want, found in zip(expected, obs):
        tolerance = FLOAT64_TOLERANCE if want["dtype"] == torch.float64 else OFFSET_FLOAT32_TOLERANCE
        problems += case_problems(found, want, tolerance)
    return verdict(problems)


def judge_constant(expected, found):
    problems = []
    for key in ("out",) + FUNCTIONS:
        values = found[key] if key != "out" else [found[key]]
        if any(isinstance(v, torch.Tensor) and not torch.isfinite(v).all() for v in values):
            problems.append(f"{'out' if key == 'out' else key} gives inf or nan when a feature is constant "
                            f"over the batch")
    return verdict(problems or case_problems(found, expected, FLOAT64_TOLERANCE))


def probe_properties(ns, inputs):
    case = inputs["properties"]
    _, cache = ns.batchnorm_forward(case["x"], case["gamma"], case["beta"])
    return {function: ns.read(as_triple(getattr(ns, function)(case["dout"], cache))[0]) for function in FUNCTIONS}


def judge_properties(expected, obs):
    x_hat = expected["x_hat"]
    problems = []
    for function, dx in obs.items():
        if not isinstance(dx, torch.Tensor) or tuple(dx.shape) != tuple(x_hat.shape):
            problems.append(f"{function}: dx is not a tensor of shape {tuple(x_hat.shape)}")
            continue
        dx = dx.to(torch.float64)
        for what, terms in (("sum over the batch", dx), ("dot product with x_hat", dx * x_hat)):
            off = (terms.sum(dim=0).abs() / terms.abs().sum(dim=0).clamp_min(1e-300)).max().item()
            if not off <= PROPERTY_TOLERANCE:
                problems.append(f"{function}: the {what} of dx is not zero per feature (relative {off:.2g}, "
                                f"allowed {PROPERTY_TOLERANCE:g})")
    return verdict(problems)


def probe_timing(ns, inputs):
    """CPU seconds the submission's process spent in each call of each backward function on one
    large batch: pairs of calls, one of each function back to back, which goes first
    alternating, after warm-up pairs (not kept)."""
    case = inputs["timing"]
    _, cache = ns.batchnorm_forward(case["x"], case["gamma"], case["beta"])
    dout = ns.put(case["dout"])
    times = {function: [] for function in FUNCTIONS}
    for pair in range(TIMING["warmup"] + TIMING["pairs"]):
        for function in FUNCTIONS if pair % 2 else FUNCTIONS[::-1]:
            backward = getattr(ns, function)
            start = ns.cpu_seconds()
            backward(dout, cache)
            elapsed = ns.cpu_seconds() - start
            if pair >= TIMING["warmup"]:
                times[function].append(elapsed)
    return times


def judge_timing(expected, obs):
    """Passes when, in the median pair, the closed form takes at most 0.7 times as long as the
    staged version.

    Timing noise must not decide a grade. Wall-clock times taken from the grader include the
    wake-up of the student's process and every moment it waits for a core: on a loaded machine
    single calls vary threefold, and in one full test run the reference's median ratio drifted
    from its usual 0.33-0.67 past a margin of 0.85 in 5 of 20 gradings. So each call is measured
    in CPU time of the student's process, which waiting does not add to, and the verdict rests on
    the median, over 40 pairs of calls made back to back in alternating order, of alt time /
    staged time. The margin sits between the cases that matter: over 12 gradings each on a
    two-core machine, idle and with three busy processes beside, the reference's median ratio
    stayed within 0.34-0.40 and an "alternative" that repeats the staged computation within
    0.89-1.02. tests/test_batchnorm_backward.py grades both 20 times and requires the same
    verdict every time. A staged version nearly as lean as the closed form comes close to the
    margin (the test's "lean-staged": 0.54-0.76) and is not promised a stable verdict; the closed
    form is meant to do clearly less work, and the check is worth zero points unless the
    instructor sets them. The times are what the student's process reports: code that lies about
    them gains only this check, which a staged version that sleeps could gain as well."""
    staged, alt = obs["batchnorm_backward"], obs["batchnorm_backward_alt"]
    if not (staged and len(staged) == len(alt) and all(s > 0 for s in staged)):
        return False, "the backward functions could not be timed"
    ratios = sorted(a / s for a, s in zip(alt, staged))
    ratio = (ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2
    if ratio <= TIMING["at_most"]:
        return True, ""
    n, d = TIMING["shape"]
    return False, (f"on N={n}, D={d} batchnorm_backward_alt takes {ratio:.2f} times as long as batchnorm_backward "
                   f"(median of {len(ratios)} pairs of calls; expected at most {TIMING['at_most']:g}, the closed "
                   f"form doing clearly less work)")


CHECKS = [
    dict(name="other_sizes", probe=lambda ns, inputs: [run_case(ns, c) for c in inputs["sizes"]],
         expect=lambda inputs: [trusted(c) for c in inputs["sizes"]], judge=judge_sizes,
         hint="Take N and D from the tensors, never from the notebook's examples, and keep dgamma and dbeta of "
              "shape (D,) even when D is 1 (no squeeze())."),
    dict(name="float32", probe=lambda ns, inputs: run_case(ns, inputs["float32"]),
         expect=lambda inputs: trusted(inputs["float32"]), judge=judge_float32,
         hint="Let the input's dtype flow through: no .double(), .float() or dtype=torch.float64 in the code."),
    dict(name="large_offset", probe=lambda ns, inputs: [run_case(ns, c) for c in inputs["offset"]],
         expect=lambda inputs: [trusted(c) for c in inputs["offset"]], judge=judge_offset,
         hint="Compute the variance from the centred values, mean((x - mean)^2), not as mean(x^2) - mean^2: with "
              "a large offset the two big terms cancel and float32 loses every digit of the difference."),
    dict(name="constant_feature", probe=lambda ns, inputs: run_case(ns, inputs["constant"]),
         expect=lambda inputs: trusted(inputs["constant"]), judge=judge_constant,
         hint="A feature that is constant over the batch has variance 0: only sqrt(var + eps) may appear in a "
              "denominator, never sqrt(var), the standard deviation without eps, or x - mean."),
    dict(name="gradient_properties", probe=probe_properties, expect=lambda inputs: trusted(inputs["properties"]),
         judge=judge_properties,
         hint="The true dx sums to zero over the batch and is orthogonal to x_hat, for each feature: check that "
              "every N in the code is the batch size of the tensors given."),
    dict(name="closed_form_faster", probe=probe_timing, judge=judge_timing,
         hint="batchnorm_backward_alt should evaluate the closed form directly (a handful of operations on "
              "N x D tensors), not repeat the staged computation."),
]
