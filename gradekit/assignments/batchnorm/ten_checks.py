# The BatchNorm exercise's ten checks, verdict for verdict as in the original battery.
#
# Each check has two halves:
#   probe(BatchNorm, inputs) -> observations   drives the student's class, records what it saw;
#   judge(inputs, observations) -> (ok, why)   compares with values it computes itself.
# The autograder runs probes in a sandbox and judges in its own process; the notebook's
# self-check runs both in the student's kernel. This file depends on torch alone, because
# its text is copied into the notebook's self-check cell.
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


def make_inputs():
    """The battery's inputs, drawn in the original order: seed, conv, fc, then the values
    checks 3, 7 and 8 set on the module. `x` is shared by all checks, as in the notebook."""
    torch.manual_seed(SEED)
    conv = torch.randn(*CONV_SHAPE)
    fc = torch.randn(*FC_SHAPE)
    inputs = {"fc": {"x": fc}, "conv": {"x": conv}}
    for layer in LAYERS:
        shape = param_shape(inputs[layer]["x"].shape)
        inputs[layer]["test_mu"] = torch.randn(shape)
        inputs[layer]["test_sigma"] = torch.rand(shape) + 0.01
    for layer in LAYERS:
        inputs[layer]["start_mu"] = torch.randn(param_shape(inputs[layer]["x"].shape))
    for layer in LAYERS:
        inputs[layer]["start_sigma"] = torch.rand(param_shape(inputs[layer]["x"].shape)) + 0.01
    for layer in LAYERS:
        inputs[layer]["pristine"] = inputs[layer]["x"].clone()
    return inputs


# ---- probe helpers ---------------------------------------------------------------------

def _record(t):
    """A tensor as observed now (later in-place changes must not alter it)."""
    return t.detach().clone() if isinstance(t, torch.Tensor) else t


def _x_after(d):
    """The shared input as the original's comparison would read it: None while unchanged.
    A forward that writes into its input changes what later checks see, as in the notebook."""
    return None if torch.equal(d["x"], d["pristine"]) else _record(d["x"])


def _shape(t):
    return tuple(int(n) for n in t.shape)


def _train_forward(BatchNorm, d):
    bn = BatchNorm(d["x"].shape)
    out = bn(d["x"])
    return bn, out


# ---- judge helpers ---------------------------------------------------------------------

def _x(inputs, obs, layer):
    x = obs[layer]["x"]
    return inputs[layer]["pristine"] if x is None else x


def _close(what, got, expected):
    """torch.allclose with its defaults, as the original; anything it rejects is a failure."""
    try:
        if torch.allclose(got, expected):
            return True, ""
        return False, f"{what} differs from the expected values"
    except Exception as error:  # wrong type, shape, dtype or device: the original fails too
        return False, f"{what} cannot be compared: {type(error).__name__}: {_first_line(error)}"


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _all(results):
    failed = [why for ok, why in results if not ok]
    return (not failed), "; ".join(failed)


# ---- the ten checks --------------------------------------------------------------------

def probe_learnable(BatchNorm, inputs):
    obs = {}
    for layer in LAYERS:
        bn = BatchNorm(inputs[layer]["x"].shape)
        obs[layer] = {"gamma": bool(bn.gamma.requires_grad), "beta": bool(bn.beta.requires_grad)}
    return obs


def judge_learnable(inputs, obs):
    return _all([(obs[layer][p], f"{layer}: {p}.requires_grad is False")
                 for layer in LAYERS for p in ("gamma", "beta")])


def _probe_shapes(names):
    def probe(BatchNorm, inputs):
        obs = {}
        for layer in LAYERS:
            bn = BatchNorm(inputs[layer]["x"].shape)
            obs[layer] = {name: _shape(getattr(bn, name)) for name in names}
        return obs
    return probe


def _judge_shapes(names):
    def judge(inputs, obs):
        results = []
        for layer in LAYERS:
            want = param_shape(inputs[layer]["x"].shape)
            for name in names:
                got = tuple(obs[layer][name])
                results.append((got == want, f"{layer}: {name} has shape {got}, expected {want}"))
        return _all(results)
    return judge


def probe_test_norm(BatchNorm, inputs):
    obs = {}
    for layer in LAYERS:
        d = inputs[layer]
        bn = BatchNorm(d["x"].shape)
        mu, sigma = d["test_mu"].clone(), d["test_sigma"].clone()
        bn.moving_mu = mu
        bn.moving_sigma = sigma
        with torch.no_grad():
            bn(d["x"])
        # mu and sigma are read after the forward, as the original reads them.
        obs[layer] = {"x_hat": _record(bn._tmp_x_hat_test), "mu": _record(mu),
                      "sigma": _record(sigma), "x": _x_after(d)}
    return obs


def judge_test_norm(inputs, obs):
    results = []
    for layer in LAYERS:
        o = obs[layer]
        expected = (_x(inputs, obs, layer) - o["mu"]) / torch.sqrt(o["sigma"] + EPS)
        results.append(_close(f"{layer}: _tmp_x_hat_test", o["x_hat"], expected))
    return _all(results)


def _probe_train_attribute(attribute):
    def probe(BatchNorm, inputs):
        obs = {}
        for layer in LAYERS:
            bn, _ = _train_forward(BatchNorm, inputs[layer])
            obs[layer] = {"value": _record(getattr(bn, attribute)), "x": _x_after(inputs[layer])}
        return obs
    return probe


def _judge_train_attribute(attribute, expected_of):
    def judge(inputs, obs):
        return _all([_close(f"{layer}: {attribute}", obs[layer]["value"],
                            expected_of(_x(inputs, obs, layer)))
                     for layer in LAYERS])
    return judge


def _normalised(x):
    return (x - batch_mean(x)) / torch.sqrt(batch_var(x) + EPS)


def _probe_moving(name, start):
    def probe(BatchNorm, inputs):
        obs = {}
        for layer in LAYERS:
            d = inputs[layer]
            bn = BatchNorm(d["x"].shape)
            c = d[start].clone()
            setattr(bn, name, c)
            bn(d["x"])
            # c is read after the forward: an in-place update changes it and fails, as in the original.
            obs[layer] = {"value": _record(getattr(bn, "_tmp_" + name)), "c": _record(c), "x": _x_after(d)}
        return obs
    return probe


def _judge_moving(name, stat):
    def judge(inputs, obs):
        results = []
        for layer in LAYERS:
            o = obs[layer]
            expected = MOMENTUM * o["c"] + (1 - MOMENTUM) * stat(_x(inputs, obs, layer))
            results.append(_close(f"{layer}: _tmp_{name}", o["value"], expected))
        return _all(results)
    return judge


def probe_scale_shift(BatchNorm, inputs):
    obs = {}
    for layer in LAYERS:
        bn, out = _train_forward(BatchNorm, inputs[layer])
        obs[layer] = {"out": _record(out), "out_shape": _shape(out), "gamma": _record(bn.gamma),
                      "beta": _record(bn.beta), "x_hat": _record(bn._tmp_x_hat_train)}
    return obs


def judge_scale_shift(inputs, obs):
    results = []
    for layer in LAYERS:
        o = obs[layer]
        want = tuple(inputs[layer]["x"].shape)
        results.append((tuple(o["out_shape"]) == want,
                        f"{layer}: output has shape {tuple(o['out_shape'])}, expected {want}"))
        try:
            expected = o["gamma"] * o["x_hat"] + o["beta"]
        except Exception as error:
            results.append((False, f"{layer}: gamma * x_hat + beta fails: {_first_line(error)}"))
            continue
        results.append(_close(f"{layer}: output", o["out"], expected))
    return _all(results)


# (name, probe, judge), in the original's order; the index is the check's number.
CHECKS = [
    ("Learnable parameters set correctly", probe_learnable, judge_learnable),
    ("Learnable parameter shapes correct", _probe_shapes(("gamma", "beta")), _judge_shapes(("gamma", "beta"))),
    ("Moving average shapes correct", _probe_shapes(("moving_mu", "moving_sigma")),
     _judge_shapes(("moving_mu", "moving_sigma"))),
    ("Test time normalization", probe_test_norm, judge_test_norm),
    ("Mean computation", _probe_train_attribute("_tmp_mean"), _judge_train_attribute("_tmp_mean", batch_mean)),
    ("Variance computation", _probe_train_attribute("_tmp_var"), _judge_train_attribute("_tmp_var", batch_var)),
    ("Train time normalization", _probe_train_attribute("_tmp_x_hat_train"),
     _judge_train_attribute("_tmp_x_hat_train", _normalised)),
    ("Train time mean moving average", _probe_moving("moving_mu", "start_mu"), _judge_moving("moving_mu", batch_mean)),
    ("Train time variance moving average", _probe_moving("moving_sigma", "start_sigma"),
     _judge_moving("moving_sigma", batch_var)),
    ("Final scale and shift", probe_scale_shift, judge_scale_shift),
]


# ---- running in one process (the notebook's self-check) ----------------------------------

def run_check(number, BatchNorm, inputs):
    """(passed, why) for one check; a check that raises fails with the error."""
    name, probe, judge = CHECKS[number]
    try:
        observations = probe(BatchNorm, inputs)
    except Exception as error:
        return False, f"raised {type(error).__name__}: {_first_line(error)}"
    return judge(inputs, observations)


def run_checks(BatchNorm):
    inputs = make_inputs()
    return [run_check(number, BatchNorm, inputs) for number in range(len(CHECKS))]


def summary(passed):
    """The summary students see: N/10 TESTS PASSED, then each check's verdict, sorted by name."""
    labels = sorted(f"{number} - {name}:" for number, (name, _, _) in enumerate(CHECKS))
    width = max(len(label) for label in labels)
    verdict = {f"{number} - {name}:": ok for number, ((name, _, _), ok) in enumerate(zip(CHECKS, passed))}
    lines = ["", f"{sum(passed)}/{len(CHECKS)} TESTS PASSED:", "#" * (width + 8)]
    lines += [f"{label.ljust(width)} {'Pass' if verdict[label] else '*FAIL*'}" for label in labels]
    return "\n".join(lines)


_SHARED_INPUTS = []


def assert_check(number, BatchNorm):
    """What an autograder test cell runs: raise with the reason when the check fails. The ten
    cells share one set of inputs, as the original's checks do (a forward may write into them)."""
    if not _SHARED_INPUTS:
        _SHARED_INPUTS.append(make_inputs())
    ok, why = run_check(number, BatchNorm, _SHARED_INPUTS[0])
    assert ok, f"check {number} ({CHECKS[number][0]}) failed: {why}"
