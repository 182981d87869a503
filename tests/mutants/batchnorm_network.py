"""Realistic wrong solutions of the batch normalization network assignment, each made from the
reference by a few literal edits.

`expected_failures` is the set of core checks the spec's pass conditions fail (None where the
verdict is only compared with the checks run in one process, as the original battery would).
"""
from mutants import mutants_of

SOLUTION, Mutant = mutants_of("batchnorm_network")

GAMMA = "self.gamma = nn.Parameter(torch.ones(num_features))"
BUFFERS = ('self.register_buffer("running_mean", torch.zeros(num_features))',
           'self.register_buffer("running_var", torch.zeros(num_features))')
VAR = "var = x.var(dim=0, unbiased=False)"
UPDATES = ("self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)",
           "self.running_var.mul_(self.momentum).add_((1 - self.momentum) * var)")
UPDATE_BLOCK = "            with torch.no_grad():\n                " + UPDATES[0] + "\n                " + UPDATES[1]
EVAL_BRANCH = "        else:\n            mean, var = self.running_mean, self.running_var\n"
NORMALISE = "out = self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta"
LOSS = 'loss = F.binary_cross_entropy(model(x_train[rows]), y_train[rows], reduction="sum")'
ROWS = "rows = torch.randperm(len(x_train), generator=g)[:batch_size]"
STEP = "parameter -= lr * parameter.grad"
DEEP_BLOCK = "            x = torch.relu(bn(linear(x)))\n            self.stds.append(x.std().item())"
ANSWERS = ("answer_running_mean = 1.02\nanswer_running_var = 0.49",)

MUTANTS = [
    Mutant("reference", (), frozenset()),
    # ---- the layer: registration and initial values (check 0)
    Mutant("gamma-plain-tensor", ((GAMMA, "self.gamma = torch.ones(num_features, requires_grad=True)"),),
           frozenset({0})),
    Mutant("running-var-starts-at-one", ((BUFFERS[1], BUFFERS[1].replace("zeros", "ones")),), frozenset({0})),
    Mutant("running-stats-as-frozen-parameters", (
        (BUFFERS[0], "self.running_mean = nn.Parameter(torch.zeros(num_features), requires_grad=False)"),
        (BUFFERS[1], "self.running_var = nn.Parameter(torch.zeros(num_features), requires_grad=False)")),
        frozenset({0, 5})),  # train_model then meets parameters without gradients
    # ---- the training forward (check 1)
    Mutant("unbiased-variance", ((VAR, "var = x.var(dim=0)"),), frozenset({1})),
    Mutant("minus-beta", ((NORMALISE, NORMALISE.replace("+ self.beta", "- self.beta")),), frozenset({1})),
    Mutant("writes-into-its-input", ((NORMALISE, "out = self.gamma * x.sub_(mean).div_(torch.sqrt(var + self.eps))"
                                                " + self.beta"),), None),
    # ---- the running statistics (check 2)
    Mutant("pytorch-momentum-convention", (
        (UPDATES[0], "self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)"),
        (UPDATES[1], "self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)")), frozenset({2})),
    Mutant("running-stats-keep-graph", (
        (UPDATE_BLOCK, "            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mean\n"
                       "            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var"),),
        frozenset({2})),
    # ---- eval mode (check 3)
    Mutant("eval-uses-batch-statistics", (("        if self.training:\n", "        if True:\n"),), None),
    Mutant("eval-also-updates", (
        (EVAL_BRANCH, "        else:\n            with torch.no_grad():\n"
                      "                self.running_mean.mul_(self.momentum).add_((1 - self.momentum) * x.mean(dim=0))\n"
                      "                self.running_var.mul_(self.momentum).add_((1 - self.momentum) * "
                      "x.var(dim=0, unbiased=False))\n"
                      "            mean, var = self.running_mean, self.running_var\n"),), frozenset({3})),
    # ---- the model (check 4)
    Mutant("fc1-with-bias", (("self.fc1 = nn.Linear(30, 20, bias=False)", "self.fc1 = nn.Linear(30, 20)"),),
           frozenset({4})),
    Mutant("torch-batchnorm-in-model", (("self.bn1 = BatchNorm1d(20)", "self.bn1 = nn.BatchNorm1d(20)"),
                                        ("self.bn2 = BatchNorm1d(10)", "self.bn2 = nn.BatchNorm1d(10)")),
           frozenset({4})),
    Mutant("no-sigmoid", (("out = torch.sigmoid(self.fc3(out))", "out = self.fc3(out)"),), frozenset({4, 5})),
    # ---- training (check 5)
    Mutant("gradient-ascent", ((STEP, "parameter += lr * parameter.grad"),), frozenset({5})),
    Mutant("losses-as-tensors-with-graph", (("losses.append(loss.item())", "losses.append(loss)"),), None),
    # ---- the deep network (check 6)
    Mutant("stds-before-relu", ((DEEP_BLOCK, "            x = bn(linear(x))\n            self.stds.append(x.std().item())\n"
                                             "            x = torch.relu(x)"),), frozenset({6})),
    Mutant("deep-without-batchnorm", ((DEEP_BLOCK, DEEP_BLOCK.replace("bn(linear(x))", "linear(x)")),),
           frozenset({6})),
    # ---- the answers (check 7)
    Mutant("answers-in-this-layers-convention", ((ANSWERS[0], "answer_running_mean = 1.82\nanswer_running_var = 0.09"),),
           frozenset({7})),
    Mutant("raises-in-init", (("self.num_features = num_features", "raise RuntimeError('boom')"),),
           frozenset(range(7))),
    # ---- wrong in ways the eight let through; each fails the hidden check named in HIDDEN_CATCHES
    Mutant("averaged-loss", ((LOSS, LOSS.replace('reduction="sum"', 'reduction="mean"')),), frozenset()),
    Mutant("statistics-without-gradient", (
        ("            mean = x.mean(dim=0)\n            " + VAR,
         "            with torch.no_grad():\n                mean = x.mean(dim=0)\n                " + VAR),),
        frozenset()),
    Mutant("eps-outside-sqrt", ((NORMALISE, NORMALISE.replace("torch.sqrt(var + self.eps)",
                                                              "(torch.sqrt(var) + self.eps)")),), frozenset()),
    Mutant("no-eps", ((NORMALISE, NORMALISE.replace("torch.sqrt(var + self.eps)", "torch.sqrt(var)")),), frozenset()),
    Mutant("running-var-unbiased", ((UPDATES[1], UPDATES[1].replace("* var)", "* x.var(dim=0))")),), frozenset()),
    Mutant("casts-to-float32", (("    def forward(self, x):\n        if self.training:",
                                 "    def forward(self, x):\n        x = x.float()\n        if self.training:"),),
           frozenset()),
    Mutant("variance-keepdim", ((VAR, "var = x.var(dim=0, unbiased=False, keepdim=True)"),
                                (UPDATES[1], "self.running_var = self.momentum * self.running_var + "
                                             "(1 - self.momentum) * var")), frozenset()),
    Mutant("rows-with-repeats", ((ROWS, "rows = torch.randint(len(x_train), (batch_size,), generator=g)"),),
           frozenset()),
    Mutant("mode-by-grad-enabled", (("        if self.training:\n", "        if torch.is_grad_enabled():\n"),),
           frozenset()),
]

# For each hidden check, a wrong implementation (above) that it catches and the core checks pass.
HIDDEN_CATCHES = {
    "summed_loss": "averaged-loss",
    "gradients": "statistics-without-gradient",
    "batch_of_two": "eps-outside-sqrt",
    "float64_inputs": "casts-to-float32",
    "running_stats_shape": "variance-keepdim",
    "distinct_rows": "rows-with-repeats",
    "eval_independent_of_batch": "mode-by-grad-enabled",
}
# Other mutants a hidden check catches too (each also passes the core checks).
ALSO_CAUGHT = {"batch_of_two": ("no-eps", "running-var-unbiased")}

# Correct implementations written other ways than the reference: every check passes.
HONEST = [
    Mutant("reference", (), frozenset()),
    Mutant("reassigned-buffers-variance-by-hand", (
        (VAR, "var = ((x - mean) ** 2).mean(dim=0)"),
        (UPDATE_BLOCK, "            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * "
                       "mean.detach()\n"
                       "            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * "
                       "var.detach()"),
        (NORMALISE, "out = (x - mean) * torch.rsqrt(var + self.eps) * self.gamma + self.beta")), frozenset()),
    Mutant("optimizer-loss-module-and-functional-layers", (
        (LOSS, "loss = nn.BCELoss(reduction='sum')(model(x_train[rows]), y_train[rows])"),
        ("        model.zero_grad()\n        loss.backward()\n        with torch.no_grad():\n"
         "            for parameter in model.parameters():\n                " + STEP + "\n",
         "        optimizer = torch.optim.SGD(model.parameters(), lr=lr)\n        optimizer.zero_grad()\n"
         "        loss.backward()\n        optimizer.step()\n"),
        ("out = torch.tanh(self.bn1(self.fc1(x)))\n        out = torch.tanh(self.bn2(self.fc2(out)))",
         "out = F.tanh(self.bn1(self.fc1(x)))\n        out = F.tanh(self.bn2(self.fc2(out)))"),
        ("nn.init.kaiming_normal_(linear.weight)", "nn.init.kaiming_normal_(linear.weight, mode='fan_in', "
                                                   "nonlinearity='relu')"),
        ("self.stds.append(x.std().item())", "self.stds.append(float(x.detach().std()))"),
        (ANSWERS[0], "answer_running_mean = 0.7 * (0.7 * 0 + 0.3 * 2) + 0.3 * 2\n"
                     "answer_running_var = 0.7 * (0.7 * 1 + 0.3 * 0) + 0.3 * 0")), frozenset()),
    Mutant("stats-with-torch-var-mean", (
        ("            mean = x.mean(dim=0)\n            " + VAR,
         "            var, mean = torch.var_mean(x, dim=0, correction=0)"),
        (NORMALISE, "x_hat = (x - mean) / (var + self.eps).sqrt()\n        out = self.gamma * x_hat + self.beta")),
        frozenset()),
]
