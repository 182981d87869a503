"""Realistic wrong solutions of the BatchNorm1d parity assignment (for the tests and `make bench`),
each made from the reference by a few literal edits.

`expected_failures` is the set of core checks the spec says (or its check table implies) the
mutant fails; None where it says nothing: those are still compared verdict for verdict with the
checks run in one process.
"""
from mutants import mutants_of

SOLUTION, Mutant = mutants_of("batchnorm1d_parity")

# The reference's lines that the mutants edit.
GAMMA = "self.gamma = torch.ones(dim, requires_grad=True)"
BETA = "self.beta = torch.zeros(dim, requires_grad=True)"
MEAN = "mean = x.mean(dim=0)"
VAR = "var = x.var(dim=0, correction=0)"
NORMALISE = "x_hat = (x - mean) / torch.sqrt(var + self.eps)"
OUTPUT = "self.out = self.gamma * x_hat + self.beta"
NO_GRAD = "            with torch.no_grad():\n"
UPDATE_MEAN = "self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean"
UPDATE_VAR = "self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * n / (n - 1)"
PARAMETERS = "return [self.gamma, self.beta]"
TRAINING_BRANCH = "        if self.training:\n            mean = "
UPDATE_BRANCH = "        if self.training:\n            n = "

MUTANTS = [
    Mutant("reference", (), frozenset()),
    # The spec's examples: the hand-written class many courses use normalises with the unbiased
    # variance (torch.var's default) and stores keepdim=True statistics.
    Mutant("unbiased-variance-in-normalisation", ((VAR, "var = x.var(dim=0)"),
                                                   (" * var * n / (n - 1)", " * var")), frozenset({1, 5})),
    Mutant("keepdim-buffers", ((MEAN, "mean = x.mean(dim=0, keepdim=True)"),
                               (VAR, "var = x.var(dim=0, keepdim=True, correction=0)")), frozenset({2, 3, 7})),
    Mutant("keepdim-and-unbiased", ((MEAN, "mean = x.mean(dim=0, keepdim=True)"),
                                    (VAR, "var = x.var(dim=0, keepdim=True)"),
                                    (" * var * n / (n - 1)", " * var")), frozenset({1, 2, 3, 5, 7})),
    Mutant("biased-running-variance", ((" * var * n / (n - 1)", " * var"),), frozenset({3, 4})),
    Mutant("old-momentum-convention", ((UPDATE_MEAN, "self.running_mean = self.momentum * self.running_mean + "
                                                     "(1 - self.momentum) * mean"),
                                       (UPDATE_VAR, "self.running_var = self.momentum * self.running_var + "
                                                    "(1 - self.momentum) * var * n / (n - 1)")),
           frozenset({2, 3, 4, 7})),
    Mutant("buffers-keep-graph", ((NO_GRAD + "                " + UPDATE_MEAN + "\n                " + UPDATE_VAR,
                                   "            " + UPDATE_MEAN + "\n            " + UPDATE_VAR),), frozenset({6})),
    Mutant("detached-statistics", ((MEAN, MEAN + ".detach()"), (VAR, VAR + ".detach()")), frozenset({5})),
    Mutant("parameters-without-grad", ((GAMMA, "self.gamma = torch.ones(dim)"), (BETA, "self.beta = torch.zeros(dim)")),
           frozenset({0, 5})),
    Mutant("parameters-missing-beta", ((PARAMETERS, "return [self.gamma]"),), frozenset({0})),
    Mutant("updates-in-eval-mode", ((UPDATE_BRANCH, "        if True:\n            n = "),), frozenset({4})),
    Mutant("eps-folded-into-variance", ((VAR, VAR + " + self.eps"),
                                        (NORMALISE, "x_hat = (x - mean) / torch.sqrt(var)")), frozenset({7})),
    Mutant("no-sqrt", ((NORMALISE, "x_hat = (x - mean) / (var + self.eps)"),), frozenset({1, 4, 5})),
    Mutant("minus-beta", ((OUTPUT, "self.out = self.gamma * x_hat - self.beta"),), frozenset({5})),
    Mutant("writes-into-its-input", ((NORMALISE, "x_hat = x.sub_(mean).div_(torch.sqrt(var + self.eps))"),), None),
    Mutant("double-output", (("return self.out", "return self.out.double()"),), None),
    Mutant("raises-in-init", (("self.training = True", "self.training = True\n        raise RuntimeError('boom')"),),
           frozenset(range(8))),
    # Wrong in ways the eight let through; each fails the hidden check named in HIDDEN_CATCHES.
    Mutant("hard-coded-batch-size", ((" * var * n / (n - 1)", " * var * 32 / 31"),), frozenset()),
    Mutant("keepdim-then-squeeze", ((MEAN, "mean = x.mean(dim=0, keepdim=True)"),
                                    (VAR, "var = x.var(dim=0, keepdim=True, correction=0)"),
                                    (UPDATE_MEAN, f"self.running_mean = ({UPDATE_MEAN.split(' = ', 1)[1]}).squeeze()"),
                                    (UPDATE_VAR, f"self.running_var = ({UPDATE_VAR.split(' = ', 1)[1]}).squeeze()")),
           frozenset()),
    Mutant("lerp-updates", ((UPDATE_MEAN, "self.running_mean = torch.lerp(self.running_mean, mean, self.momentum)"),
                            (UPDATE_VAR, "self.running_var = torch.lerp(self.running_var, var * n / (n - 1), "
                                         "self.momentum)")), frozenset()),
    Mutant("zero-momentum-means-default", ((UPDATE_BRANCH, "        if self.training:\n            momentum = "
                                                           "self.momentum or 0.1\n            n = "),
                                           (UPDATE_MEAN, UPDATE_MEAN.replace("self.momentum", "momentum")),
                                           (UPDATE_VAR, UPDATE_VAR.replace("self.momentum", "momentum"))),
           frozenset()),
    Mutant("one-pass-variance", ((VAR, "var = (x * x).mean(dim=0) - mean * mean"),), frozenset()),
    Mutant("grad-mode-decides", ((TRAINING_BRANCH, "        if torch.is_grad_enabled():\n            mean = "),
                                 (UPDATE_BRANCH, "        if torch.is_grad_enabled():\n            n = ")),
           frozenset()),
    Mutant("eval-affine-cached-once", ((
        "        " + NORMALISE + "\n        " + OUTPUT,
        "        if self.training:\n"
        "            " + NORMALISE + "\n"
        "            " + OUTPUT + "\n"
        "        else:  # fold the normalisation into one affine map, computed once\n"
        "            if not hasattr(self, 'eval_scale'):\n"
        "                self.eval_scale = self.gamma / torch.sqrt(var + self.eps)\n"
        "                self.eval_shift = self.beta - mean * self.eval_scale\n"
        "            self.out = x * self.eval_scale + self.eval_shift"),), frozenset()),
]

# For each hidden check, a wrong implementation (above) that it catches and the core checks do not.
HIDDEN_CATCHES = {
    "batches_of_two": "hard-coded-batch-size",
    "single_feature": "keepdim-then-squeeze",
    "float64": "lerp-updates",
    "momentum_limits": "zero-momentum-means-default",
    "long_run": "one-pass-variance",
    "eval_rows_independent": "grad-mode-decides",
    "training_under_no_grad": "grad-mode-decides",
    "mode_toggled": "eval-affine-cached-once",
}

# Correct completions written other ways than the reference: every check, core and hidden, passes.
HONEST = [
    Mutant("reference", (), frozenset()),
    Mutant("in-place-updates-and-torch-var", (
        (NO_GRAD + "                " + UPDATE_MEAN + "\n                " + UPDATE_VAR,
         NO_GRAD + "                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)\n"
         "                self.running_var.mul_(1 - self.momentum).add_(self.momentum * x.var(dim=0))"),), frozenset()),
    Mutant("keepdim-squeeze0-and-hand-variance", (
        (MEAN, "mean = x.mean(0, keepdim=True)"),
        (VAR, "var = ((x - mean) ** 2).mean(0, keepdim=True)"),
        (UPDATE_MEAN, f"self.running_mean = ({UPDATE_MEAN.split(' = ', 1)[1]}).squeeze(0)"),
        (UPDATE_VAR, f"self.running_var = ({UPDATE_VAR.split(' = ', 1)[1]}).squeeze(0)")), frozenset()),
    Mutant("detach-rsqrt-and-tuple", (
        (NO_GRAD + "                " + UPDATE_MEAN + "\n                " + UPDATE_VAR,
         "            " + UPDATE_MEAN.replace("* mean", "* mean.detach()") + "\n            "
         + UPDATE_VAR.replace("* var", "* var.detach()")),
        (NORMALISE, "x_hat = (x - mean) * torch.rsqrt(var + self.eps)"),
        (PARAMETERS, "return (self.gamma, self.beta)")), frozenset()),
]
