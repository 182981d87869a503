"""Realistic wrong solutions of the batch normalization backward pass (for the tests), each made
from the reference by a few literal edits.

`expected_failures` is the set of core checks the spec's conditions make each one fail (None
where only the verdict-for-verdict comparison with a run in one process applies). The mutants
named in HIDDEN_CATCHES pass all eight core checks and fail the hidden check they are named for.
"""
from mutants import mutants_of

SOLUTION, Mutant = mutants_of("batchnorm_backward")

BIASED_VARIANCE = "var = sq.sum(dim=0) / N  # 4. biased variance"
STD = "std = torch.sqrt(var + eps)  # 5. standard deviation"
SCALE_SHIFT = "out = gamma * x_hat + beta  # 8. scale and shift"
STAGED_DBETA = "dbeta = dout.sum(dim=0)  # 8. out = gamma * x_hat + beta"
STAGED_DGAMMA = "dgamma = (dout * x_hat).sum(dim=0)\n    dx_hat = dout * gamma"
STAGED_DX = "dx = dxmu + dmean / N  # 1. mean = sum(x) / N"
STAGED_DVAR = "dvar = 0.5 * dstd / std  # 5. std = sqrt(var + eps)"
STAGED_BODY = SOLUTION[SOLUTION.index("    x_hat, xmu, std, inv_std, gamma = cache\n"):
                       SOLUTION.index(STAGED_DX) + len(STAGED_DX)]
ALT_DX = "dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)"
ALT_BODY = SOLUTION[SOLUTION.index("    x_hat, _, _, inv_std, gamma = cache\n"):SOLUTION.index(ALT_DX) + len(ALT_DX)]
CACHE = "cache = (x_hat, xmu, std, inv_std, gamma)"

AUTOGRAD_BODY = """    x, beta, eps = cache[5:]
    gamma = cache[4]
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        gamma = gamma.detach().requires_grad_(True)
        beta = beta.detach().requires_grad_(True)
        out, _ = batchnorm_forward(x, gamma, beta, eps)
        dx, dgamma, dbeta = torch.autograd.grad(out, (x, gamma, beta), dout)"""

MUTANTS = [
    Mutant("reference", (), frozenset()),
    # The forward pass.
    Mutant("unbiased-variance", ((BIASED_VARIANCE, "var = x.var(dim=0)  # 4. variance"),),
           frozenset({0, 1, 3, 4, 5, 6})),
    Mutant("eps-forgotten", ((STD, "std = torch.sqrt(var)  # 5. standard deviation"),), frozenset({0, 3, 4, 5, 6})),
    Mutant("minus-beta", ((SCALE_SHIFT, "out = gamma * x_hat - beta  # 8. scale and shift"),),
           frozenset({0, 1, 2, 5, 6})),
    Mutant("forward-raises", (("N = x.shape[0]", "N = x.shape[2]"),), frozenset(range(8))),
    # The staged backward pass.
    Mutant("dbeta-summed-over-features", ((STAGED_DBETA, "dbeta = dout.sum(dim=1)"),), frozenset({2, 6, 7})),
    Mutant("dgamma-keepdim", ((STAGED_DGAMMA, STAGED_DGAMMA.replace("sum(dim=0)", "sum(dim=0, keepdim=True)")),),
           frozenset({3, 6, 7})),
    Mutant("mean-path-forgotten", ((STAGED_DX, "dx = dxmu"),), frozenset({4, 6})),
    Mutant("square-derivative-without-2", (("dxmu = dxmu + 2 * xmu * dsq", "dxmu = dxmu + xmu * dsq"),),
           frozenset({4, 6})),
    # A float32 buffer (torch.zeros' default dtype): dx is rounded to float32, error 1.6e-8 here.
    Mutant("float32-dx-buffer", ((STAGED_DX, "dx = torch.zeros(dout.shape)\n    dx[:] = dxmu + dmean / N"),),
           frozenset({4, 6, 7})),
    Mutant("autograd-in-backward", ((CACHE, "cache = (x_hat, xmu, std, inv_std, gamma, x, beta, eps)"),
                                    (STAGED_BODY, AUTOGRAD_BODY),
                                    ("x_hat, _, _, inv_std, gamma = cache", "x_hat, _, _, inv_std, gamma = cache[:5]")),
           frozenset({6})),
    # The closed form.
    Mutant("alt-without-gamma", ((ALT_DX, ALT_DX.replace("gamma * inv_std", "inv_std")),), frozenset({5, 6})),
    Mutant("alt-without-xhat-term", ((ALT_DX, ALT_DX.replace(" - x_hat * dgamma", "")),), frozenset({5, 6})),
    # Writes into the caller's dout (aliasing): the original battery's in-place semantics apply.
    Mutant("alt-scales-dout-in-place", ((ALT_DX, "dx_hat = dout\n    dx_hat *= gamma\n    dx = (inv_std / N) * "
                                                 "(N * dx_hat - gamma * dbeta - x_hat * gamma * dgamma)"),),
           None),
    # Wrong in ways the eight let through; each fails the hidden check named in HIDDEN_CATCHES.
    Mutant("dgamma-squeezed",
           ((STAGED_DGAMMA, STAGED_DGAMMA.replace("sum(dim=0)", "sum(dim=0, keepdim=True).squeeze()")),),
           frozenset()),
    Mutant("computes-in-float64", (("N = x.shape[0]", "x = x.double()\n    N = x.shape[0]"),), frozenset()),
    Mutant("variance-from-squares", ((BIASED_VARIANCE, "var = (x ** 2).sum(dim=0) / N - mean ** 2  # 4. variance"),),
           frozenset()),
    # A graph through sd = sqrt(var), then std = sqrt(sd ** 2 + eps): right wherever sd > 0.
    Mutant("staged-through-std-without-eps", ((STAGED_DVAR, "sd = torch.sqrt((xmu ** 2).mean(dim=0))\n"
                                                            "    dsd = dstd * sd / std  # std = sqrt(sd ** 2 + eps)\n"
                                                            "    dvar = 0.5 * dsd / sd"),),
           frozenset()),
    Mutant("hard-coded-batch-size", (("N = dout.shape[0]", "N = 4"),), frozenset()),
    Mutant("alt-repeats-staged", ((ALT_BODY, "    dx, dgamma, dbeta = batchnorm_backward(dout, cache)"),), frozenset()),
]

# For each hidden check, a wrong implementation (above) that it catches and the core checks miss.
HIDDEN_CATCHES = {
    "other_sizes": "dgamma-squeezed",
    "float32": "computes-in-float64",
    "large_offset": "variance-from-squares",
    "constant_feature": "staged-through-std-without-eps",
    "gradient_properties": "hard-coded-batch-size",
    "closed_form_faster": "alt-repeats-staged",
}
