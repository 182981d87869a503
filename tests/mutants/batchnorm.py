"""Realistic wrong solutions of the BatchNorm exercise (for the tests and `make bench`), each made
from the reference by a few literal edits.

`expected_failures` is what the spec says the original battery gives (None where it says nothing:
those are still compared verdict for verdict with the original run in one process).
"""
from mutants import mutants_of

SOLUTION, Mutant = mutants_of("batchnorm")

TRAIN_NORM = "x_hat = (x - mean) / torch.sqrt(var + self.eps)"
MOVING = ("self.moving_mu = self.momentum * self.moving_mu + (1 - self.momentum) * mean",
          "self.moving_sigma = self.momentum * self.moving_sigma + (1 - self.momentum) * var")

MUTANTS = [
    Mutant("reference", (), frozenset()),
    Mutant("biased-variance", (("x.var(dim=0, keepdim=True)", "x.var(dim=0, keepdim=True, correction=0)"),
                               ("x.var(dim=(0, 2, 3), keepdim=True)", "x.var(dim=(0, 2, 3), keepdim=True, correction=0)")),
           frozenset({5, 6, 8})),
    Mutant("fc-mean-without-keepdim", (("mean = x.mean(dim=0, keepdim=True)", "mean = x.mean(dim=0)"),), frozenset()),
    Mutant("no-sqrt-in-training", ((TRAIN_NORM, "x_hat = (x - mean) / (var + self.eps)"),), frozenset({6})),
    Mutant("in-place-moving-updates", ((MOVING[0], "self.moving_mu.mul_(self.momentum).add_((1 - self.momentum) * mean)"),
                                       (MOVING[1], "self.moving_sigma.mul_(self.momentum).add_((1 - self.momentum) * var)")),
           frozenset({7, 8})),
    Mutant("gamma-plain-tensor", (("self.gamma = nn.Parameter(torch.ones(param_shape))",
                                   "self.gamma = torch.ones(param_shape)"),),
           frozenset({0})),
    Mutant("path-by-self-training", (("if not torch.is_grad_enabled():", "if not self.training:"),), frozenset({3})),
    Mutant("minus-beta", (("z = self.gamma * x_hat + self.beta", "z = self.gamma * x_hat - self.beta"),), frozenset()),
    Mutant("no-scale-and-shift", (("z = self.gamma * x_hat + self.beta", "z = x_hat"),), frozenset()),
    Mutant("writes-into-its-input", ((TRAIN_NORM, "x_hat = x.sub_(mean).div_(torch.sqrt(var + self.eps))"),), None),
    Mutant("double-output", (("return z", "return z.double()"),), None),
    Mutant("numpy-mean-logged", (("self._tmp_mean = mean", "self._tmp_mean = mean.detach().numpy()"),), None),
    Mutant("moving-sigma-std", ((MOVING[1], MOVING[1].replace("* var", "* var.sqrt()")),), None),
    # Wrong in ways the ten let through; each fails the hidden check named in HIDDEN_CATCHES.
    Mutant("gamma-requires-grad-tensor", (("self.gamma = nn.Parameter(torch.ones(param_shape))",
                                           "self.gamma = torch.ones(param_shape, requires_grad=True)"),
                                          ("self.beta = nn.Parameter(torch.zeros(param_shape))",
                                           "self.beta = torch.zeros(param_shape, requires_grad=True)")), frozenset()),
    Mutant("moving-sigma-starts-at-zero", (('register_buffer("moving_sigma", torch.ones(param_shape))',
                                            'register_buffer("moving_sigma", torch.zeros(param_shape))'),), frozenset()),
    Mutant("moving-averages-keep-graph", (("            with torch.no_grad():\n                self.moving_mu",
                                           "            if True:\n                self.moving_mu"),), frozenset()),
    Mutant("hard-coded-sizes", (("param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)",
                                 "param_shape = (1, 128) if len(shape) == 2 else (1, 16, 1, 1)"),), frozenset()),
    Mutant("detached-statistics", (("mean = x.mean(dim=(0, 2, 3), keepdim=True)", "mean = x.mean(dim=(0, 2, 3), keepdim=True).detach()"),
                                   ("mean = x.mean(dim=0, keepdim=True)", "mean = x.mean(dim=0, keepdim=True).detach()")), frozenset()),
    Mutant("updates-at-test-time", (("            self._tmp_x_hat_test = x_hat",
                                     "            self._tmp_x_hat_test = x_hat\n            self.moving_mu = "
                                     "self.momentum * self.moving_mu + (1 - self.momentum) * x.mean(dim=0)"),),
           frozenset()),
    Mutant("raises-in-init", (("self.momentum = momentum", "self.momentum = momentum\n        raise RuntimeError('boom')"),),
           frozenset(range(10))),
]

# For each hidden check, a wrong implementation (above) that it catches.
HIDDEN_CATCHES = {
    "registered_parameters": "gamma-requires-grad-tensor",
    "initial_values": "moving-sigma-starts-at-zero",
    "no_graph_in_moving_averages": "moving-averages-keep-graph",
    "random_scale_shift": "minus-beta",
    "unseen_inputs": "hard-coded-sizes",
    "moving_average_convergence": "moving-sigma-std",
    "output_statistics": "no-scale-and-shift",
    "gradients": "detached-statistics",
    "matches_torch_batchnorm": "moving-sigma-starts-at-zero",
    "test_path_keeps_moving_averages": "updates-at-test-time",
}

# The original skeleton completed correctly, other ways than the reference: every check passes.
HONEST = [
    Mutant("reference", (), frozenset()),
    Mutant("plain-tensors-and-detach", (
        ('self.register_buffer("moving_mu", torch.zeros(param_shape))', "self.moving_mu = torch.zeros(param_shape)"),
        ('self.register_buffer("moving_sigma", torch.ones(param_shape))', "self.moving_sigma = torch.ones(param_shape)"),
        ("            with torch.no_grad():\n                " + MOVING[0] + "\n                " + MOVING[1],
         "            self.moving_mu = self.momentum * self.moving_mu + (1 - self.momentum) * mean.detach()\n"
         "            self.moving_sigma = self.momentum * self.moving_sigma + (1 - self.momentum) * var.detach()")),
        frozenset()),
    Mutant("shape-as-list-and-fc-mean-without-keepdim", (
        ("param_shape = (1, shape[1]) if len(shape) == 2 else (1, shape[1], 1, 1)",
         "param_shape = [1, shape[1]] + [1] * (len(shape) - 2)"),
        ("torch.ones(param_shape))\n        self.beta", "torch.ones(*param_shape))\n        self.beta"),
        ("mean = x.mean(dim=0, keepdim=True)\n                var = x.var(dim=0, keepdim=True)",
         "mean = x.mean(0)\n                var = x.var(0)")), frozenset()),
    Mutant("variance-by-hand", (
        ("var = x.var(dim=(0, 2, 3), keepdim=True)",
         "n = x.shape[0] * x.shape[2] * x.shape[3]\n                var = ((x - mean) ** 2).sum(dim=(0, 2, 3), "
         "keepdim=True) / (n - 1)"),
        ("x_hat = (x - self.moving_mu) / torch.sqrt(self.moving_sigma + self.eps)",
         "x_hat = (x - self.moving_mu) * torch.rsqrt(self.moving_sigma + self.eps)")), frozenset()),
]
