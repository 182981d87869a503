"""The eight checks of the BatchNorm1d parity assignment: your class against torch.nn.BatchNorm1d.

Shipped to students beside the notebook (as batchnorm1d_parity_checks.py) and run by the
autograder. Each check is a probe (drives your class through `ns` and records what it saw), an
expectation (what torch.nn.BatchNorm1d gives on the same inputs, computed from the inputs alone)
and a judgement (compares the two); see selfcheck.py for the contract.

Inputs, from one private generator seeded with 42 (the draws `torch.manual_seed(42)` then
`torch.randn` would give): x = randn(32, 10) * 3 + 1, then three more training batches drawn the
same way, then the upstream weights w = randn(32, 10) of the gradient check. "Close" is
torch.allclose(rtol=1e-5, atol=1e-6).
"""
import torch

SEED = 42
BATCH, DIM = 32, 10
EPS, MOMENTUM = 1e-5, 0.1
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
PARAMETERS = ("gamma", "beta")
BUFFERS = ("running_mean", "running_var")
TORCH_NAMES = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean", "running_var": "running_var"}
EXAMPLE = {"dim": 5, "momentum": 0.3, "rows": 3, "steps": 2}  # check 7


def make_inputs():
    g = torch.Generator().manual_seed(SEED)
    batches = [torch.randn(BATCH, DIM, generator=g) * 3 + 1 for _ in range(4)]
    w = torch.randn(BATCH, DIM, generator=g)
    example = torch.arange(1, EXAMPLE["dim"] + 1, dtype=torch.float32).repeat(EXAMPLE["rows"], 1)
    return {"x": batches[0], "batches": batches, "w": w, "example": example}


# ---- PyTorch's answers (computed once, from the inputs alone) -------------------------------

def torch_bn(dim=DIM, momentum=MOMENTUM):
    return torch.nn.BatchNorm1d(dim, eps=EPS, momentum=momentum)


def torch_trained(batches, dim=DIM, momentum=MOMENTUM):
    """A fresh torch.nn.BatchNorm1d after one training forward per batch."""
    module = torch_bn(dim, momentum)
    with torch.no_grad():
        for batch in batches:
            module(batch)
    return module


def torch_state(module):
    return {name: getattr(module, TORCH_NAMES[name]).detach().clone() for name in PARAMETERS + BUFFERS}


# ---- helpers ---------------------------------------------------------------------------------

def close(what, got, expected):
    """torch.allclose(rtol=1e-5, atol=1e-6); anything it cannot compare is a failure."""
    try:
        if torch.allclose(got, expected, **TOLERANCE):
            return True, ""
        difference = (got - expected).abs().max().item()
        return False, f"{what} differs from PyTorch's (by up to {difference:.3g})"
    except Exception as error:  # not a tensor, wrong dtype, shapes that do not broadcast
        return False, f"{what} cannot be compared with PyTorch's ({type(error).__name__})"


def has_shape(what, got, shape):
    found = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
    return found == tuple(shape), f"{what} has shape {found}, expected {tuple(shape)}"


def all_of(results):
    failed = [why for ok, why in results if not ok]
    return not failed, "; ".join(failed)


def trained(ns, batches, dim=DIM, **kwargs):
    """A fresh BatchNorm1d of the submission after one training forward per batch."""
    bn = ns.BatchNorm1d(dim, **kwargs)
    for batch in batches:
        bn(batch)
    return bn


# ---- the eight checks ------------------------------------------------------------------------

def probe_initial(ns, inputs):
    with ns.pipelined():
        bn = ns.BatchNorm1d(DIM)
        found = [p for p in bn.parameters()]
        same = [ns.same(found[0], bn.gamma), ns.same(found[1], bn.beta)] if len(found) == 2 else [False]
        obs = ns.read({"values": {name: getattr(bn, name) for name in PARAMETERS + BUFFERS},
                       "requires_grad": {name: getattr(bn, name).requires_grad for name in PARAMETERS},
                       "gamma_beta": same})
    return {**obs, "parameters": len(found), "gamma_beta": all(obs["gamma_beta"])}


def judge_initial(expected, obs):
    results = []
    for name in PARAMETERS + BUFFERS:
        got, want = obs["values"][name], expected[name]
        ok, why = has_shape(name, got, want.shape)
        if ok:
            ok = torch.equal(got, want)
            why = f"{name} should start as PyTorch's {TORCH_NAMES[name]} does: all {want[0].item():g}"
        results.append((ok, why))
    results += [(obs["requires_grad"][name] is True, f"{name}.requires_grad is not True") for name in PARAMETERS]
    results.append((obs["gamma_beta"] is True, f"parameters() gave {obs['parameters']} item(s), expected exactly "
                                               "[gamma, beta] (the tensors themselves, not copies)"))
    return all_of(results)


def probe_training_output(ns, inputs):
    with ns.pipelined():
        return ns.read(ns.BatchNorm1d(DIM)(inputs["x"]))


def expect_training_output(inputs):
    with torch.no_grad():
        return torch_bn()(inputs["x"])


def judge_training_output(expected, obs):
    return close("the training-mode output", obs, expected)


def probe_buffer(name):
    def probe(ns, inputs):
        with ns.pipelined():
            return ns.read(getattr(trained(ns, inputs["batches"]), name))
    return probe


def expect_buffer(name):
    return lambda inputs: getattr(torch_trained(inputs["batches"]), TORCH_NAMES[name]).clone()


def judge_buffer(name):
    def judge(expected, obs):
        ok, why = has_shape(f"{name} after 4 training batches", obs, expected.shape)
        return (ok, why) if not ok else close(f"{name} after 4 training batches", obs, expected)
    return judge


def probe_eval(ns, inputs):
    with ns.pipelined():
        bn = trained(ns, inputs["batches"])
        before = ns.read({name: getattr(bn, name) for name in BUFFERS})
        bn.training = False
        with torch.no_grad():
            out = ns.read(bn(inputs["x"]))
        return {"out": out, "before": before, "after": ns.read({name: getattr(bn, name) for name in BUFFERS})}


def expect_eval(inputs):
    module = torch_trained(inputs["batches"])
    module.eval()
    with torch.no_grad():
        return module(inputs["x"])


def unchanged(before, after):
    try:
        if isinstance(before, torch.Tensor):
            return isinstance(after, torch.Tensor) and before.shape == after.shape and torch.equal(before, after)
        return type(before) is type(after) and before == after
    except Exception:
        return False


def judge_eval(expected, obs):
    results = [close("the eval-mode output after 4 training batches", obs["out"], expected)]
    results += [(unchanged(obs["before"][name], obs["after"][name]), f"an eval-mode call changed {name}")
                for name in BUFFERS]
    return all_of(results)


def probe_gradients(ns, inputs):
    with ns.pipelined():
        x = ns.put(inputs["x"].clone().requires_grad_(True))
        bn = ns.BatchNorm1d(DIM)
        (bn(x) * inputs["w"]).sum().backward()
        return ns.read({"gamma": bn.gamma.grad, "beta": bn.beta.grad, "x": x.grad})


def expect_gradients(inputs):
    x = inputs["x"].clone().requires_grad_(True)
    module = torch_bn()
    (module(x) * inputs["w"]).sum().backward()
    return {"gamma": module.weight.grad.clone(), "beta": module.bias.grad.clone(), "x": x.grad.clone()}


def judge_gradients(expected, obs):
    results = []
    for name in ("gamma", "beta", "x"):
        got = obs[name]
        if got is None:
            results.append((False, f"no gradient reached {name}"))
        else:
            results.append(close(f"the gradient of {name}", got, expected[name]))
    return all_of(results)


def probe_no_graph(ns, inputs):
    with ns.pipelined():
        bn = ns.BatchNorm1d(DIM)
        initial = ns.read({name: getattr(bn, name) for name in BUFFERS})
        for batch in inputs["batches"]:
            bn(batch.clone().requires_grad_(True))  # inside a network, activations carry gradients
        found = ns.read({name: {"value": getattr(bn, name), "requires_grad": getattr(bn, name).requires_grad,
                                "grad_fn": getattr(bn, name).grad_fn} for name in BUFFERS})
    return {name: {"initial": initial[name], "value": state["value"], "requires_grad": state["requires_grad"],
                   "graph": state["grad_fn"] is not None} for name, state in found.items()}


def judge_no_graph(expected, obs):
    results = []
    for name, start in (("running_mean", 0.0), ("running_var", 1.0)):
        value = obs[name]["value"]
        moved = (isinstance(value, torch.Tensor) and not bool((value == start).all())
                 and not unchanged(obs[name]["initial"], value))
        results.append((moved, f"{name} did not move from its initial {start:g}s after 4 training batches"))
        results.append((obs[name]["requires_grad"] is False and obs[name]["graph"] is False,
                        f"{name} carries autograd history (requires_grad or a grad_fn) after training on inputs "
                        "that require grad"))
    return all_of(results)


def probe_example(ns, inputs):
    with ns.pipelined():
        bn = trained(ns, [inputs["example"]] * EXAMPLE["steps"], EXAMPLE["dim"], momentum=EXAMPLE["momentum"])
        return ns.read({name: getattr(bn, name) for name in BUFFERS})


def expect_example(inputs):
    module = torch_trained([inputs["example"]] * EXAMPLE["steps"], EXAMPLE["dim"], EXAMPLE["momentum"])
    return {name: getattr(module, name).clone() for name in BUFFERS}


def judge_example(expected, obs):
    results = []
    for name in BUFFERS:
        what = f"{name} of BatchNorm1d(5, momentum=0.3) after two steps"
        ok, why = has_shape(what, obs[name], expected[name].shape)
        if ok:
            ok, why = close(what, obs[name], expected[name])
            if not ok:
                why += f": expected {[round(v, 4) for v in expected[name].tolist()]}"
        results.append((ok, why))
    return all_of(results)


CHECKS = [
    dict(name="Initial state", probe=probe_initial, judge=judge_initial,
         expect=lambda inputs: torch_state(torch_bn()),
         hint="gamma = ones and beta = zeros, both of shape (dim,) with requires_grad=True; running_mean = zeros "
              "and running_var = ones of shape (dim,); parameters() returns [self.gamma, self.beta]."),
    dict(name="Training output", probe=probe_training_output, expect=expect_training_output,
         judge=judge_training_output,
         hint="In training, normalise with the batch mean and the BIASED variance (x.var(dim=0, correction=0), "
              "dividing by N), with eps inside the square root, then gamma * x_hat + beta."),
    dict(name="Running mean", probe=probe_buffer("running_mean"), expect=expect_buffer("running_mean"),
         judge=judge_buffer("running_mean"),
         hint="running_mean = (1 - momentum) * running_mean + momentum * batch mean: PyTorch's momentum weights the "
              "NEW batch. Keep the shape (dim,): no keepdim=True in what you store."),
    dict(name="Running variance", probe=probe_buffer("running_var"), expect=expect_buffer("running_var"),
         judge=judge_buffer("running_var"),
         hint="running_var tracks the UNBIASED batch variance (divide by N - 1), though the normalisation uses "
              "the biased one: multiply by N / (N - 1). Same momentum rule as the mean, shape (dim,)."),
    dict(name="Eval output", probe=probe_eval, expect=expect_eval, judge=judge_eval,
         hint="With training = False, normalise with running_mean and running_var (eps inside the square root), "
              "and leave them unchanged: update them only in training."),
    dict(name="Gradients", probe=probe_gradients, expect=expect_gradients, judge=judge_gradients,
         hint="Let autograd see the whole training forward: gamma and beta require grad, and the batch mean and "
              "variance stay in the graph (no detach, no torch.no_grad around the normalisation)."),
    dict(name="Buffers carry no graph", probe=probe_no_graph, judge=judge_no_graph,
         hint="Update the running statistics inside `with torch.no_grad():` (or from detached statistics), so "
              "they never hold autograd history, and do update them at every training call."),
    dict(name="The momentum 0.3 example", probe=probe_example, expect=expect_example, judge=judge_example,
         hint="Two steps at momentum 0.3 on a batch of identical rows: running_mean = 0.51 * the row and "
              "running_var = 0.7 * 0.7 = 0.49 (the batch variance is 0). Both of shape (5,)."),
]
