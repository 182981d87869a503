"""Hidden checks beyond the original ten: the mistakes the ten let through.

Same split as ten_checks.py: probes run in the sandbox and record, judgements run in the grader
and compare with values they compute from inputs made here. Their points are set in
grader_config.py (`Grading.extra_points`), zero by default, so the ten-check score stays the
original's. Inputs come from a private generator, so they never touch the global RNG.
"""
import torch
import torch.nn.functional as F

from gradekit.assignments.batchnorm.ten_checks import EPS, MOMENTUM, param_shape

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
UNSEEN_SHAPES = [((2, 3), torch.float32), ((5, 7), torch.float64), ((2, 1, 3, 5), torch.float32),
                 ((3, 4, 6, 2), torch.float64), ((7, 2, 1, 9), torch.float32)]
# Batches of 512 rows keep the reference's moving variance well inside the tolerance (its noise
# is about +-1.5 after 100 batches at momentum 0.9; with 32 rows it is +-6).
CONVERGENCE = {"batches": 100, "shape": (512, 4), "mean": 42.0, "std": 10.0, "mu_within": 1.0, "sigma_within": 5.0}


def warm_up():
    """Run once in the sandbox's zygote before any fork: the first optimizer step imports a lot."""
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    weight.sum().backward()
    optimizer.step()


def make_inputs():
    g = torch.Generator().manual_seed(20261122)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    inputs = {"fc": randn(16, 6) * 3 + 1, "conv": randn(8, 3, 5, 4) * 2 - 1, "unseen": [],
              "convergence": [randn(*CONVERGENCE["shape"]) * CONVERGENCE["std"] + CONVERGENCE["mean"]
                              for _ in range(CONVERGENCE["batches"])]}
    for layer in ("fc", "conv"):
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


def _copy(t):
    return t.detach().clone() if isinstance(t, torch.Tensor) else t


def _set(bn, name, value):
    """Give a parameter a value whatever it is (Parameter, buffer, plain tensor)."""
    with torch.no_grad():
        getattr(bn, name).copy_(value)


def _close(what, got, expected, **tolerance):
    try:
        if torch.allclose(got, expected, **(tolerance or TOLERANCE)):
            return []
        diff = (got.to(expected.dtype) - expected).abs().max().item()
        return [f"{what} is off by up to {diff:.3g}"]
    except Exception as error:
        return [f"{what} cannot be compared ({type(error).__name__})"]


def _verdict(problems):
    return (not problems), "; ".join(problems[:3])


def _reference(x, gamma=None, beta=None):
    """The exercise's training forward, computed here: unbiased variance, square root, + beta."""
    dims = (0,) if x.dim() == 2 else (0, 2, 3)
    mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + EPS)
    return x_hat if gamma is None else gamma * x_hat + beta


# ---- the checks ----------------------------------------------------------------------------

def probe_registered(BatchNorm, inputs):
    obs = {}
    for layer in ("fc", "conv"):
        bn = BatchNorm(inputs[layer].shape)
        ids = {id(p) for p in bn.parameters()}
        flags = {name: id(getattr(bn, name)) in ids for name in ("gamma", "beta", "moving_mu", "moving_sigma")}
        before = {name: _copy(getattr(bn, name)) for name in ("gamma", "beta")}
        optimizer = torch.optim.SGD(bn.parameters(), lr=0.1) if ids else None
        (bn(inputs[layer]) * inputs[f"{layer}_weights"]).sum().backward()
        if optimizer:
            optimizer.step()
        moved = {name: not torch.equal(before[name], getattr(bn, name).detach()) for name in ("gamma", "beta")}
        obs[layer] = {"parameter": flags, "moved": moved}
    return obs


def judge_registered(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        o = obs[layer]
        problems += [f"{layer}: {n} is not in module.parameters()" for n in ("gamma", "beta") if not o["parameter"][n]]
        problems += [f"{layer}: {n} is a parameter but must not be learnable" for n in ("moving_mu", "moving_sigma")
                     if o["parameter"][n]]
        problems += [f"{layer}: an optimizer step did not change {n}" for n in ("gamma", "beta") if not o["moved"][n]]
    return _verdict(problems)


def probe_initial_values(BatchNorm, inputs):
    obs = {}
    for layer in ("fc", "conv"):
        bn = BatchNorm(inputs[layer].shape)
        values = {name: _copy(getattr(bn, name)) for name in ("gamma", "beta", "moving_mu", "moving_sigma")}
        with torch.no_grad():
            values["test_output"] = _copy(bn(inputs[layer]))
        obs[layer] = values
    return obs


def judge_initial_values(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        shape = param_shape(inputs[layer].shape)
        for name, fill in (("gamma", 1.0), ("beta", 0.0), ("moving_mu", 0.0), ("moving_sigma", 1.0)):
            problems += _close(f"{layer}: initial {name} (should be all {fill:g}, as in PyTorch)",
                               obs[layer][name], torch.full(shape, fill))
        out = obs[layer]["test_output"]
        if not torch.isfinite(out).all() or out.abs().max() > 1e3:
            problems.append(f"{layer}: the test path of an untrained module gives extreme values "
                            f"(up to {out.abs().max().item():.3g})")
    return _verdict(problems)


def probe_no_graph(BatchNorm, inputs):
    obs = {}
    for layer in ("fc", "conv"):
        bn = BatchNorm(inputs[layer].shape)
        steps = []
        for batch in inputs[f"{layer}_train"]:
            bn(batch.clone().requires_grad_(True))  # inside a network, activations carry gradients
            steps.append({name: {"requires_grad": bool(getattr(bn, name).requires_grad),
                                 "graph_depth": _graph_depth(getattr(bn, name).grad_fn)}
                          for name in ("moving_mu", "moving_sigma")})
        obs[layer] = steps
    return obs


def _graph_depth(fn, limit=200):
    depth = 0
    while fn is not None and depth < limit:
        depth += 1
        fn = next((f for f, _ in fn.next_functions if f is not None), None)
    return depth


def judge_no_graph(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        last = obs[layer][-1]
        for name in ("moving_mu", "moving_sigma"):
            if last[name]["requires_grad"] or last[name]["graph_depth"]:
                depths = [step[name]["graph_depth"] for step in obs[layer]]
                problems.append(f"{layer}: {name} carries autograd history after training steps "
                                f"(graph depth {depths[0]} -> {depths[-1]} over {len(depths)} steps: memory grows)")
    return _verdict(problems)


def _with_random_gamma_beta(BatchNorm, inputs, layer):
    bn = BatchNorm(inputs[layer].shape)
    _set(bn, "gamma", inputs[f"{layer}_gamma"])
    _set(bn, "beta", inputs[f"{layer}_beta"])
    return bn


def probe_scale_shift(BatchNorm, inputs):
    return {layer: _copy(_with_random_gamma_beta(BatchNorm, inputs, layer)(inputs[layer])) for layer in ("fc", "conv")}


def judge_scale_shift(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        expected = _reference(inputs[layer], inputs[f"{layer}_gamma"], inputs[f"{layer}_beta"])
        problems += _close(f"{layer}: output with random gamma and beta", obs[layer], expected)
    return _verdict(problems)


def probe_unseen(BatchNorm, inputs):
    obs = []
    for case in inputs["unseen"]:
        x = case["x"]
        bn = BatchNorm(x.shape)
        shapes = {name: tuple(getattr(bn, name).shape) for name in ("gamma", "beta", "moving_mu", "moving_sigma")}
        bn.moving_mu, bn.moving_sigma = case["mu"].clone(), case["sigma"].clone()
        out = bn(x)
        train = {"out": _copy(out), "mean": _copy(bn._tmp_mean), "var": _copy(bn._tmp_var),
                 "x_hat": _copy(bn._tmp_x_hat_train), "moving_mu": _copy(bn._tmp_moving_mu),
                 "moving_sigma": _copy(bn._tmp_moving_sigma)}
        bn.moving_mu, bn.moving_sigma = case["mu"].clone(), case["sigma"].clone()
        with torch.no_grad():
            bn(x)
        obs.append({"shapes": shapes, "train": train, "x_hat_test": _copy(bn._tmp_x_hat_test)})
    return obs


def judge_unseen(inputs, obs):
    problems = []
    for case, o in zip(inputs["unseen"], obs):
        x = case["x"]
        label = f"input {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
        dims = (0,) if x.dim() == 2 else (0, 2, 3)
        mean, var = x.mean(dim=dims, keepdim=True), x.var(dim=dims, keepdim=True)
        p = param_shape(x.shape)
        problems += [f"{label}: {n} has shape {s}, expected {p}" for n, s in o["shapes"].items() if tuple(s) != p]
        t = o["train"]
        if tuple(t["out"].shape) != tuple(x.shape):
            problems.append(f"{label}: output shape {tuple(t['out'].shape)}")
        checks = [("batch mean", t["mean"], mean), ("batch variance", t["var"], var),
                  ("x_hat (training)", t["x_hat"], _reference(x)), ("output", t["out"], _reference(x, 1.0, 0.0)),
                  ("moving_mu", t["moving_mu"], MOMENTUM * case["mu"] + (1 - MOMENTUM) * mean),
                  ("moving_sigma", t["moving_sigma"], MOMENTUM * case["sigma"] + (1 - MOMENTUM) * var),
                  ("x_hat (test)", o["x_hat_test"], (x - case["mu"]) / torch.sqrt(case["sigma"] + EPS))]
        for what, got, expected in checks:
            try:
                got = got.to(expected.dtype).expand_as(expected)  # broadcastable forms are fine here
            except Exception:
                pass
            problems += _close(f"{label}: {what}", got, expected)
    return _verdict(problems)


def probe_convergence(BatchNorm, inputs):
    bn = BatchNorm(inputs["convergence"][0].shape)
    for batch in inputs["convergence"]:
        bn(batch)
    return {"moving_mu": _copy(bn.moving_mu), "moving_sigma": _copy(bn.moving_sigma)}


def judge_convergence(inputs, obs):
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
    return _verdict(problems)


def probe_output_statistics(BatchNorm, inputs):
    return probe_scale_shift(BatchNorm, inputs)


def judge_output_statistics(inputs, obs):
    """Per feature, the training output has mean beta and unbiased standard deviation |gamma|
    (x_hat is divided by the unbiased variance, so its unbiased std is 1 up to eps)."""
    problems = []
    for layer in ("fc", "conv"):
        out = obs[layer]
        dims = (0,) if out.dim() == 2 else (0, 2, 3)
        gamma, beta = inputs[f"{layer}_gamma"], inputs[f"{layer}_beta"]
        problems += _close(f"{layer}: per-feature mean of the output (should be beta)",
                           out.mean(dim=dims, keepdim=True), beta, rtol=1e-3, atol=1e-4)
        problems += _close(f"{layer}: per-feature std of the output (should be |gamma|)",
                           out.std(dim=dims, keepdim=True), gamma.abs(), rtol=1e-3, atol=1e-4)
    return _verdict(problems)


def probe_gradients(BatchNorm, inputs):
    obs = {}
    for layer in ("fc", "conv"):
        x = inputs[layer].double().requires_grad_(True)
        bn = _with_random_gamma_beta(BatchNorm, inputs, layer)
        bn(x).backward(inputs[f"{layer}_upstream"])
        obs[layer] = {"x": _copy(x.grad), "gamma": _copy(bn.gamma.grad), "beta": _copy(bn.beta.grad)}
    return obs


def judge_gradients(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        x = inputs[layer].double().requires_grad_(True)
        gamma = inputs[f"{layer}_gamma"].double().requires_grad_(True)
        beta = inputs[f"{layer}_beta"].double().requires_grad_(True)
        _reference(x, gamma, beta).backward(inputs[f"{layer}_upstream"])
        for name, expected in (("x", x.grad), ("gamma", gamma.grad), ("beta", beta.grad)):
            got = obs[layer][name]
            if got is None:
                problems.append(f"{layer}: no gradient reached {name}")
            else:
                problems += _close(f"{layer}: gradient of {name}", got.double(), expected)
    return _verdict(problems)


def probe_matches_torch(BatchNorm, inputs):
    obs = {}
    for layer in ("fc", "conv"):
        bn = BatchNorm(inputs[layer].shape)
        for batch in inputs[f"{layer}_train"]:
            bn(batch)
        with torch.no_grad():
            obs[layer] = _copy(bn(inputs[layer]))
    return obs


def judge_matches_torch(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        features = inputs[layer].shape[1]
        # PyTorch's momentum weights the new batch: ours is 1 - momentum. Its running_var is unbiased too.
        mean, var = torch.zeros(features), torch.ones(features)
        for batch in inputs[f"{layer}_train"]:
            F.batch_norm(batch, mean, var, training=True, momentum=1 - MOMENTUM, eps=EPS)
        reference = torch.nn.BatchNorm1d(features) if layer == "fc" else torch.nn.BatchNorm2d(features)
        reference.eval()
        reference.running_mean.copy_(mean)
        reference.running_var.copy_(var)
        with torch.no_grad():
            expected = reference(inputs[layer])
        problems += _close(f"{layer}: test output after 5 training steps vs torch.nn.{type(reference).__name__}",
                           obs[layer], expected)
    return _verdict(problems)


def probe_test_path_and_errors(BatchNorm, inputs):
    obs = {}
    for layer in ("fc", "conv"):
        bn = BatchNorm(inputs[layer].shape)
        mu, sigma = torch.full(param_shape(inputs[layer].shape), 0.5), torch.full(param_shape(inputs[layer].shape), 2.0)
        bn.moving_mu, bn.moving_sigma = mu, sigma
        with torch.no_grad():
            bn(inputs[layer])
        obs[layer] = {"same_objects": bn.moving_mu is mu and bn.moving_sigma is sigma,
                      "moving_mu": _copy(bn.moving_mu), "moving_sigma": _copy(bn.moving_sigma)}
    obs["errors"] = {}
    attempts = {"BatchNorm((4, 5, 6))": lambda: BatchNorm((4, 5, 6)),
                "BatchNorm((4,))": lambda: BatchNorm((4,)),
                "FC module given a 4-D input": lambda: BatchNorm(inputs["fc"].shape)(inputs["conv"]),
                "conv module given a 2-D input": lambda: BatchNorm(inputs["conv"].shape)(inputs["fc"])}
    for label, attempt in attempts.items():
        try:
            attempt()
            obs["errors"][label] = "no error"
        except ValueError:
            obs["errors"][label] = "ValueError"
        except Exception as error:
            obs["errors"][label] = type(error).__name__
    return obs


def judge_test_path_and_errors(inputs, obs):
    problems = []
    for layer in ("fc", "conv"):
        o = obs[layer]
        p = param_shape(inputs[layer].shape)
        if not o["same_objects"] or not (torch.equal(o["moving_mu"], torch.full(p, 0.5))
                                         and torch.equal(o["moving_sigma"], torch.full(p, 2.0))):
            problems.append(f"{layer}: the test path changed the moving averages")
    problems += [f"{label} raised {raised}, expected ValueError" for label, raised in obs["errors"].items()
                 if raised != "ValueError"]
    return _verdict(problems)


CHECKS = [
    ("registered_parameters", probe_registered, judge_registered),
    ("initial_values", probe_initial_values, judge_initial_values),
    ("no_graph_in_moving_averages", probe_no_graph, judge_no_graph),
    ("random_scale_shift", probe_scale_shift, judge_scale_shift),
    ("unseen_inputs", probe_unseen, judge_unseen),
    ("moving_average_convergence", probe_convergence, judge_convergence),
    ("output_statistics", probe_output_statistics, judge_output_statistics),
    ("gradients", probe_gradients, judge_gradients),
    ("matches_torch_batchnorm", probe_matches_torch, judge_matches_torch),
    ("test_path_and_errors", probe_test_path_and_errors, judge_test_path_and_errors),
]

HINTS = {
    "registered_parameters": "Make gamma and beta nn.Parameter attributes so module.parameters() and optimizers "
                             "see them; keep the moving averages as buffers (register_buffer), not parameters.",
    "initial_values": "Start like PyTorch: gamma ones, beta zeros, moving_mu zeros, moving_sigma ones. A zero "
                      "moving variance makes an untrained module divide by sqrt(eps).",
    "no_graph_in_moving_averages": "Update the moving averages inside `with torch.no_grad():` (or from detached "
                                   "statistics); otherwise each step keeps the previous step's graph alive.",
    "random_scale_shift": "The output is gamma * x_hat + beta: check the sign of beta and that both are applied.",
    "unseen_inputs": "Derive every size from `shape` and the input (no 64, 128 or 16 in the code), and let the "
                     "input's dtype flow through.",
    "moving_average_convergence": "new = momentum * old + (1 - momentum) * batch statistic, every training step; "
                                  "moving_sigma tracks the variance, not the standard deviation.",
    "output_statistics": "After scale and shift each feature should have mean beta and spread |gamma|.",
    "gradients": "Let autograd see the whole computation: do not detach the batch mean or variance in training.",
    "matches_torch_batchnorm": "With PyTorch's initial values and momentum converted (ours = 1 - theirs), the "
                               "test path should agree with torch.nn.BatchNorm1d/2d in eval mode.",
    "test_path_and_errors": "At test time only read the moving averages; raise ValueError for shapes of length "
                            "other than 2 or 4 and for inputs of another rank.",
}


def assert_all(BatchNorm):
    """What nbgrader's hidden test cell runs (in the student's kernel): raise if any check fails."""
    inputs, failed = make_inputs(), []
    for name, probe, judge in CHECKS:
        try:
            ok, why = judge(inputs, probe(BatchNorm, inputs))
        except Exception as error:
            ok, why = False, f"raised {type(error).__name__}: {error}"
        if not ok:
            failed.append(f"{name}: {why}")
    assert not failed, "hidden checks failed:\n" + "\n".join(failed)
