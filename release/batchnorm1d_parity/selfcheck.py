"""Run an assignment's checks on your own code, in your own kernel.

This file ships beside each released notebook, with the assignment's checks module
(`<assignment>_checks.py`). The notebook's self-check cell is

    from selfcheck import self_check
    self_check("batchnorm_checks", globals())

and each autograder test cell (what nbgrader's Validate button runs) is

    from selfcheck import assert_check
    assert_check("batchnorm_checks", 3, globals())

The kit's autograder runs the same checks, and hidden ones, in a sandbox: there every probe
drives your objects from outside your process (gradekit/grade/remote.py), here it drives them
directly. This file is also where the kit defines what a check is. A checks module defines

    make_inputs() -> dict      every tensor the checks use, drawn from private torch.Generators
    CHECKS = [dict(name=..., probe=..., judge=..., expect=..., hint=...), ...]

    probe(ns, inputs) -> observations
        drives the submission through `ns`: `ns.BatchNorm` is what the notebook defined,
        `ns.torch` the torch it sees, `ns.put(t)` the submission's own copy of an input tensor,
        `ns.read(v)` a value as data, now (v may be a list or dict of them: one request),
        `ns.isinstance(obj, cls)`, `ns.same(a, b)` for `a is b`, `ns.cpu_seconds()` the CPU
        time the submission's process has used (for timing: waits are not counted),
        `ns.once(make, *args)` for `make(ns, *args)` made once and shared by every probe that
        asks with equal arguments (which then only read it; here, and where the autograder
        replays the original's shared inputs, it is made on every call), and
        `with ns.pipelined():` a block whose attribute reads, calls, assignments, `ns.same`
        and `ns.isinstance` the autograder sends together, without waiting for each answer:
        there they give handles, whatever the values are, to pass on or `ns.read`; an error
        surfaces at the next read or the block's end (here, at once).
    expect(inputs) -> expected            (optional) what the judge compares with
    judge(expected, observations) -> (passed, why)
        `why` says what was expected when the check fails; never look at anything but the two.
    hint                                  what to look at when the check fails

Only torch is imported here, so the file works wherever the notebook does.
"""
import contextlib
import importlib
import time

import torch

CHECK_FIELDS = {"name", "probe", "judge", "expect", "hint"}


class Check:
    """One check: a probe that records what the submission does, a judge that compares."""

    def __init__(self, name, probe, judge, expect=None, hint=""):
        self.name, self.probe, self.judge, self.hint = name, probe, judge, hint
        self.expect = expect or (lambda inputs: inputs)

    def verdict(self, expected, observations):
        """(passed, why): the judge's answer; observations it cannot handle fail the check."""
        try:
            passed, why = self.judge(expected, observations)
        except Exception as error:
            return False, f"unexpected results ({first_line(error)})"
        return bool(passed), "" if passed else str(why)


def load(module):
    """The module's checks, checked against the contract above (a clear error naming what is wrong)."""
    where = getattr(module, "__name__", "checks module")
    if not callable(getattr(module, "make_inputs", None)):
        raise ValueError(f"{where}: no make_inputs() function")
    declared = getattr(module, "CHECKS", None)
    if not isinstance(declared, list) or not declared:
        raise ValueError(f"{where}: CHECKS must be a non-empty list of dict(name=..., probe=..., judge=...)")
    checks = []
    for number, fields in enumerate(declared):
        label = f"{where}: check {number}"
        if not isinstance(fields, dict):
            raise ValueError(f"{label} is not a dict")
        if set(fields) - CHECK_FIELDS:
            raise ValueError(f"{label} has unknown fields: {', '.join(sorted(set(fields) - CHECK_FIELDS))}")
        for key in ("name", "probe", "judge"):
            if key not in fields:
                raise ValueError(f"{label} has no {key}")
        if not isinstance(fields["name"], str) or not fields["name"].strip():
            raise ValueError(f"{label}: name must be a non-empty string")
        for key in ("probe", "judge", "expect"):
            if key in fields and not callable(fields[key]):
                raise ValueError(f"{label}: {key} must be a function")
        checks.append(Check(**fields))
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: two checks share a name")
    return checks


def first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


class Local:
    """`ns` in your own kernel: the probe works on your objects themselves."""

    def __init__(self, namespace):
        self._namespace = namespace

    def __getattr__(self, name):
        if name == "torch":
            return torch
        try:
            return self._namespace[name]
        except KeyError:
            raise NameError(f"name {name!r} is not defined") from None

    def put(self, tensor):
        return tensor

    def read(self, value):
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        if type(value) in (list, tuple):
            return type(value)(self.read(v) for v in value)
        if type(value) is dict:
            return {k: self.read(v) for k, v in value.items()}
        return value

    def isinstance(self, obj, cls):
        return isinstance(obj, cls)

    def same(self, a, b):
        return a is b

    def pipelined(self):
        return contextlib.nullcontext()

    def cpu_seconds(self):
        return time.process_time()

    def once(self, make, *args):
        return make(self, *args)  # each check makes its own, as the original battery did


def run_check(check, ns, inputs):
    """(passed, why) for one check run here, as the original battery ran: probe, then judge
    against what the inputs are after the probe (a forward that writes into them counts)."""
    try:
        observations = check.probe(ns, inputs)
    except Exception as error:
        return False, f"raised {first_line(error)}"
    return check.verdict(check.expect(inputs), observations)


def run_checks(module, namespace):
    """[(passed, why)] for every check of `module` on what `namespace` defines, one set of inputs."""
    checks = load(module)
    inputs, ns = module.make_inputs(), Local(namespace)
    return [run_check(check, ns, inputs) for check in checks]


def summary(names, passed):
    """The original battery's summary: N/M TESTS PASSED, then each check's verdict, sorted by name."""
    labels = [f"{number} - {name}:" for number, name in enumerate(names)]
    width = max(len(label) for label in labels)
    lines = ["", f"{sum(passed)}/{len(names)} TESTS PASSED:", "#" * (width + 8)]
    lines += [f"{label.ljust(width)} {'Pass' if ok else '*FAIL*'}" for label, ok in sorted(zip(labels, passed))]
    return "\n".join(lines)


def explain(names, hints, results):
    """One line per failed check: what was expected, and a hint."""
    lines = []
    for number, (name, hint, (passed, why)) in enumerate(zip(names, hints, results)):
        if not passed:
            lines.append(f"{number} - {name}: {why}" + (f"\n    Hint: {hint}" if hint else ""))
    return "\n".join(lines)


def _module(name):
    return importlib.import_module(name) if isinstance(name, str) else name


def self_check(module, namespace):
    """Print the summary, then why each failed check failed and what to try."""
    module = _module(module)
    checks = load(module)
    results = run_checks(module, namespace)
    names = [c.name for c in checks]
    print(summary(names, [passed for passed, _ in results]))
    failures = explain(names, [c.hint for c in checks], results)
    if failures:
        print("\nWhat failed, and what to try:\n" + failures)


_SHARED_INPUTS = {}  # module name -> inputs: the test cells share them, as the original's checks do


def assert_check(module, number, namespace):
    """Raise AssertionError, naming the check and why, when check `number` fails."""
    module = _module(module)
    checks = load(module)
    if module.__name__ not in _SHARED_INPUTS:
        _SHARED_INPUTS[module.__name__] = module.make_inputs()
    check = checks[number]
    passed, why = run_check(check, Local(namespace), _SHARED_INPUTS[module.__name__])
    assert passed, f"check {number} ({check.name}) failed: {why}" + (f"\nHint: {check.hint}" if check.hint else "")


def assert_all(module, namespace):
    """Raise AssertionError listing every failed check of `module` (for a test cell that runs a
    whole module, as the hidden cell does under nbgrader's own autograde)."""
    module = _module(module)
    failed = [f"{check.name}: {why}" for check, (passed, why) in zip(load(module), run_checks(module, namespace))
              if not passed]
    assert not failed, "checks failed:\n" + "\n".join(failed)
