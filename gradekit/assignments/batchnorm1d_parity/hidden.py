"""Hidden checks of the BatchNorm1d parity assignment: the disagreements with torch.nn.BatchNorm1d
that the eight core checks let through.

Never shipped to students. Same contract as checks.py (see selfcheck.py); points are zero unless
grader_config.py sets them (`Grading.hidden_points`), so the core score stays the spec's. Every
expectation is what torch.nn.BatchNorm1d does with the same inputs and the same sequence of
training/eval calls, computed once from the inputs. They judge only what students write: a correct
completion, however it is written, passes every one.
"""
import math

import torch

from gradekit.assignments.batchnorm1d_parity.checks import EPS, TOLERANCE

SEED = 20260517
BUFFERS = ("running_mean", "running_var")
LONG_RUN = {"steps": 100, "shape": (32, 8), "peak": 40.0, "std": 1.5}


def make_inputs():
    g = torch.Generator().manual_seed(SEED)

    def randn(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def pair(centre, spread):
        """Two rows per feature, at least 1 apart: a closer pair would make its normalised values
        (about -1 and 1) hang on the last digits of x - mean, for PyTorch too."""
        spread = spread.abs() + 0.5
        return torch.cat([centre - spread, centre + spread])

    inputs = {
        "batches_of_two": {"dim": 4, "train": [pair(randn(1, 4) * 2 + 0.5, randn(1, 4)) for _ in range(6)],
                           "eval": randn(8, 4) * 2},
        "single_feature": {"dim": 1, "train": [randn(16, 1) * 1.5 - 2 for _ in range(5)], "eval": randn(8, 1) - 2,
                           "w": randn(16, 1)},
        "float64": {"dim": 6, "train": [randn(24, 6, dtype=torch.float64) * 2.5 + 1.5 for _ in range(5)],
                    "eval": randn(10, 6, dtype=torch.float64) * 2.5, "w": randn(24, 6, dtype=torch.float64)},
        "momentum_limits": {"dim": 5, "train": [randn(16, 5) * 2 + 1 for _ in range(3)], "eval": randn(8, 5) * 2},
        "rows": {"dim": 6, "train": [randn(32, 6) * 3 - 1 for _ in range(4)], "eval": randn(12, 6) * 3},
        "no_grad": {"dim": 6, "train": [randn(16, 6) * 2 + 3 for _ in range(3)], "eval": randn(8, 6) * 2},
        "toggle": {"dim": 6, "train": [randn(16, 6) * 2 + 1 for _ in range(5)],
                   "eval": [randn(8, 6) * 2 for _ in range(3)]},
    }
    # The long run: the inputs' mean wanders up to LONG_RUN["peak"] and back, as a layer's
    # activations can during training; their spread stays put.
    steps, peak, std, dim = LONG_RUN["steps"], LONG_RUN["peak"], LONG_RUN["std"], LONG_RUN["shape"][1]
    inputs["long_run"] = {"dim": dim, "eval": randn(16, dim) * std,
                          "train": [randn(*LONG_RUN["shape"]) * std + peak * math.sin(math.pi * t / (steps - 1))
                                    for t in range(steps)]}
    return inputs


# ---- PyTorch's answers -----------------------------------------------------------------------

def torch_bn(dim, momentum=0.1, dtype=torch.float32):
    return torch.nn.BatchNorm1d(dim, eps=EPS, momentum=momentum, dtype=dtype)


def buffers(module):
    return {name: getattr(module, name).detach().clone() for name in BUFFERS}


def torch_run(case, momentum=0.1, dtype=torch.float32, grad=False):
    """PyTorch's training outputs, buffers after training and eval output on the case's inputs
    (and, with grad, the gradients of (first output * w).sum())."""
    module = torch_bn(case["dim"], momentum, dtype)
    found = {"train": []}
    for step, batch in enumerate(case["train"]):
        if grad and step == 0:
            x = batch.clone().requires_grad_(True)
            out = module(x)
            (out * case["w"]).sum().backward()
            found["grads"] = {"gamma": module.weight.grad.clone(), "beta": module.bias.grad.clone(),
                              "x": x.grad.clone()}
        else:
            with torch.no_grad():
                out = module(batch)
        found["train"].append(out.detach().clone())
    found.update(buffers(module))
    module.eval()
    with torch.no_grad():
        found["eval"] = module(case["eval"])
    return found


# ---- helpers ---------------------------------------------------------------------------------

def close(what, got, expected, dtype=None):
    """[] when close (the core tolerance), else one problem. dtype: the dtype `got` must have."""
    try:
        if dtype is not None and got.dtype != dtype:
            return [f"{what} has dtype {str(got.dtype).removeprefix('torch.')}, expected "
                    f"{str(dtype).removeprefix('torch.')}"]
        if tuple(got.shape) != tuple(expected.shape):
            return [f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"]
        got = got.to(expected.dtype)
        if torch.allclose(got, expected, **TOLERANCE):
            return []
        return [f"{what} differs from torch.nn.BatchNorm1d's (by up to {(got - expected).abs().max().item():.3g})"]
    except Exception as error:
        return [f"{what} cannot be compared with torch.nn.BatchNorm1d's ({type(error).__name__})"]


def verdict(problems):
    return not problems, "; ".join(problems[:3])


def run(ns, case, grad=False, **kwargs):
    """The submission's side of torch_run."""
    with ns.pipelined():
        bn = ns.BatchNorm1d(case["dim"], **kwargs)
        found = {"train": []}
        for step, batch in enumerate(case["train"]):
            if grad and step == 0:
                x = ns.put(batch.clone().requires_grad_(True))
                out = bn(x)
                (out * case["w"]).sum().backward()
                found["grads"] = ns.read({"gamma": bn.gamma.grad, "beta": bn.beta.grad, "x": x.grad})
            else:
                out = bn(batch)
            found["train"].append(ns.read(out))
        found.update(ns.read({name: getattr(bn, name) for name in BUFFERS}))
        bn.training = False
        with torch.no_grad():
            found["eval"] = ns.read(bn(case["eval"]))
        return found


def compare_run(label, expected, got):
    """Outputs (and the input's gradient) must have PyTorch's dtype; buffers and the parameters'
    gradients are compared by value (float32 buffers may meet float64 inputs)."""
    problems = []
    for step, (want, have) in enumerate(zip(expected["train"], got["train"])):
        problems += close(f"{label}: the training output of step {step + 1}", have, want, want.dtype)
    for name in BUFFERS:
        problems += close(f"{label}: {name} after training", got[name], expected[name])
    problems += close(f"{label}: the eval output after training", got["eval"], expected["eval"], expected["eval"].dtype)
    for name, want in expected.get("grads", {}).items():
        have = got["grads"][name]
        problems += [f"{label}: no gradient reached {name}"] if have is None else close(
            f"{label}: the gradient of {name}", have, want, want.dtype if name == "x" else None)
    return problems


# ---- the checks ------------------------------------------------------------------------------

def judge_runs(label):
    def judge(expected, obs):
        return verdict(compare_run(label, expected, obs))
    return judge


def probe_single_feature(ns, inputs):
    case = inputs["single_feature"]
    with ns.pipelined():
        bn = ns.BatchNorm1d(1)
        shapes = ns.read({name: getattr(bn, name).shape for name in ("gamma", "beta") + BUFFERS})
        shapes = {name: tuple(shape) for name, shape in shapes.items()}
    return {"shapes": shapes, "run": run(ns, case, grad=True)}


def judge_single_feature(expected, obs):
    problems = [f"dim = 1: {name} starts with shape {shape}, expected (1,)" for name, shape in obs["shapes"].items()
                if shape != (1,)]
    return verdict(problems + compare_run("dim = 1", expected, obs["run"]))


def probe_momentum_limits(ns, inputs):
    case = inputs["momentum_limits"]
    return {m: run(ns, case, momentum=m) for m in (0.0, 1.0)}


def expect_momentum_limits(inputs):
    return {m: torch_run(inputs["momentum_limits"], momentum=m) for m in (0.0, 1.0)}


def judge_momentum_limits(expected, obs):
    return verdict([p for m in (0.0, 1.0) for p in compare_run(f"momentum={m:g}", expected[m], obs[m])])


def probe_long_run(ns, inputs):
    with ns.pipelined():
        case = inputs["long_run"]
        bn = ns.BatchNorm1d(case["dim"])
        states = []
        for batch in case["train"]:
            bn(batch)
            states.append({name: getattr(bn, name).clone() for name in BUFFERS})  # read at the end, in one go
        bn.training = False
        with torch.no_grad():
            out = bn(case["eval"])
        return ns.read({"states": states, "eval": out})


def expect_long_run(inputs):
    case = inputs["long_run"]
    module, states = torch_bn(case["dim"]), []
    with torch.no_grad():
        for batch in case["train"]:
            module(batch)
            states.append(buffers(module))
        module.eval()
        return {"states": states, "eval": module(case["eval"])}


def judge_long_run(expected, obs):
    problems = []
    for step, (want, have) in enumerate(zip(expected["states"], obs["states"])):
        for name in BUFFERS:
            problems += close(f"{name} after training step {step + 1} of {LONG_RUN['steps']}", have[name], want[name])
        if problems:
            break  # the first step that disagrees says enough
    problems += close(f"the eval output after {LONG_RUN['steps']} training steps", obs["eval"], expected["eval"],
                      expected["eval"].dtype)
    return verdict(problems)


def probe_rows(ns, inputs):
    with ns.pipelined():
        case = inputs["rows"]
        bn = ns.BatchNorm1d(case["dim"])
        for batch in case["train"]:
            bn(batch)
        bn.training = False
        x = case["eval"]
        # Gradients stay enabled, as in a network that backpropagates through a frozen layer.
        return {"batch": ns.read(bn(x)), "rows": [ns.read(bn(x[i:i + 1])) for i in range(3)],
                "buffers": ns.read({name: getattr(bn, name) for name in BUFFERS})}


def expect_rows(inputs):
    case = inputs["rows"]
    module = torch_bn(case["dim"])
    with torch.no_grad():
        for batch in case["train"]:
            module(batch)
        module.eval()
        x = case["eval"]
        return {"batch": module(x), "rows": [module(x[i:i + 1]) for i in range(3)], "buffers": buffers(module)}


def judge_rows(expected, obs):
    problems = close("the eval output of a batch (gradients enabled)", obs["batch"], expected["batch"],
                     expected["batch"].dtype)
    for i, (want, have) in enumerate(zip(expected["rows"], obs["rows"])):
        problems += close(f"the eval output of row {i} alone (gradients enabled)", have, want, want.dtype)
    for name in BUFFERS:
        problems += close(f"{name} after eval calls", obs["buffers"][name], expected["buffers"][name])
    return verdict(problems)


def probe_no_grad(ns, inputs):
    with ns.pipelined():
        case = inputs["no_grad"]
        bn = ns.BatchNorm1d(case["dim"])
        found = {"train": []}
        with torch.no_grad():  # training mode still: PyTorch uses and updates the batch statistics
            for batch in case["train"]:
                found["train"].append(ns.read(bn(batch)))
        found.update(ns.read({name: getattr(bn, name) for name in BUFFERS}))
        bn.training = False
        with torch.no_grad():
            found["eval"] = ns.read(bn(case["eval"]))
        return found


def probe_toggle(ns, inputs):
    with ns.pipelined():
        case = inputs["toggle"]
        bn = ns.BatchNorm1d(case["dim"])
        found = []
        for train, evaluate in zip(((0, 1), (2,), (3, 4)), case["eval"]):
            bn.training = True
            outs = [ns.read(bn(case["train"][i])) for i in train]
            bn.training = False
            with torch.no_grad():
                found.append({"train": outs, "eval": ns.read(bn(evaluate)),
                              **ns.read({name: getattr(bn, name) for name in BUFFERS})})
        return found


def expect_toggle(inputs):
    case = inputs["toggle"]
    module = torch_bn(case["dim"])
    found = []
    with torch.no_grad():
        for train, evaluate in zip(((0, 1), (2,), (3, 4)), case["eval"]):
            module.train()
            outs = [module(case["train"][i]) for i in train]
            module.eval()
            found.append({"train": outs, "eval": module(evaluate), **buffers(module)})
    return found


def judge_toggle(expected, obs):
    problems = []
    for phase, (want, have) in enumerate(zip(expected, obs), start=1):
        problems += compare_run(f"round {phase} of train/eval", want, have)
    return verdict(problems)


CHECKS = [
    dict(name="batches_of_two", probe=lambda ns, inputs: run(ns, inputs["batches_of_two"]),
         expect=lambda inputs: torch_run(inputs["batches_of_two"]), judge=judge_runs("batches of 2"),
         hint="Take every size from the input: the unbiased factor is N / (N - 1) with N = x.shape[0] (2 here, "
              "not the 32 of the examples)."),
    dict(name="single_feature", probe=probe_single_feature,
         expect=lambda inputs: torch_run(inputs["single_feature"], grad=True), judge=judge_single_feature,
         hint="With dim = 1 every tensor of the layer still has shape (1,): squeeze() drops every size-1 "
              "dimension, so squeeze only dimension 0 (or do not add it: no keepdim=True)."),
    dict(name="float64", probe=lambda ns, inputs: run(ns, inputs["float64"], grad=True),
         expect=lambda inputs: torch_run(inputs["float64"], dtype=torch.float64, grad=True),
         judge=judge_runs("float64 inputs"),
         hint="Float64 inputs should give float64 outputs that match a float64 torch.nn.BatchNorm1d: mix the "
              "float32 buffers and float64 statistics with ordinary arithmetic (which promotes), not with "
              "functions that demand one dtype such as torch.lerp."),
    dict(name="momentum_limits", probe=probe_momentum_limits, expect=expect_momentum_limits,
         judge=judge_momentum_limits,
         hint="momentum=0 must leave the running statistics at zeros and ones forever, momentum=1 must replace "
              "them by the last batch's: use the momentum you were given, even 0 (beware `momentum or default`)."),
    dict(name="long_run", probe=probe_long_run, expect=expect_long_run, judge=judge_long_run,
         hint="Over 100 training steps whose inputs' mean drifts far from zero the running statistics should "
              "still match PyTorch's: compute the variance from deviations, mean((x - mean)^2), not as "
              "mean(x^2) - mean^2, which loses most of its digits when the mean is large."),
    dict(name="eval_rows_independent", probe=probe_rows, expect=expect_rows, judge=judge_rows,
         hint="In eval mode each row is normalised with the running statistics alone, so one row gives the same "
              "output by itself as inside a batch, whether or not gradients are enabled: self.training, not the "
              "grad mode, decides the mode."),
    dict(name="training_under_no_grad", probe=probe_no_grad, expect=lambda inputs: torch_run(inputs["no_grad"]),
         judge=judge_runs("training mode under torch.no_grad()"),
         hint="Training mode under torch.no_grad() still normalises with the batch statistics and updates the "
              "running ones: only self.training decides."),
    dict(name="mode_toggled", probe=probe_toggle, expect=expect_toggle, judge=judge_toggle,
         hint="Switching training on and off repeatedly must behave like PyTorch: every eval call uses the running "
              "statistics as they are now; cache nothing from an earlier eval call."),
]
