"""Hidden checks of the BatchNorm exercise: the mistakes the original ten let through.

Never shipped to students. Same contract as checks.py (see selfcheck.py); points are zero
unless grader_config.py sets them (`Grading.hidden_points`), so the core score stays the
original's. They judge only what students write (the eight parts), never what the given code
decides: a correct completion of the original skeleton passes every one. Every probe is
pipelined (see checks.py): identity is asked of the student's process, with `ns.same`.
"""
import torch
import torch.nn.functional as F

from gradekit.assignments.batchnorm.checks import EPS, MOMENTUM, param_shape

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
LAYERS = ("fc", "conv")
UNSEEN_SHAPES = [((2, 3), torch.float32), ((5, 7), torch.float64), ((2, 1, 3, 5), torch.float32),
                 ((3, 4, 6, 2), torch.float64), ((7, 2, 1, 9), torch.float32)]
# Batches of 512 rows keep the reference's moving variance well inside the tolerance (its noise
# is about +-1.5 at momentum 0.9; with 32 rows it is +-6). After 60 batches the starting values
# weigh 0.9^60 = 0.002: the reference's moving_mu is 0.21 from the mean, its moving_sigma 1.6 from
# the variance (0.11 and 1.6 after 100 batches, which cost two thirds more).
CONVERGENCE = {"batches": 60, "shape": (512, 4), "mean": 42.0, "std": 10.0, "mu_within": 1.0, "sigma_within": 5.0}
PARAMETERS = ("gamma", "beta")
# The optimizer step of registered_parameters is written out: making a torch.optim optimizer
# imports torch._dynamo and sympy into the student's process (about a second, and 70 MB).
LEARNING_RATE = 0.1
MOVING = ("moving_mu", "moving_sigma")


def make_inputs():
    g = torch.Generator().manual_seed(20261122)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    inputs = {"fc": randn(16, 6) * 3 + 1, "conv": randn(8, 3, 5, 4) * 2 - 1, "unseen": [],
              "convergence": [randn(*CONVERGENCE["shape"]) * CONVERGENCE["std"] + CONVERGENCE["mean"]
                              for _ in range(CONVERGENCE["batches"])]}
    for layer in LAYERS:
        shape = param_shape(inputs[layer].shape)
        inputs[f"{layer}_gamma"] = randn(*shape) * 2  # some negative: |gamma| matters
        inputs[f"{layer}_beta"] = randn(*shape) * 3
        inputs[f"{layer}_weights"] = randn(*inputs[layer].shape)
        inputs[f"{layer}_upstream"] = randn(*inputs[layer].shape, dtype=torch.float64)
        inputs[f"{layer}_train"] = [randn(*inputs[layer].shape) * 1.5 + 0.5 for _ in range(5)]
    for shape, dtype in UNSEEN_SHAPES:
        p = param_shape(shape)
        inputs["unseen"].append({"x": randn(*shape, dtype=dtype) * 4 + 2, "mu": randn(*p, dtype=dtype),
                                 "sigma": randn(*p, dtype=dtype).abs() + 0.5})
    return inputs


# ---- helpers ---------------------------------------------------------------------------------

def close(what, got, expected, **tolerance):
    """[] when close, else one problem (the largest difference, or why it cannot be compared)."""
    try:
        if torch.allclose(got, expected, **(tolerance or TOLERANCE)):
            return []
        return [f"{what} is off by up to {(got.to(expected.dtype) - expected).abs().max().item():.3g}"]
    except Exception as error:
        return [f"{what} cannot be compared ({type(error).__name__})"]


def verdict(problems):
    return not problems, "; ".join(problems[:3])


def reference(x, gamma=None, beta=None):
    """The exercise's training forward: unbiased variance, square root, + beta."""
    dims = (0,) if x.dim() == 2 else (0, 2, 3)
    mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + EPS)
    return x_hat if gamma is None else gamma * x_hat + beta


def with_gamma_beta(ns, inputs, layer):
    """A fresh module whose gamma and beta hold the inputs' values, whatever they are."""
    bn = ns.BatchNorm(inputs[layer].shape)
    with torch.no_grad():
        for name in PARAMETERS:
            getattr(bn, name).copy_(inputs[f"{layer}_{name}"])
    return bn


# ---- the checks ------------------------------------------------------------------------------

def probe_registered(ns, inputs):
    obs = {}
    for layer in LAYERS:
        with ns.pipelined():
            bn = ns.BatchNorm(inputs[layer].shape)
            params = [p for p in bn.parameters()]  # list() would ask len() first: a round trip more
            found = ns.read({"registered": {name: [ns.same(p, getattr(bn, name)) for p in params]
                                            for name in PARAMETERS + MOVING},
                             "before": {name: getattr(bn, name) for name in PARAMETERS}})
            if params:
                (bn(inputs[layer]) * inputs[f"{layer}_weights"]).sum().backward()
                no_grads = ns.read([ns.same(p.grad, None) for p in params])
                with torch.no_grad():  # one step of plain SGD, as torch.optim.SGD takes it
                    for p, no_grad in zip(params, no_grads):
                        if not no_grad:
                            p.add_(p.grad, alpha=-LEARNING_RATE)
            after = ns.read({name: getattr(bn, name) for name in PARAMETERS})
        obs[layer] = {"registered": {name: any(hits) for name, hits in found["registered"].items()},
                      "before": found["before"], "after": after}
    return obs


def judge_registered(expected, obs):
    problems = []
    for layer in LAYERS:
        o = obs[layer]
        problems += [f"{layer}: {n} is not in module.parameters()" for n in PARAMETERS if not o["registered"][n]]
        problems += [f"{layer}: {n} is a parameter but must not be learnable" for n in MOVING if o["registered"][n]]
        problems += [f"{layer}: an optimizer step did not change {n}" for n in PARAMETERS
                     if torch.equal(o["before"][n], o["after"][n])]
    return verdict(problems)


def probe_initial_values(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            bn = ns.BatchNorm(inputs[layer].shape)
            obs[layer] = ns.read({name: getattr(bn, name) for name in PARAMETERS + MOVING})
            with torch.no_grad():
                obs[layer]["test_output"] = ns.read(bn(inputs[layer]))
        return obs


def judge_initial_values(expected, obs):
    problems = []
    for layer in LAYERS:
        for name, fill in (("gamma", 1.0), ("beta", 0.0), ("moving_mu", 0.0), ("moving_sigma", 1.0)):
            problems += close(f"{layer}: initial {name} (should be all {fill:g}, as in PyTorch)",
                              obs[layer][name], torch.full(expected[layer], fill))
        out = obs[layer]["test_output"]
        if not torch.isfinite(out).all() or out.abs().max() > 1e3:
            problems.append(f"{layer}: the test path of an untrained module gives extreme values "
                            f"(up to {out.abs().max().item():.3g})")
    return verdict(problems)


def probe_no_graph(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            bn = ns.BatchNorm(inputs[layer].shape)
            for batch in inputs[f"{layer}_train"]:
                bn(batch.clone().requires_grad_(True))  # inside a network, activations carry gradients
            obs[layer] = ns.read({name: {"requires_grad": getattr(bn, name).requires_grad,
                                         "grad_fn": getattr(bn, name).grad_fn} for name in MOVING})
        return obs


def judge_no_graph(expected, obs):
    return verdict([f"{layer}: {name} carries autograd history after training steps (the graph, and memory, grow "
                    f"with every step)" for layer in LAYERS for name in MOVING
                    if obs[layer][name]["requires_grad"] is not False or obs[layer][name]["grad_fn"] is not None])


def scaled_output(ns, inputs, layer):
    """The training output of a module holding the inputs' gamma and beta: two checks read it."""
    return with_gamma_beta(ns, inputs, layer)(inputs[layer])


def probe_scale_shift(ns, inputs):
    with ns.pipelined():
        return {layer: ns.read(ns.once(scaled_output, inputs, layer)) for layer in LAYERS}


def expect_scale_shift(inputs):
    return {layer: reference(inputs[layer], inputs[f"{layer}_gamma"], inputs[f"{layer}_beta"]) for layer in LAYERS}


def judge_scale_shift(expected, obs):
    return verdict([p for layer in LAYERS
                    for p in close(f"{layer}: the output with random gamma and beta", obs[layer], expected[layer])])


def probe_unseen(ns, inputs):
    obs = []
    with ns.pipelined():
        for case in inputs["unseen"]:
            x = case["x"]
            bn = ns.BatchNorm(x.shape)
            shapes = ns.read({name: getattr(bn, name).shape for name in PARAMETERS + MOVING})
            bn.moving_mu, bn.moving_sigma = case["mu"].clone(), case["sigma"].clone()
            out = bn(x)
            train = ns.read({"out": out, "mean": bn._tmp_mean, "var": bn._tmp_var, "x_hat": bn._tmp_x_hat_train,
                             "moving_mu": bn._tmp_moving_mu, "moving_sigma": bn._tmp_moving_sigma})
            bn.moving_mu, bn.moving_sigma = case["mu"].clone(), case["sigma"].clone()
            with torch.no_grad():
                bn(x)
            obs.append({"shapes": {name: tuple(shape) for name, shape in shapes.items()}, "train": train,
                        "x_hat_test": ns.read(bn._tmp_x_hat_test)})
    return obs


def expect_unseen(inputs):
    cases = []
    for case in inputs["unseen"]:
        x, mu, sigma = case["x"], case["mu"], case["sigma"]
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True)
        cases.append({"label": f"input {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}",
                      "shape": tuple(x.shape), "param_shape": param_shape(x.shape),
                      "train": {"mean": mean, "var": var, "x_hat": reference(x), "out": reference(x, 1.0, 0.0),
                                "moving_mu": MOMENTUM * mu + (1 - MOMENTUM) * mean,
                                "moving_sigma": MOMENTUM * sigma + (1 - MOMENTUM) * var},
                      "x_hat_test": (x - mu) / torch.sqrt(sigma + EPS)})
    return cases


def judge_unseen(expected, obs):
    problems = []
    for want, got in zip(expected, obs):
        label = want["label"]
        problems += [f"{label}: {n} has shape {s}, expected {want['param_shape']}"
                     for n, s in got["shapes"].items() if s != want["param_shape"]]
        if tuple(got["train"]["out"].shape) != want["shape"]:
            problems.append(f"{label}: the output has shape {tuple(got['train']['out'].shape)}")
        pairs = [(f"training {k}", got["train"][k], v) for k, v in want["train"].items()]
        for what, value, reference_value in pairs + [("x_hat (test)", got["x_hat_test"], want["x_hat_test"])]:
            try:
                value = value.to(reference_value.dtype).expand_as(reference_value)  # broadcastable forms are fine
            except Exception:
                pass
            problems += close(f"{label}: {what}", value, reference_value)
    return verdict(problems)


def probe_convergence(ns, inputs):
    with ns.pipelined():
        bn = ns.BatchNorm(inputs["convergence"][0].shape)
        for batch in inputs["convergence"]:
            bn(batch)
        return ns.read({name: getattr(bn, name) for name in MOVING})


def judge_convergence(expected, obs):
    c = CONVERGENCE
    problems = []
    mu_error = (obs["moving_mu"].double() - c["mean"]).abs().max().item()
    sigma_error = (obs["moving_sigma"].double() - c["std"] ** 2).abs().max().item()
    if not mu_error <= c["mu_within"]:
        problems.append(f"after {c['batches']} batches from N({c['mean']:g}, {c['std']:g}^2) moving_mu is "
                        f"{mu_error:.3g} from {c['mean']:g} (allowed {c['mu_within']:g})")
    if not sigma_error <= c["sigma_within"]:
        problems.append(f"after {c['batches']} batches moving_sigma is {sigma_error:.3g} from "
                        f"{c['std'] ** 2:g} (allowed {c['sigma_within']:g}; it holds a variance)")
    return verdict(problems)


def judge_output_statistics(expected, obs):
    """Per feature, the training output has mean beta and unbiased standard deviation |gamma|
    (x_hat is divided by the unbiased variance, so its unbiased std is 1 up to eps)."""
    problems = []
    for layer in LAYERS:
        out, (gamma, beta) = obs[layer], expected[layer]
        dims = (0,) if out.dim() == 2 else (0, 2, 3)
        problems += close(f"{layer}: per-feature mean of the output (should be beta)",
                          out.mean(dim=dims, keepdim=True), beta, rtol=1e-3, atol=1e-4)
        problems += close(f"{layer}: per-feature std of the output (should be |gamma|)",
                          out.std(dim=dims, keepdim=True), gamma.abs(), rtol=1e-3, atol=1e-4)
    return verdict(problems)


def probe_gradients(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            x = ns.put(inputs[layer].double().requires_grad_(True))
            bn = with_gamma_beta(ns, inputs, layer)
            # backward(upstream), written as the weighted sum that gives the same gradients: a
            # gradient argument imports sympy, 0.4 s in every student's process (see the zygote).
            (bn(x) * inputs[f"{layer}_upstream"]).sum().backward()
            obs[layer] = ns.read({"x": x.grad, "gamma": bn.gamma.grad, "beta": bn.beta.grad})
        return obs


def expect_gradients(inputs):
    expected = {}
    for layer in LAYERS:
        x = inputs[layer].double().requires_grad_(True)
        gamma = inputs[f"{layer}_gamma"].double().requires_grad_(True)
        beta = inputs[f"{layer}_beta"].double().requires_grad_(True)
        # The upstream gradient as a weight: the same gradients, bit for bit, as backward(upstream),
        # whose gradient argument would import sympy into the grader (0.4 s, through torch.fx).
        (reference(x, gamma, beta) * inputs[f"{layer}_upstream"]).sum().backward()
        expected[layer] = {"x": x.grad, "gamma": gamma.grad, "beta": beta.grad}
    return expected


def judge_gradients(expected, obs):
    problems = []
    for layer in LAYERS:
        for name, want in expected[layer].items():
            got = obs[layer][name]
            if got is None:
                problems.append(f"{layer}: no gradient reached {name}")
            else:
                problems += close(f"{layer}: the gradient of {name}", got.double(), want)
    return verdict(problems)


def probe_matches_torch(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            bn = ns.BatchNorm(inputs[layer].shape)
            for batch in inputs[f"{layer}_train"]:
                bn(batch)
            with torch.no_grad():
                obs[layer] = ns.read(bn(inputs[layer]))
        return obs


def expect_matches_torch(inputs):
    expected = {}
    for layer in LAYERS:
        features = inputs[layer].shape[1]
        # PyTorch's momentum weights the new batch: ours is 1 - momentum. Its running_var is unbiased too.
        mean, var = torch.zeros(features), torch.ones(features)
        for batch in inputs[f"{layer}_train"]:
            F.batch_norm(batch, mean, var, training=True, momentum=1 - MOMENTUM, eps=EPS)
        module = torch.nn.BatchNorm1d(features) if layer == "fc" else torch.nn.BatchNorm2d(features)
        module.eval()
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)
        with torch.no_grad():
            expected[layer] = (type(module).__name__, module(inputs[layer]))
    return expected


def judge_matches_torch(expected, obs):
    return verdict([p for layer in LAYERS for p in close(
        f"{layer}: the test output after 5 training steps vs torch.nn.{expected[layer][0]}",
        obs[layer], expected[layer][1])])


def probe_test_path(ns, inputs):
    obs = {}
    with ns.pipelined():
        for layer in LAYERS:
            p = param_shape(inputs[layer].shape)
            bn = ns.BatchNorm(inputs[layer].shape)
            bn.moving_mu, bn.moving_sigma = torch.full(p, 0.5), torch.full(p, 2.0)
            mu, sigma = bn.moving_mu, bn.moving_sigma
            with torch.no_grad():
                bn(inputs[layer])
            obs[layer] = ns.read({"same": [ns.same(bn.moving_mu, mu), ns.same(bn.moving_sigma, sigma)],
                                  "moving_mu": bn.moving_mu, "moving_sigma": bn.moving_sigma})
            obs[layer]["same"] = all(obs[layer]["same"])
    return obs


def judge_test_path(expected, obs):
    problems = []
    for layer in LAYERS:
        o, p = obs[layer], expected[layer]
        if not o["same"] or not (torch.equal(o["moving_mu"], torch.full(p, 0.5))
                                 and torch.equal(o["moving_sigma"], torch.full(p, 2.0))):
            problems.append(f"{layer}: the test path changed the moving averages")
    return verdict(problems)


def param_shapes(inputs):
    return {layer: param_shape(inputs[layer].shape) for layer in LAYERS}


CHECKS = [
    dict(name="registered_parameters", probe=probe_registered, judge=judge_registered,
         hint="Make gamma and beta nn.Parameter attributes so module.parameters() and optimizers see them; keep "
              "the moving averages as buffers (register_buffer), not parameters."),
    dict(name="initial_values", probe=probe_initial_values, expect=param_shapes, judge=judge_initial_values,
         hint="Start like PyTorch: gamma ones, beta zeros, moving_mu zeros, moving_sigma ones. A zero moving "
              "variance makes an untrained module divide by sqrt(eps)."),
    dict(name="no_graph_in_moving_averages", probe=probe_no_graph, judge=judge_no_graph,
         hint="Update the moving averages inside `with torch.no_grad():` (or from detached statistics); otherwise "
              "each step keeps the previous step's graph alive."),
    dict(name="random_scale_shift", probe=probe_scale_shift, expect=expect_scale_shift, judge=judge_scale_shift,
         hint="The output is gamma * x_hat + beta: check the sign of beta and that both are applied."),
    dict(name="unseen_inputs", probe=probe_unseen, expect=expect_unseen, judge=judge_unseen,
         hint="Derive every size from `shape` and the input (no 64, 128 or 16 in the code), and let the input's "
              "dtype flow through."),
    dict(name="moving_average_convergence", probe=probe_convergence, judge=judge_convergence,
         hint="new = momentum * old + (1 - momentum) * batch statistic, every training step; moving_sigma tracks "
              "the variance, not the standard deviation."),
    dict(name="output_statistics", probe=probe_scale_shift,
         expect=lambda inputs: {layer: (inputs[f"{layer}_gamma"], inputs[f"{layer}_beta"]) for layer in LAYERS},
         judge=judge_output_statistics,
         hint="After scale and shift each feature should have mean beta and spread |gamma|."),
    dict(name="gradients", probe=probe_gradients, expect=expect_gradients, judge=judge_gradients,
         hint="Let autograd see the whole computation: do not detach the batch mean or variance in training."),
    dict(name="matches_torch_batchnorm", probe=probe_matches_torch, expect=expect_matches_torch,
         judge=judge_matches_torch,
         hint="With PyTorch's initial values and momentum converted (ours = 1 - theirs), the test path should agree "
              "with torch.nn.BatchNorm1d/2d in eval mode."),
    dict(name="test_path_keeps_moving_averages", probe=probe_test_path, expect=param_shapes, judge=judge_test_path,
         hint="At test time only read the moving averages: never update or replace them."),
]
