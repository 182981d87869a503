"""The eight core checks of the batch normalization network assignment.

Shipped to students beside the notebook (as batchnorm_network_checks.py) and run by the
autograder. Each check is a probe (drives the student's code through `ns`, records what it saw),
an expectation (computed from the inputs alone) and a judgement (compares the two); see
selfcheck.py for the contract. Every check draws its tensors from its own private generator
seeded with 0; the breast cancer data comes from scikit-learn, as in the notebook. "Close" is
torch.allclose(rtol=1e-5, atol=1e-6) with equal shapes.
"""
import math

import torch

SEED = 0
EPS = 1e-5
MOMENTUM = 0.9
CLOSE = {"rtol": 1e-5, "atol": 1e-6}
LAYERS = {"fc1": (30, 20), "fc2": (20, 10), "fc3": (10, 1)}
STEPS = 100  # train_model's default number of steps
MIN_ACCURACY = 0.90
DEEP = {"hidden": 256, "layers": 100, "batch": 16, "low": 0.5, "high": 0.65}
ANSWERS = {"answer_running_mean": 1.02, "answer_running_var": 0.49}


def load_data():
    """The notebook's data: breast cancer features standardised, split 80/20 with random_state=0."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import scale

    cancer = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(scale(cancer.data), cancer.target, test_size=0.2,
                                                        random_state=0)
    return {"x_train": torch.tensor(x_train, dtype=torch.float32),
            "y_train": torch.tensor(y_train, dtype=torch.float32).reshape(-1, 1),
            "x_test": torch.tensor(x_test, dtype=torch.float32),
            "y_test": torch.tensor(y_test, dtype=torch.float32).reshape(-1, 1)}


def generator():
    """A fresh private generator seeded like the original's torch.manual_seed(0)."""
    return torch.Generator().manual_seed(SEED)


def make_inputs():
    g = generator()  # check 1
    statistics = {"gamma": 2 * torch.randn(10, generator=g), "beta": torch.randn(10, generator=g)}
    statistics["x"] = torch.randn(100, 10, generator=g)
    g = generator()  # check 2: the first batch is `b`
    running = [(torch.randn(1000, 20, generator=g) * 10 + 42).requires_grad_(True) for _ in range(100)]
    g = generator()  # check 3
    evaluation = {"train": [torch.randn(32, 20, generator=g) * 2 + 3 for _ in range(5)]}
    evaluation["x"] = torch.randn(32, 20, generator=g) * 2 + 3
    evaluation["one"] = evaluation["x"][:1].clone()
    g = generator()  # check 4
    architecture = torch.randn(16, 30, generator=g)
    return {"statistics": statistics, "running": running, "eval": evaluation, "architecture": architecture,
            "data": load_data()}


# ---- helpers ---------------------------------------------------------------------------------

def all_of(results):
    failed = [why for ok, why in results if not ok]
    return not failed, "; ".join(failed)


def close(what, got, expected):
    """(passed, why): torch.allclose with the assignment's tolerance, shapes equal."""
    if not isinstance(got, torch.Tensor):
        return False, f"{what} is a {type(got).__name__}, not a tensor"
    if tuple(got.shape) != tuple(expected.shape):
        return False, f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    try:
        if torch.allclose(got.to(expected.dtype), expected, **CLOSE):
            return True, ""
        if not torch.isfinite(got).all():
            return False, f"{what} holds NaN or inf values"
        return False, f"{what} is off by up to {(got.to(expected.dtype) - expected).abs().max().item():.3g}"
    except Exception as error:
        return False, f"{what} cannot be compared ({type(error).__name__})"


def number(value):
    """A float from a Python number or a one-element tensor; None for anything else."""
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return float(value.reshape(()).item())
    return None


def numbers(values):
    """A list of floats from a list or tuple of numbers; None if any is not a number."""
    if type(values) not in (list, tuple):
        return None
    found = [number(v) for v in values]
    return None if any(v is None for v in found) else found


def is_filled(value, shape, fill, what):
    if not isinstance(value, torch.Tensor):
        return False, f"{what} is a {type(value).__name__}, not a tensor"
    if shape is not None and tuple(value.shape) != shape:
        return False, f"{what} has shape {tuple(value.shape)}, expected {shape}"
    try:
        if value.numel() and bool((value == fill).all()):
            return True, ""
    except Exception:
        pass
    return False, f"{what} should start as all {fill:g}s"


# ---- check 0: parameters and buffers ---------------------------------------------------------

def probe_registration(ns, inputs):
    with ns.pipelined():
        bn = ns.BatchNorm1d(20)
        params, buffers = [p for p in bn.parameters()], [b for b in bn.buffers()]
        found = ns.read({name: {"parameter": [ns.same(p, getattr(bn, name)) for p in params],
                                "buffer": [ns.same(b, getattr(bn, name)) for b in buffers],
                                "value": getattr(bn, name)}
                         for name in ("gamma", "beta", "running_mean", "running_var")})
    return {name: {"parameter": any(seen["parameter"]), "buffer": any(seen["buffer"]), "value": seen["value"]}
            for name, seen in found.items()}


def judge_registration(expected, obs):
    results = []
    for name, fill in (("gamma", 1.0), ("beta", 0.0)):
        results.append((obs[name]["parameter"] is True, f"{name} is not in parameters()"))
        results.append(is_filled(obs[name]["value"], (20,), fill, name))
    for name in ("running_mean", "running_var"):
        results.append((obs[name]["buffer"] is True, f"{name} is not in buffers()"))
        results.append((obs[name]["parameter"] is False, f"{name} is in parameters(): it must not be learnable"))
        results.append(is_filled(obs[name]["value"], None, 0.0, name))
    return all_of(results)


# ---- check 1: output statistics --------------------------------------------------------------

def probe_statistics(ns, inputs):
    d = inputs["statistics"]
    with ns.pipelined():
        bn = ns.BatchNorm1d(10)
        sizes = ns.read({name: getattr(bn, name).numel() for name in ("gamma", "beta")})
        if sizes != {"gamma": 10, "beta": 10}:
            return {"sizes": sizes}
        with torch.no_grad():
            bn.gamma.copy_(d["gamma"])
            bn.beta.copy_(d["beta"])
        return {"out": ns.read(bn(d["x"]))}


def expect_statistics(inputs):
    d = inputs["statistics"]
    return {"shape": tuple(d["x"].shape), "mean": d["beta"], "std": d["gamma"].abs()}


def judge_statistics(expected, obs):
    if "out" not in obs:
        return False, "gamma and beta of BatchNorm1d(10) should hold 10 values each, found " + \
            ", ".join(f"{name} {size}" for name, size in obs["sizes"].items())
    out = obs["out"]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected["shape"]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return False, f"the output has shape {shape}, expected {expected['shape']}"
    out = out.double()
    mean_error = (out.mean(dim=0) - expected["mean"].double()).abs().max().item()
    std_error = (out.std(dim=0, unbiased=False) - expected["std"].double()).abs().max().item()
    return all_of([(mean_error <= 1e-5, f"a feature's output mean is {mean_error:.3g} from beta (allowed 1e-5)"),
                   (std_error <= 1e-4, f"a feature's output standard deviation (biased) is {std_error:.3g} from "
                                       f"|gamma| (allowed 1e-4)")])


# ---- check 2: running averages ---------------------------------------------------------------

def probe_running(ns, inputs):
    with ns.pipelined():
        bn = ns.BatchNorm1d(20)
        first = None
        for batch in inputs["running"]:
            bn(batch)
            if first is None:
                first = ns.read(bn.running_mean)
        states = {}
        for name in ("running_mean", "running_var"):
            value = getattr(bn, name)
            states[name] = {"value": value, "requires_grad": value.requires_grad, "grad_fn": value.grad_fn}
        states = ns.read(states)
    obs = {"first": first}
    for name, state in states.items():
        obs[name] = {"value": state["value"], "requires_grad": state["requires_grad"],
                     "grad_fn": state["grad_fn"] is not None}
    return obs


def expect_running(inputs):
    return (1 - MOMENTUM) * inputs["running"][0].detach().mean(dim=0)


def judge_running(expected, obs):
    results = [close(f"running_mean after one batch (expected {1 - MOMENTUM:g} * batch mean)", obs["first"],
                     expected)]
    for name, target, allowed in (("running_mean", 42.0, 1.0), ("running_var", 100.0, 5.0)):
        value = obs[name]["value"]
        try:
            error = (value.double() - target).abs().max().item()
        except Exception:
            error = math.nan
        results.append((error <= allowed, f"after 100 batches of N(42, 10^2) {name} is {error:.3g} from "
                                          f"{target:g} (allowed {allowed:g})"))
        results.append((obs[name]["requires_grad"] is False and obs[name]["grad_fn"] is False,
                        f"{name} carries autograd history (requires_grad or a grad_fn)"))
    return all_of(results)


# ---- check 3: eval mode ----------------------------------------------------------------------

def probe_eval(ns, inputs):
    with ns.pipelined():
        d = inputs["eval"]
        bn = ns.BatchNorm1d(20)
        for batch in d["train"]:
            bn(batch)
        bn.eval()
        before = ns.read({name: getattr(bn, name) for name in ("running_mean", "running_var")})
        with torch.no_grad():
            out, one = bn(d["x"]), bn(d["one"])
        return {"before": before, **ns.read({"out": out, "one": one, "after": {name: getattr(bn, name) for name in before},
                                             "gamma": bn.gamma, "beta": bn.beta})}


def expect_eval(inputs):
    return inputs["eval"]["x"]


def judge_eval(x, obs):
    before, after = obs["before"], obs["after"]
    try:
        wanted = obs["gamma"] * (x - before["running_mean"]) / torch.sqrt(before["running_var"] + EPS) + obs["beta"]
    except Exception as error:
        return False, f"gamma * (x - running_mean) / sqrt(running_var + eps) + beta cannot be computed " \
                      f"({type(error).__name__})"
    results = [close("the eval-mode output", obs["out"], wanted)]
    for name in before:
        unchanged = isinstance(after[name], torch.Tensor) and tuple(after[name].shape) == tuple(before[name].shape) \
            and torch.equal(after[name], before[name])
        results.append((unchanged, f"eval mode changed {name}"))
    out = obs["out"]
    if isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(x.shape):
        results.append(close("the eval-mode output for a batch of one sample", obs["one"], out[:1]))
    return all_of(results)


# ---- check 4: architecture -------------------------------------------------------------------

def probe_architecture(ns, inputs):
    with ns.pipelined():
        model = ns.Model()
        layers = {name: getattr(model, name) for name in LAYERS}
        linear = ns.read({name: ns.isinstance(layer, ns.torch.nn.Linear) for name, layer in layers.items()})
        found = ns.read({name: {"in": layer.in_features, "out": layer.out_features,
                                "no_bias": ns.same(layer.bias, None)}
                         for name, layer in layers.items() if linear[name]})
        obs = {name: {"in": f["in"], "out": f["out"], "bias": not f["no_bias"]} for name, f in found.items()}
        obs.update({name: None for name in LAYERS if not linear[name]})
        obs.update(ns.read({name: ns.isinstance(getattr(model, name), ns.BatchNorm1d) for name in ("bn1", "bn2")}))
        obs["out"] = ns.read(model(inputs["architecture"]))
    return obs


def judge_architecture(expected, obs):
    results = []
    for name, (fan_in, fan_out) in LAYERS.items():
        layer = obs[name]
        if layer is None:
            results.append((False, f"{name} is not an nn.Linear"))
            continue
        results.append(((layer["in"], layer["out"]) == (fan_in, fan_out),
                        f"{name} maps {layer['in']} to {layer['out']} features, expected {fan_in} to {fan_out}"))
        if name != "fc3":
            results.append((layer["bias"] is False, f"{name} has a bias: the batch norm after it cancels it"))
    for name in ("bn1", "bn2"):
        results.append((obs[name] is True, f"{name} is not your BatchNorm1d"))
    out = obs["out"]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        results.append((False, f"the output has shape {shape}, expected {expected}"))
    else:
        results.append((bool(((out > 0) & (out < 1)).all()), "the output is not strictly between 0 and 1"))
    return all_of(results)


# ---- check 5: training works -----------------------------------------------------------------

def probe_training(ns, inputs):
    d = inputs["data"]
    with ns.pipelined():
        ns.torch.manual_seed(SEED)
        model = ns.Model()
        losses = ns.read(ns.train_model(model, d["x_train"], d["y_train"]))
        model.eval()
        with torch.no_grad():
            predictions = ns.read(model(d["x_test"]))
    return {"losses": losses, "predictions": predictions}


def expect_training(inputs):
    return inputs["data"]["y_test"]


def judge_training(y_test, obs):
    results = []
    losses = numbers(obs["losses"])
    if losses is None or len(losses) != STEPS:
        results.append((False, f"train_model should return a list of {STEPS} losses, one per step"))
    else:
        results.append((all(math.isfinite(v) for v in losses), "a loss is not finite"))
    predictions = obs["predictions"]
    if not isinstance(predictions, torch.Tensor) or tuple(predictions.shape) != tuple(y_test.shape):
        shape = tuple(predictions.shape) if isinstance(predictions, torch.Tensor) else type(predictions).__name__
        results.append((False, f"the predictions on the test split have shape {shape}, expected {tuple(y_test.shape)}"))
    else:
        accuracy = ((predictions > 0.5).to(y_test.dtype) == y_test).double().mean().item()
        results.append((accuracy >= MIN_ACCURACY, f"test accuracy {accuracy:.3f} after training, expected at least "
                                                  f"{MIN_ACCURACY:.2f}"))
    return all_of(results)


# ---- check 6: the deep network ---------------------------------------------------------------

def probe_deep(ns, inputs):
    with ns.pipelined():
        ns.torch.manual_seed(SEED)
        deep = ns.DeepMLP(DEEP["hidden"], DEEP["layers"])
        deep.initialize()
        deep(ns.torch.randn(DEEP["batch"], DEEP["hidden"]))
        return ns.read(deep.stds)


def judge_deep(expected, stds):
    values = numbers(stds)
    if values is None or len(values) != DEEP["layers"]:
        count = len(stds) if type(stds) in (list, tuple) else type(stds).__name__
        return False, f"self.stds should hold {DEEP['layers']} numbers, one per layer (found {count})"
    outside = [(i, v) for i, v in enumerate(values, start=1) if not DEEP["low"] <= v <= DEEP["high"]]
    if outside:
        layer, value = outside[0]
        return False, (f"{len(outside)} layers' standard deviations are outside [{DEEP['low']}, {DEEP['high']}] "
                       f"(layer {layer}: {value:.3g})")
    return True, ""


# ---- check 7: the answers --------------------------------------------------------------------

def probe_answers(ns, inputs):
    return {name: getattr(ns, name) for name in ANSWERS}


def judge_answers(expected, obs):
    results = []
    for name, value in ANSWERS.items():
        got = number(obs[name])
        results.append((got is not None and abs(got - value) <= 1e-6,
                        f"{name} is not right" if got is not None else f"{name} is not a number"))
    return all_of(results)


CHECKS = [
    dict(name="Parameters and buffers", probe=probe_registration, judge=judge_registration,
         hint="gamma (ones) and beta (zeros) of shape (num_features,) are nn.Parameters; running_mean and "
              "running_var start at zeros and are registered with self.register_buffer."),
    dict(name="Output statistics", probe=probe_statistics, expect=expect_statistics, judge=judge_statistics,
         hint="In training mode normalise each feature with the batch mean and the biased variance "
              "(unbiased=False), divide by sqrt(var + eps), then multiply by gamma and add beta."),
    dict(name="Running averages", probe=probe_running, expect=expect_running, judge=judge_running,
         hint="running = momentum * running + (1 - momentum) * batch statistic, with momentum (0.9) weighting the "
              "old value; update under torch.no_grad() (or from detached statistics)."),
    dict(name="Eval mode", probe=probe_eval, expect=expect_eval, judge=judge_eval,
         hint="When self.training is False, normalise with running_mean and running_var, and leave them as they "
              "are."),
    dict(name="Architecture", probe=probe_architecture, expect=lambda inputs: (len(inputs["architecture"]), 1),
         judge=judge_architecture,
         hint="fc1 = nn.Linear(30, 20, bias=False), bn1 = BatchNorm1d(20), fc2 = nn.Linear(20, 10, bias=False), "
              "bn2 = BatchNorm1d(10), fc3 = nn.Linear(10, 1); the forward ends with a sigmoid."),
    dict(name="Training works", probe=probe_training, expect=expect_training, judge=judge_training,
         hint="Each step: rows from torch.randperm with the generator, the binary cross-entropy summed over the "
              "batch, zero the gradients, backward, then p -= lr * p.grad under torch.no_grad(); return the "
              "losses as floats."),
    dict(name="Deep network stays normalised", probe=probe_deep, judge=judge_deep,
         hint="Each layer is linear -> batch norm -> ReLU; append the standard deviation of the ReLU's output "
              "(a float, .item()) to self.stds, one per layer."),
    dict(name="Running statistics by hand", probe=probe_answers, judge=judge_answers,
         hint="PyTorch's momentum weights the new batch statistic, and its running variance starts at 1. A "
              "feature that is the same in all three samples has batch variance 0."),
]
