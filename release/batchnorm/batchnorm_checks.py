"""The BatchNorm exercise's ten checks, verdict for verdict as in the original battery.

Shipped to students beside the notebook (as batchnorm_checks.py) and run by the autograder.
Each check is a probe (drives the student's class through `ns`, records what it saw), an
expectation (computed from the inputs alone) and a judgement (compares the two); see
selfcheck.py for the contract. Inputs follow the original: seed 0, then conv, then fc, then the
values checks 3, 7 and 8 set on the module, from one private generator. "Close" is torch.allclose
with its defaults; every check judges the FC and the conv module together. Each probe runs in
`ns.pipelined()`: the autograder sends the steps up to each read together.
"""
import torch

SEED = 0
CONV_SHAPE = (64, 16, 32, 32)
FC_SHAPE = (64, 128)
EPS = 1e-5
MOMENTUM = 0.9
LAYERS = ("fc", "conv")


def param_shape(x_shape):
    """Broadcastable parameter shape: (1, L) for FC, (1, C, 1, 1) for conv."""
    return (1, x_shape[1]) if len(x_shape) == 2 else (1, x_shape[1], 1, 1)


def batch_mean(x):
    # The original compares the FC mean without keepdim, so (1, L) and (L,) both pass.
    return x.mean(dim=0) if x.dim() == 2 else x.mean(dim=(0, 2, 3), keepdim=True)


def batch_var(x):
    return x.var(dim=0) if x.dim() == 2 else x.var(dim=(0, 2, 3), keepdim=True)


def normalised(x):
    return (x - batch_mean(x)) / torch.sqrt(batch_var(x) + EPS)


def make_inputs():
    g = torch.Generator().manual_seed(SEED)
    conv = torch.randn(*CONV_SHAPE, generator=g)
    fc = torch.randn(*FC_SHAPE, generator=g)
    inputs = {"fc": {"x": fc}, "conv": {"x": conv}}
    for layer in LAYERS:  # check 3
        shape = param_shape(inputs[layer]["x"].shape)
        inputs[layer]["test_mu"] = torch.randn(shape, generator=g)
        inputs[layer]["test_sigma"] = torch.rand(shape, generator=g) + 0.01
    for layer in LAYERS:  # check 7
        inputs[layer]["start_mu"] = torch.randn(param_shape(inputs[layer]["x"].shape), generator=g)
    for layer in LAYERS:  # check 8
        inputs[layer]["start_sigma"] = torch.rand(param_shape(inputs[layer]["x"].shape), generator=g) + 0.01
    return inputs


# ---- helpers ---------------------------------------------------------------------------------

def close(what, got, expected):
    """torch.allclose with its defaults, as the original; anything it rejects is a failure."""
    try:
        if torch.allclose(got, expected):
            return True, ""
        return False, f"{what} differs from the expected values"
    except Exception as error:  # wrong type, shape, dtype or device: the original fails too
        return False, f"{what} cannot be compared: {type(error).__name__}"


def all_of(results):
    failed = [why for ok, why in results if not ok]
    return not failed, "; ".join(failed)


def per_layer(function):
    return lambda inputs: {layer: function(inputs[layer]) for layer in LAYERS}


def training_forward(ns, d):
    """(module, output): a fresh module after one training forward on the layer's input. Checks
    4, 5, 6 and 9 each read what this forward left (ns.once: the autograder runs it once)."""
    bn = ns.BatchNorm(d["x"].shape)
    return bn, bn(d["x"])


def trained(ns, d, attribute):
    """A fresh module's `attribute` after one training forward on the layer's input."""
    bn, _ = ns.once(training_forward, d)
    return ns.read(getattr(bn, attribute))


# ---- the ten checks --------------------------------------------------------------------------

def probe_learnable(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            bn = ns.BatchNorm(inputs[layer]["x"].shape)
            obs[layer] = ns.read({"gamma": bn.gamma.requires_grad, "beta": bn.beta.requires_grad})
        return obs


def truthy(value):
    return type(value) in (bool, int, float) and bool(value)


def judge_learnable(expected, obs):
    return all_of([(truthy(obs[layer][p]), f"{layer}: {p}.requires_grad is False")
                   for layer in LAYERS for p in ("gamma", "beta")])


def probe_shapes(names):
    def probe(ns, inputs):
        obs = {}
        with ns.pipelined():
            for layer in LAYERS:
                bn = ns.BatchNorm(inputs[layer]["x"].shape)
                shapes = ns.read({name: getattr(bn, name).shape for name in names})
                obs[layer] = {name: tuple(shape) for name, shape in shapes.items()}
        return obs
    return probe


def judge_shapes(expected, obs):
    results = []
    for layer in LAYERS:
        for name, shape in obs[layer].items():
            results.append((shape == expected[layer], f"{layer}: {name} has shape {shape}, expected {expected[layer]}"))
    return all_of(results)


def probe_test_norm(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            d = inputs[layer]
            bn = ns.BatchNorm(d["x"].shape)
            bn.moving_mu = d["test_mu"]
            bn.moving_sigma = d["test_sigma"]
            with torch.no_grad():
                bn(d["x"])
            obs[layer] = ns.read(bn._tmp_x_hat_test)
        return obs


def judge_layers(what):
    def judge(expected, obs):
        return all_of([close(f"{layer}: {what}", obs[layer], expected[layer]) for layer in LAYERS])
    return judge


def probe_trained(attribute):
    def probe(ns, inputs):
        with ns.pipelined():
            return {layer: trained(ns, inputs[layer], attribute) for layer in LAYERS}
    return probe


def probe_moving(name, start):
    def probe(ns, inputs):
        obs = {}
        with ns.pipelined():
            for layer in LAYERS:
                d = inputs[layer]
                bn = ns.BatchNorm(d["x"].shape)
                setattr(bn, name, d[start])
                bn(d["x"])
                obs[layer] = ns.read(getattr(bn, "_tmp_" + name))
        return obs
    return probe


def probe_scale_shift(ns, inputs):
    with ns.pipelined():
        obs = {}
        for layer in LAYERS:
            bn, out = ns.once(training_forward, inputs[layer])
            obs[layer] = ns.read({"out": out, "gamma": bn.gamma, "beta": bn.beta, "x_hat": bn._tmp_x_hat_train})
        return obs


def judge_scale_shift(expected, obs):
    results = []
    for layer in LAYERS:
        o = obs[layer]
        shape = tuple(o["out"].shape)
        results.append((shape == expected[layer], f"{layer}: the output has shape {shape}, expected {expected[layer]}"))
        try:  # the module's own parameters, as the original compares
            own = o["gamma"] * o["x_hat"] + o["beta"]
        except Exception as error:
            results.append((False, f"{layer}: gamma * x_hat + beta cannot be computed ({type(error).__name__})"))
            continue
        results.append(close(f"{layer}: the output", o["out"], own))
    return all_of(results)


CHECKS = [
    dict(name="Learnable parameters set correctly", probe=probe_learnable, judge=judge_learnable,
         hint="gamma and beta must be learnable: wrap them in nn.Parameter so autograd and optimizers see them."),
    dict(name="Learnable parameter shapes correct", probe=probe_shapes(("gamma", "beta")),
         expect=per_layer(lambda d: param_shape(d["x"].shape)), judge=judge_shapes,
         hint="gamma and beta need a broadcastable shape: (1, L) for (N, L) inputs, (1, C, 1, 1) for (N, C, H, W)."),
    dict(name="Moving average shapes correct", probe=probe_shapes(("moving_mu", "moving_sigma")),
         expect=per_layer(lambda d: param_shape(d["x"].shape)), judge=judge_shapes,
         hint="moving_mu and moving_sigma take the same broadcastable shape as gamma and beta."),
    dict(name="Test time normalization", probe=probe_test_norm,
         expect=per_layer(lambda d: (d["x"] - d["test_mu"]) / torch.sqrt(d["test_sigma"] + EPS)),
         judge=judge_layers("_tmp_x_hat_test"),
         hint="With gradients disabled, normalise with the moving averages: (x - moving_mu) / sqrt(moving_sigma + eps)."),
    dict(name="Mean computation", probe=probe_trained("_tmp_mean"), expect=per_layer(lambda d: batch_mean(d["x"])),
         judge=judge_layers("_tmp_mean"),
         hint="Average over the batch dimension (FC) or over batch, height and width (conv, keepdim=True)."),
    dict(name="Variance computation", probe=probe_trained("_tmp_var"), expect=per_layer(lambda d: batch_var(d["x"])),
         judge=judge_layers("_tmp_var"),
         hint="Use the unbiased variance (torch.var's default) over the same dimensions as the mean."),
    dict(name="Train time normalization", probe=probe_trained("_tmp_x_hat_train"),
         expect=per_layer(lambda d: normalised(d["x"])), judge=judge_layers("_tmp_x_hat_train"),
         hint="Normalise with the batch statistics and take the square root: (x - mean) / sqrt(var + eps)."),
    dict(name="Train time mean moving average", probe=probe_moving("moving_mu", "start_mu"),
         expect=per_layer(lambda d: MOMENTUM * d["start_mu"] + (1 - MOMENTUM) * batch_mean(d["x"])),
         judge=judge_layers("_tmp_moving_mu"),
         hint="new = momentum * old + (1 - momentum) * batch mean, as a new tensor (no in-place update)."),
    dict(name="Train time variance moving average", probe=probe_moving("moving_sigma", "start_sigma"),
         expect=per_layer(lambda d: MOMENTUM * d["start_sigma"] + (1 - MOMENTUM) * batch_var(d["x"])),
         judge=judge_layers("_tmp_moving_sigma"),
         hint="new = momentum * old + (1 - momentum) * batch variance (unbiased), as a new tensor."),
    dict(name="Final scale and shift", probe=probe_scale_shift, expect=per_layer(lambda d: tuple(d["x"].shape)),
         judge=judge_scale_shift, hint="The output is gamma * x_hat + beta, with the same shape as the input."),
]
