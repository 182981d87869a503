"""An assignment's checks, run against one submission in a sandbox and judged here.

A `Battery` is made once per assignment, before any worker starts: every input (from private
generators, never torch's global one) and every expectation computed from pristine inputs. It is
read-only afterwards, so the worker processes share it as forked.

Grading a submission runs each check's probe against the submission's objects (remote.py) and
judges the observations here, against the grader's own values. The original battery let a
forward that writes into its input change what later checks expect, and judged a value like
check 7's `c` after the forward had run. Both are reproduced from what the submission did to
the tensors it was given (`Session.writes`): when it wrote into any, the core checks run again
in a fresh process with the inputs shared across checks, as in the original notebook, and are
judged against the inputs as the submission left them. A check passes only when it passes with
pristine inputs *and* under the original's semantics: writing into inputs never earns a check,
and honest in-place writers keep the original's verdicts.
"""
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

import gradekit.run
from gradekit import selfcheck
from gradekit.grade import budget, remote
from gradekit.grade.remote import Ended, Namespace, RemoteError
from gradekit.grade.results import CheckResult, Result, status_of

MIN_JUDGE_ELEMENTS = 1 << 20
JUDGE_FACTOR = 8


@dataclass
class Run:
    """What one pass of the probes over a submission's process gave."""

    cell_errors: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # names the notebook should define but does not
    outcomes: list = field(default_factory=list)  # per check: ("observed", obs, view) or ("raised", why)
    wrote: bool = False  # the submission wrote into tensors it was given
    ended: dict = field(default_factory=dict)  # how the process ended (from the sandbox)
    cut: str | None = None  # why the session ended before the probes did


class Battery:
    def __init__(self, assignment, hidden_points=None):
        self.assignment = assignment
        self.checks = assignment.scored_checks(hidden_points)
        self.inputs = {m: importlib.import_module(m).make_inputs() for m in {c.module for c in self.checks}}
        made = {}  # checks sharing an expectation function compute it once
        for c in self.checks:
            key = (c.check.expect, c.module)
            if key not in made:
                made[key] = c.check.expect(self.inputs[c.module])
        self.expected = [made[(c.check.expect, c.module)] for c in self.checks]
        # What a judgement may build from a submission's answers: a few times the assignment's own
        # largest tensor (see budget.py).
        self.element_limit = max(MIN_JUDGE_ELEMENTS, JUDGE_FACTOR * largest_tensor((self.inputs, self.expected)))
        self.fingerprint = fingerprint(self.checks, hidden_points)
        self.preload = remote.Preload(tensors_in(self.inputs))

    def grade(self, sandbox, student, cells):
        """The submission's Result. `cells` are [(number as Jupyter counts it, source)]."""
        first = self._run(sandbox, cells, shared=False)
        second = self._run(sandbox, cells, shared=True) if first.wrote else None
        status, message = status_of(first, sandbox.settings, second)
        results = []
        for index, scored in enumerate(self.checks):
            passed, why = self._verdict(index, first, message)
            if passed and second is not None and not scored.hidden:
                passed, why = self._verdict(index, second, message, pristine=False)
            results.append(CheckResult(scored, passed, why))
        return Result(student, self.assignment.name, status, message, results)

    def _verdict(self, index, run, status_message, pristine=True):
        if index >= len(run.outcomes):
            return False, f"not reached: {status_message or 'the notebook did not define what the checks use'}"
        outcome = run.outcomes[index]
        if outcome[0] == "raised":
            return False, f"raised {outcome[1]}"
        _, observations, view = outcome
        check = self.checks[index].check
        with budget.ElementBudget(self.element_limit):
            try:
                expected = self.expected[index] if pristine else check.expect(view)
            except Exception as error:  # what the submission left in its inputs breaks the expectation
                return False, f"unexpected results ({selfcheck.first_line(error)})"
            return check.verdict(expected, observations)

    def _run(self, sandbox, cells, shared):
        """One pass: a fresh process, the cells, then each check's probe (the core checks only
        when `shared`, with their inputs shared across checks as in the original notebook)."""
        run = Run()
        session = sandbox.open(self.preload)
        try:
            reply = session.request("cells", cells=cells, names=list(self.assignment.defines))
            run.cell_errors = [str(e) for e in reply["errors"]][:20]
            defined = set(reply["defined"])
            run.missing = [n for n in self.assignment.defines if n not in defined]
            if not run.missing:
                self._probe(session, run, shared)
        except Ended as error:
            run.cut = str(error)
        except (KeyError, TypeError, RemoteError) as error:  # an answer of the wrong shape: the protocol was broken
            run.cut = f"protocol: {error}"
        finally:
            run.ended = sandbox.finish(session)
            run.ended["session"] = session.ended
        return run

    def _probe(self, session, run, shared):
        ns = Namespace(session, share=not shared)  # its fixtures (ns.once) serve the whole pass
        seen = {}  # id(grader tensor) -> its value in the submission's process now (shared pass)
        for scored in self.checks:
            if shared and scored.hidden:
                break
            if not shared:
                session.new_scope()  # every check gets fresh copies of its inputs
            inputs = self.inputs[scored.module]
            try:
                observations = _as_data(scored.check.probe(ns, inputs), ns)
                outcome = ["observed", observations, None]
            except RemoteError as error:
                outcome = ["raised", str(error)]
            except Ended:
                raise
            except Exception as error:  # the probe choked on what the submission answered
                outcome = ["raised", selfcheck.first_line(error)]
            for tensor, now in session.writes():
                run.wrote = True
                seen[id(tensor)] = now
            if shared and outcome[0] == "observed":
                outcome[2] = _substitute(inputs, seen)
            run.outcomes.append(tuple(outcome))


def fingerprint(checks, hidden_points):
    """Changes when anything that decides a verdict changes: the checks, the points, the grading
    code. Cheap (no inputs made): a re-run knows what to grade before any Battery is built."""
    digest = hashlib.sha256()
    sources = {Path(importlib.import_module(m).__file__) for m in {c.module for c in checks}}
    sources |= {Path(__file__), Path(remote.__file__), Path(budget.__file__),
                *Path(gradekit.run.__file__).parent.glob("*.py")}
    for path in sorted(sources):
        digest.update(path.read_bytes())
    digest.update(json.dumps(hidden_points or {}, sort_keys=True).encode())
    return digest.hexdigest()


def tensors_in(value):
    """The tensors in nested lists, tuples and dicts, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if type(value) in (list, tuple):
        return [t for v in value for t in tensors_in(v)]
    if type(value) is dict:
        return [t for v in value.values() for t in tensors_in(v)]
    return []


def largest_tensor(value):
    """Elements of the largest tensor in nested lists, tuples and dicts."""
    return max((t.numel() for t in tensors_in(value)), default=0)


def _as_data(value, ns):
    """Observations with any proxy a probe left in them read as data (judges see data only)."""
    if isinstance(value, remote.Remote):
        return ns.read(value)
    if type(value) in (list, tuple):
        return type(value)(_as_data(v, ns) for v in value)
    if type(value) is dict:
        return {k: _as_data(v, ns) for k, v in value.items()}
    return value


def _substitute(inputs, seen):
    """The inputs as the submission's process holds them now: each tensor it wrote into replaced."""
    if isinstance(inputs, torch.Tensor):
        return seen.get(id(inputs), inputs)
    if type(inputs) in (list, tuple):
        return type(inputs)(_substitute(v, seen) for v in inputs)
    if type(inputs) is dict:
        return {k: _substitute(v, seen) for k, v in inputs.items()}
    return inputs
