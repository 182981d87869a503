"""The core checks of the batch normalization backward pass (8 points).

Shipped to students beside the notebook (as batchnorm_backward_checks.py) and run by the
autograder. Each check is a probe (calls your functions through `ns`, records what they
returned), an expectation (computed from the inputs alone) and a judgement (compares the two);
see selfcheck.py for the contract.

Gradients are judged against numerical gradients: central differences with step 1e-5 of
sum(out * dout), taken both on your own batchnorm_forward and on a trusted forward
(torch.nn.functional.batch_norm). Your gradient must be close to both. "Error" is normwise,
max|a - b| / (max|a| + max|b|), and a gradient whose shape differs from the expected one fails.
"""
import torch

SEED = 231
N, D = 4, 5
EPS = 1e-5
STEP = 1e-5  # central differences
GRAD_TOLERANCE = 1e-8  # correct code stays below 5e-10
OUT_TOLERANCE = {"rtol": 1e-7, "atol": 1e-9}
MEAN_WITHIN = 1e-7
STD_WITHIN = 1e-4
PARAMS = ("x", "gamma", "beta")  # what the gradients are taken with respect to
GRAD_NAMES = {"x": "dx", "gamma": "dgamma", "beta": "dbeta"}


def make_inputs():
    """The inputs, drawn as torch.manual_seed(231) then randn would draw them, from a private generator."""
    g = torch.Generator().manual_seed(SEED)
    x = 5 * torch.randn(N, D, generator=g, dtype=torch.float64) + 12
    gamma = torch.randn(D, generator=g, dtype=torch.float64)
    beta = torch.randn(D, generator=g, dtype=torch.float64)
    dout = torch.randn(N, D, generator=g, dtype=torch.float64)
    return {"x": x, "gamma": gamma, "beta": beta, "dout": dout}


# ---- helpers ---------------------------------------------------------------------------------

def trusted_forward(x, gamma, beta):
    return torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS)


def numerical_gradients(forward_all, values, dout, wrt=PARAMS):
    """{name: d sum(forward(x, gamma, beta) * dout) / d name} by central differences, for each name
    in `wrt`. `forward_all([(x, gamma, beta), ...])` gives the forward's outputs, in order."""
    moves = [(name, index, sign) for name in wrt for index in range(values[name].numel()) for sign in (1, -1)]
    points = []
    for name, index, sign in moves:
        moved = dict(values)
        moved[name] = values[name].clone()
        moved[name].view(-1)[index] += sign * STEP
        points.append((moved["x"], moved["gamma"], moved["beta"]))
    sides = iter([(out * dout).sum() for out in forward_all(points)])
    grads = {}
    for name in wrt:
        grad = torch.zeros_like(values[name])
        for index in range(grad.numel()):
            grad.view(-1)[index] = (next(sides) - next(sides)) / (2 * STEP)
        grads[name] = grad
    return grads


def student_numerical(ns, inputs, wrt=PARAMS):
    """Numerical gradients on the student's own batchnorm_forward, at the inputs as the student holds them."""
    values = ns.read({name: ns.put(inputs[name]) for name in PARAMS})
    dout = ns.read(ns.put(inputs["dout"]))

    def forward_all(points):
        with ns.pipelined():  # each output read as soon as it is made, one round trip per forward
            return [ns.read(ns.batchnorm_forward(x, gamma, beta)[0]) for x, gamma, beta in points]

    return numerical_gradients(forward_all, values, dout, wrt)


def expect_numerical(inputs):
    """Numerical gradients on the trusted forward (computed once, before grading)."""
    with torch.no_grad():
        return numerical_gradients(lambda points: [trusted_forward(*p) for p in points], inputs, inputs["dout"])


def error(got, want):
    """Normwise error max|a - b| / (max|a| + max|b|); a string saying why when they cannot be compared."""
    if not isinstance(got, torch.Tensor):
        return f"is a {type(got).__name__}, not a tensor"
    if tuple(got.shape) != tuple(want.shape):
        return f"has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    got, want = got.to(torch.float64), want.to(torch.float64)
    scale = (got.abs().max() + want.abs().max()).item()
    if scale == 0:
        return 0.0
    return (got - want).abs().max().item() / scale


def grad_problems(label, got, student, trusted):
    """[] when `got` is within GRAD_TOLERANCE of both numerical gradients, else what is wrong."""
    problems = []
    for against, want in (("your batchnorm_forward", student), ("a trusted forward", trusted)):
        found = error(got, want)
        if isinstance(found, str):
            return [f"{label} {found}"]
        if not found < GRAD_TOLERANCE:  # also catches nan
            problems.append(f"{label} has error {found:.2g} against the numerical gradient of {against} "
                            f"(allowed {GRAD_TOLERANCE:g})")
    return problems


def verdict(problems):
    return not problems, "; ".join(problems[:3])


def as_triple(result):
    """(dx, dgamma, dbeta) from what a backward function returned."""
    if type(result) not in (tuple, list) or len(result) != 3:
        raise ValueError("a backward function must return (dx, dgamma, dbeta)")
    return tuple(result)


def run_backward(ns, inputs, function):
    """Forward on the inputs, then the named backward function; (dx, dgamma, dbeta) proxies."""
    out, cache = ns.batchnorm_forward(inputs["x"], inputs["gamma"], inputs["beta"])
    return as_triple(getattr(ns, function)(inputs["dout"], cache))


# ---- the forward pass ------------------------------------------------------------------------

def probe_forward(ns, inputs):
    out, _ = ns.batchnorm_forward(inputs["x"], inputs["gamma"], inputs["beta"])
    return ns.read(out)


def judge_forward_output(expected, out):
    if not isinstance(out, torch.Tensor):
        return False, f"out is a {type(out).__name__}, not a tensor"
    if tuple(out.shape) != tuple(expected.shape):
        return False, f"out has shape {tuple(out.shape)}, expected {tuple(expected.shape)}"
    out = out.to(expected.dtype)
    if torch.allclose(out, expected, **OUT_TOLERANCE):
        return True, ""
    return False, (f"out differs from batch normalization by up to {(out - expected).abs().max().item():.3g} "
                   f"(allowed rtol {OUT_TOLERANCE['rtol']:g}, atol {OUT_TOLERANCE['atol']:g})")


def judge_forward_statistics(expected, out):
    gamma, beta = expected
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != beta.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return False, f"out has shape {shape}, expected (N, {beta.shape[0]})"
    out = out.to(torch.float64)
    mean_off = (out.mean(dim=0) - beta).abs().max().item()
    std_off = (out.std(dim=0, correction=0) - gamma.abs()).abs().max().item()
    problems = []
    if not mean_off <= MEAN_WITHIN:
        problems.append(f"the per-feature mean of out is {mean_off:.3g} from beta (allowed {MEAN_WITHIN:g})")
    if not std_off <= STD_WITHIN:
        problems.append(f"the per-feature (biased) standard deviation of out is {std_off:.3g} from |gamma| "
                        f"(allowed {STD_WITHIN:g})")
    return verdict(problems)


# ---- the staged backward pass ----------------------------------------------------------------

def probe_staged(name):
    """The staged backward's gradient with respect to `name`, and the numerical gradient on the
    student's forward."""
    index = PARAMS.index(name)

    def probe(ns, inputs):
        numerical = student_numerical(ns, inputs, wrt=(name,))
        grads = run_backward(ns, inputs, "batchnorm_backward")
        return {"grad": ns.read(grads[index]), "numerical": numerical[name]}
    return probe


def judge_staged(name):
    def judge(expected, obs):
        return verdict(grad_problems(GRAD_NAMES[name], obs["grad"], obs["numerical"], expected[name]))
    return judge


def all_grad_problems(label, grads, student, trusted):
    problems = []
    for name, got in zip(PARAMS, grads):
        problems += grad_problems(f"{label}: {GRAD_NAMES[name]}", got, student[name], trusted[name])
    return problems


# ---- the closed form, no autograd, shapes ----------------------------------------------------

def probe_alt(ns, inputs):
    numerical = student_numerical(ns, inputs)
    grads = run_backward(ns, inputs, "batchnorm_backward_alt")
    return {"grads": ns.read(grads), "numerical": numerical}


def judge_alt(expected, obs):
    return verdict(all_grad_problems("batchnorm_backward_alt", obs["grads"], obs["numerical"], expected))


def probe_no_autograd(ns, inputs):
    numerical = student_numerical(ns, inputs)
    with torch.inference_mode():
        out, cache = ns.batchnorm_forward(inputs["x"], inputs["gamma"], inputs["beta"])
        staged = as_triple(ns.batchnorm_backward(inputs["dout"], cache))
        alt = as_triple(ns.batchnorm_backward_alt(inputs["dout"], cache))
    return {"batchnorm_backward": ns.read(staged), "batchnorm_backward_alt": ns.read(alt), "numerical": numerical}


def judge_no_autograd(expected, obs):
    problems = []
    for function in ("batchnorm_backward", "batchnorm_backward_alt"):
        problems += all_grad_problems(f"{function} under torch.inference_mode()", obs[function], obs["numerical"],
                                      expected)
    return verdict(problems)


def describe(value):
    """(shape, dtype name) of a tensor, else its type's name."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), str(value.dtype).removeprefix("torch.")
    return type(value).__name__


def probe_shapes(ns, inputs):
    found = {}
    for function in ("batchnorm_backward", "batchnorm_backward_alt"):
        found[function] = [describe(g) for g in ns.read(run_backward(ns, inputs, function))]
    return found


def expect_shapes(inputs):
    dtype = str(inputs["x"].dtype).removeprefix("torch.")
    return [(tuple(inputs[name].shape), dtype) for name in PARAMS]


def judge_shapes(expected, obs):
    problems = []
    for function, described in obs.items():
        for name, got, want in zip(PARAMS, described, expected):
            if got != want:
                shown = f"shape {got[0]} and dtype {got[1]}" if isinstance(got, tuple) else f"a {got}"
                problems.append(f"{function}: {GRAD_NAMES[name]} has {shown}, expected shape {want[0]} "
                                f"and dtype {want[1]}")
    return verdict(problems)


CHECKS = [
    dict(name="Forward output", probe=probe_forward,
         expect=lambda inputs: trusted_forward(inputs["x"], inputs["gamma"], inputs["beta"]),
         judge=judge_forward_output,
         hint="Normalise each column with its batch mean and its biased variance (divide by N, not N - 1), "
              "add eps inside the square root, then scale by gamma and add beta."),
    dict(name="Forward statistics", probe=probe_forward, expect=lambda inputs: (inputs["gamma"], inputs["beta"]),
         judge=judge_forward_statistics,
         hint="After normalisation every feature has mean 0 and standard deviation (almost) 1, so out's columns "
              "should have mean beta and spread |gamma|. Take statistics over dim 0, the batch."),
    dict(name="dbeta", probe=probe_staged("beta"), expect=expect_numerical, judge=judge_staged("beta"),
         hint="beta is added to every row of the output, so its gradient sums dout over the batch: shape (D,)."),
    dict(name="dgamma", probe=probe_staged("gamma"), expect=expect_numerical, judge=judge_staged("gamma"),
         hint="gamma multiplies x_hat, so its gradient sums dout * x_hat over the batch: shape (D,)."),
    dict(name="dx", probe=probe_staged("x"), expect=expect_numerical, judge=judge_staged("x"),
         hint="x reaches the output three ways: directly through x - mean, through the mean and through the "
              "variance. Go back one step at a time and add up the gradients where a value is used twice."),
    dict(name="Alternative backward", probe=probe_alt, expect=expect_numerical, judge=judge_alt,
         hint="Start from dx_hat = dout * gamma and use that each column of x_hat has mean 0 and (almost) unit "
              "variance: the mean and variance branches collapse into two sums over the batch, of dx_hat and of "
              "dx_hat * x_hat. dgamma and dbeta are as in the staged version."),
    dict(name="No autograd", probe=probe_no_autograd, expect=expect_numerical, judge=judge_no_autograd,
         hint="Compute every gradient with tensor arithmetic from what the cache holds: no .backward(), "
              "torch.autograd.grad or requires_grad. The checks call your functions inside "
              "torch.inference_mode()."),
    dict(name="Shapes and dtypes", probe=probe_shapes, expect=expect_shapes, judge=judge_shapes,
         hint="dx has x's shape, dgamma and dbeta have shape (D,) (sum over dim 0 without keepdim), and all three "
              "keep the input's dtype (no hard-coded float32 or float64)."),
]
