"""Hidden checks of the batch normalization network assignment: mistakes the eight core checks let
through.

Never shipped to students. Same contract as checks.py (see selfcheck.py); points are zero unless
grader_config.py sets them (`Grading.hidden_points`). They judge only what students write, and a
correct implementation, however it is written, passes every one.
"""
import math

import torch
import torch.nn.functional as F

from gradekit.assignments.batchnorm_network.checks import EPS, MOMENTUM, load_data, numbers

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
# The summed loss: after train_model with its defaults, the mean binary cross-entropy on the training
# split, averaged over these torch seeds (seed 0 is the core check's). The reference gives 0.056 to
# 0.066 per seed (seeds 0-9), an averaged loss 0.24 to 0.33: it trains about 50 times too slowly. Each
# seed is a training run (about 70 ms), and every seed alone already decides with a wide margin.
LOSS_SEEDS = (1, 2)
MAX_TRAIN_LOSS = 0.15
PARAMETERS = ("bn1.gamma", "bn1.beta", "bn2.gamma", "bn2.beta", "fc1.weight", "fc2.weight")


def make_inputs():
    g = torch.Generator().manual_seed(20261123)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    data = load_data()
    inputs = {"data": data,
              "train_batches": [data["x_train"][i:i + 50].clone() for i in range(0, 150, 50)],
              "eval_batch": data["x_test"][:20].clone()}
    inputs["eval_single"] = [inputs["eval_batch"][i:i + 1].clone() for i in range(5)]
    inputs["eval_reversed"] = inputs["eval_batch"].flip(0)
    inputs["model_batch"] = (data["x_train"][:64].clone(), data["y_train"][:64].clone())
    # The layer's gradients: a batch, random gamma and beta (some negative), an upstream gradient.
    inputs["grad"] = {"x": randn(24, 6) * 2 + 1, "gamma": randn(6) * 2, "beta": randn(6), "upstream": randn(24, 6)}
    # A batch of two: two columns equal in both rows (variance 0), two nearly equal (variance
    # comparable to eps), two ordinary.
    pair = randn(2, 6) * 0.5
    pair[1, :2] = pair[0, :2]
    pair[1, 2] = pair[0, 2] + 0.01
    pair[1, 3] = pair[0, 3] - 0.03
    inputs["pair"] = {"x": pair, "gamma": randn(6) * 2, "beta": randn(6)}
    inputs["float64"] = {"train": randn(32, 7, dtype=torch.float64) * 3 + 1,
                         "eval": randn(16, 7, dtype=torch.float64) * 3 + 1}
    inputs["shape_batches"] = [randn(n, 5) * 2 - 1 for n in (8, 3, 16)]
    inputs["shape_eval"] = randn(4, 5)
    # Distinct rows: exactly batch_size rows, so a batch without repeats is all of them, in some
    # order, and with lr=0 every step's summed (or averaged) loss is the same.
    inputs["rows"] = {"x": randn(50, 30), "y": (torch.rand(50, 1, generator=g) > 0.5).float(),
                      "weight": randn(1, 30) * 0.5}
    return inputs


# ---- helpers ---------------------------------------------------------------------------------

def close(what, got, expected, **tolerance):
    """[] when close (equal shapes), else one problem."""
    if not isinstance(got, torch.Tensor):
        return [f"{what} is a {type(got).__name__}, not a tensor"]
    if tuple(got.shape) != tuple(expected.shape):
        return [f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"]
    try:
        if torch.allclose(got.to(expected.dtype), expected, **(tolerance or TOLERANCE)):
            return []
        if not torch.isfinite(got).all():
            return [f"{what} holds NaN or inf values"]
        return [f"{what} is off by up to {(got.to(expected.dtype) - expected).abs().max().item():.3g}"]
    except Exception as error:
        return [f"{what} cannot be compared ({type(error).__name__})"]


def verdict(problems):
    return not problems, "; ".join(problems[:3])


def reference(x, gamma, beta):
    """The layer's training forward: batch mean, biased variance, eps inside the square root."""
    mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    return gamma * (x - mean) / torch.sqrt(var + EPS) + beta, mean, var


def layer_with(ns, features, gamma, beta):
    """A fresh BatchNorm1d whose gamma and beta hold the given values."""
    bn = ns.BatchNorm1d(features)
    with torch.no_grad():
        bn.gamma.copy_(gamma)
        bn.beta.copy_(beta)
    return bn


def attribute(obj, dotted):
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


# ---- the summed loss -------------------------------------------------------------------------

def probe_summed_loss(ns, inputs):
    with ns.pipelined():
        d = inputs["data"]
        predictions = []
        for seed in LOSS_SEEDS:
            ns.torch.manual_seed(seed)
            model = ns.Model()
            ns.train_model(model, d["x_train"], d["y_train"])
            model.eval()
            with torch.no_grad():
                predictions.append(ns.read(model(d["x_train"])))
        return predictions


def judge_summed_loss(y_train, predictions):
    losses = []
    for seed, p in zip(LOSS_SEEDS, predictions):
        if not isinstance(p, torch.Tensor) or tuple(p.shape) != tuple(y_train.shape):
            return False, f"after training with torch seed {seed} the predictions have the wrong shape"
        p = p.double().nan_to_num(0.5).clamp(1e-7, 1 - 1e-7)
        losses.append(F.binary_cross_entropy(p, y_train.double()).item())
    mean = sum(losses) / len(losses)
    if mean <= MAX_TRAIN_LOSS:
        return True, ""
    return False, (f"after train_model with its defaults (torch seeds {', '.join(map(str, LOSS_SEEDS))}) the mean "
                   f"binary cross-entropy on the training split is {mean:.3f}, expected at most {MAX_TRAIN_LOSS}: "
                   f"training is too slow")


# ---- gradients -------------------------------------------------------------------------------

def probe_gradients(ns, inputs):
    with ns.pipelined():
        ns.torch.manual_seed(1)
        model = ns.Model()
        x, y = inputs["model_batch"]
        loss = ns.torch.nn.functional.binary_cross_entropy(model(x), ns.put(y), reduction="sum")
        loss.backward()
        model_grads = ns.read({name: {"shape": attribute(model, name).shape, "grad": attribute(model, name).grad}
                               for name in PARAMETERS})
        d = inputs["grad"]
        x = ns.put(d["x"].clone().requires_grad_(True))
        bn = layer_with(ns, d["x"].shape[1], d["gamma"], d["beta"])
        (bn(x) * d["upstream"]).sum().backward()  # backward(upstream), without sympy (see T04's hidden.py)
        layer_grads = ns.read({"x": x.grad, "gamma": bn.gamma.grad, "beta": bn.beta.grad})
    return {"model": {name: {**found, "shape": tuple(found["shape"])} for name, found in model_grads.items()},
            "layer": layer_grads}


def expect_gradients(inputs):
    d = inputs["grad"]
    x, gamma, beta = (d[k].clone().requires_grad_(True) for k in ("x", "gamma", "beta"))
    # backward(upstream) as a weighted sum: the same gradients, without importing sympy (see T04's hidden.py)
    (F.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS) * d["upstream"]).sum().backward()
    return {"x": x.grad, "gamma": gamma.grad, "beta": beta.grad}


def judge_gradients(expected, obs):
    problems = []
    for name, found in obs["model"].items():
        grad = found["grad"]
        if not isinstance(grad, torch.Tensor):
            problems.append(f"after one backward pass through Model, no gradient reached {name}")
        elif tuple(grad.shape) != found["shape"] or not torch.isfinite(grad).all() or not grad.abs().sum() > 0:
            problems.append(f"after one backward pass through Model, the gradient of {name} is zero or not finite")
    for name, want in expected.items():
        got = obs["layer"][name]
        if got is None:
            problems.append(f"BatchNorm1d: no gradient reached {name}")
        else:
            problems += close(f"BatchNorm1d: the gradient of {name} (vs autograd through F.batch_norm)", got, want)
    return verdict(problems)


# ---- a batch of two --------------------------------------------------------------------------

def probe_pair(ns, inputs):
    with ns.pipelined():
        d = inputs["pair"]
        bn = layer_with(ns, d["x"].shape[1], d["gamma"], d["beta"])
        out = bn(d["x"])
        return ns.read({"out": out, "running_mean": bn.running_mean, "running_var": bn.running_var})


def expect_pair(inputs):
    d = inputs["pair"]
    x = d["x"].double()
    out, mean, var = reference(x, d["gamma"].double(), d["beta"].double())
    return {"out": out, "running_mean": (1 - MOMENTUM) * mean, "running_var": (1 - MOMENTUM) * var}


def judge_pair(expected, obs):
    problems = close("the training output for a batch of 2", obs["out"], expected["out"])
    for name in ("running_mean", "running_var"):
        problems += close(f"{name} after one batch of 2 (from zeros, with the biased batch variance)", obs[name],
                          expected[name])
    return verdict(problems)


# ---- float64 inputs --------------------------------------------------------------------------

def probe_float64(ns, inputs):
    with ns.pipelined():
        d = inputs["float64"]
        bn = ns.BatchNorm1d(d["train"].shape[1])
        params = ns.read({"gamma": bn.gamma, "beta": bn.beta})
        train = ns.read(bn(d["train"]))
        bn.eval()
        running = ns.read({"running_mean": bn.running_mean, "running_var": bn.running_var})
        with torch.no_grad():
            evaluated = ns.read(bn(d["eval"]))
        return {"params": params, "train": train, "running": running, "eval": evaluated}


def judge_float64(inputs, obs):
    problems = []
    try:
        gamma, beta = obs["params"]["gamma"].double(), obs["params"]["beta"].double()
        rm, rv = obs["running"]["running_mean"].double(), obs["running"]["running_var"].double()
        wanted = {"train": reference(inputs["train"], gamma, beta)[0],
                  "eval": gamma * (inputs["eval"] - rm) / torch.sqrt(rv + EPS) + beta}
    except Exception as error:
        return False, f"the layer's gamma, beta and running statistics are unusable ({type(error).__name__})"
    for mode, want in wanted.items():
        got = obs[mode]
        if isinstance(got, torch.Tensor) and got.dtype != torch.float64:
            problems.append(f"a float64 input gives a {str(got.dtype).removeprefix('torch.')} output in {mode} mode")
        else:
            # Training normalises with float64 batch statistics; eval with running statistics that
            # may be float32 buffers, so only float32's precision is asked of it.
            tolerance = {"rtol": 1e-10, "atol": 1e-12} if mode == "train" else {"rtol": 1e-5, "atol": 1e-6}
            problems += close(f"the {mode}-mode output for a float64 input", got, want, **tolerance)
    return verdict(problems)


# ---- running statistics keep their shape -----------------------------------------------------

def probe_shapes(ns, inputs):
    features = inputs["shape_eval"].shape[1]
    seen = []
    with ns.pipelined():
        bn = ns.BatchNorm1d(features)

        def record(when):  # a shape is a value of its moment: read with the rest, at the end
            seen.append((when, {name: getattr(bn, name).shape for name in ("running_mean", "running_var")}))

        record("at the start")
        for batch in inputs["shape_batches"]:
            bn(batch)
            record(f"after a training batch of {len(batch)}")
        bn.eval()
        with torch.no_grad():
            bn(inputs["shape_eval"])
        record("after an eval-mode batch")
        shapes = ns.read([found for _, found in seen])
    return [(when, {name: tuple(shape) for name, shape in found.items()}) for (when, _), found in zip(seen, shapes)]


def judge_shapes(expected, seen):
    for when, shapes in seen:
        for name, shape in shapes.items():
            if shape != expected:
                return False, f"{name} has shape {shape} {when}, expected {expected}"
    return True, ""


# ---- distinct rows per batch -----------------------------------------------------------------

def probe_rows(ns, inputs):
    d = inputs["rows"]
    with ns.pipelined():
        linear = ns.torch.nn.Linear(d["x"].shape[1], 1)
        with torch.no_grad():
            linear.weight.copy_(d["weight"])
            linear.bias.zero_()
        model = ns.torch.nn.Sequential(linear, ns.torch.nn.Sigmoid())
        return ns.read(ns.train_model(model, d["x"], d["y"], steps=10, batch_size=len(d["x"]), lr=0.0))


def judge_rows(expected, losses):
    values = numbers(losses)
    if values is None or len(values) != 10 or not all(math.isfinite(v) for v in values):
        return False, "train_model(..., steps=10) did not return 10 finite losses"
    spread = max(values) - min(values)
    if spread <= 1e-4 * max(abs(v) for v in values):
        return True, ""
    return False, (f"with as many rows as batch_size and lr=0, every batch should hold each row once, so every loss "
                   f"should be the same; they vary by {spread:.3g}: rows are drawn with repeats")


# ---- eval-mode predictions do not depend on the batch ----------------------------------------

def probe_independent(ns, inputs):
    with ns.pipelined():
        ns.torch.manual_seed(0)
        model = ns.Model()
        for batch in inputs["train_batches"]:
            model(batch)
        model.eval()
        return {"batch": ns.read(model(inputs["eval_batch"])),
                "single": [ns.read(model(x)) for x in inputs["eval_single"]],
                "reversed": ns.read(model(inputs["eval_reversed"]))}


def judge_independent(expected, obs):
    batch = obs["batch"]
    if not isinstance(batch, torch.Tensor) or batch.dim() == 0 or len(batch) != expected:
        return False, "the eval-mode predictions have the wrong shape"
    problems = []
    for i, single in enumerate(obs["single"]):
        problems += close(f"the eval-mode prediction for sample {i} alone vs in a batch of {expected}", single,
                          batch[i:i + 1])
    problems += close("the eval-mode predictions for the batch in reverse order", obs["reversed"], batch.flip(0))
    return verdict(problems)


CHECKS = [
    dict(name="summed_loss", probe=probe_summed_loss, expect=lambda inputs: inputs["data"]["y_train"],
         judge=judge_summed_loss,
         hint="Sum the binary cross-entropy over the batch (reduction='sum'): the mean divides every step by the "
              "batch size, and 100 steps at lr=0.01 are then far too few."),
    dict(name="gradients", probe=probe_gradients, expect=expect_gradients, judge=judge_gradients,
         hint="Let autograd see the whole training forward: compute the batch mean and variance from x with "
              "gradients on, use gamma and beta themselves (not .data), and detach only the running statistics."),
    dict(name="batch_of_two", probe=probe_pair, expect=expect_pair, judge=judge_pair,
         hint="Keep eps inside the square root, sqrt(var + eps), and feed the running variance the same biased "
              "batch variance the layer normalises with."),
    dict(name="float64_inputs", probe=probe_float64, expect=lambda inputs: inputs["float64"], judge=judge_float64,
         hint="Let the input's dtype flow through: do not convert x to float32 (x.float()) inside the layer."),
    dict(name="running_stats_shape", probe=probe_shapes, expect=lambda inputs: (inputs["shape_eval"].shape[1],),
         judge=judge_shapes,
         hint="running_mean and running_var keep shape (num_features,): compute the batch statistics without "
              "keepdim=True (or reshape them) before updating."),
    dict(name="distinct_rows", probe=probe_rows, judge=judge_rows,
         hint="Take the first batch_size entries of torch.randperm(len(x_train), generator=g): torch.randint "
              "draws rows with repeats."),
    dict(name="eval_independent_of_batch", probe=probe_independent,
         expect=lambda inputs: len(inputs["eval_batch"]), judge=judge_independent,
         hint="Choose between batch and running statistics with self.training (what model.eval() sets), not with "
              "torch.is_grad_enabled() or the batch size."),
]
