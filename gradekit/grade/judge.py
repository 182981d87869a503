"""Judgements, in the grader's process: observations from a sandbox in, verdicts out.

Expected values come from inputs this process made itself (`make_inputs()` of each check module),
so nothing the student's code did to torch in the sandbox reaches a comparison.
"""
import importlib
from dataclasses import dataclass, field
from functools import cache

from gradekit.grade.probe import first_line


@dataclass
class CheckResult:
    check: object  # gradekit.assignment.Check
    passed: bool
    message: str = ""

    @property
    def points(self):
        return self.check.points if self.passed else 0.0


@dataclass
class Result:
    """One submission's grade: a status, a one-line message, and a verdict per check."""

    student: str
    assignment: str
    status: str  # ok, or what went wrong (see STATUSES)
    message: str = ""
    checks: list = field(default_factory=list)

    @property
    def ten(self):
        return [r for r in self.checks if not r.check.is_extra]

    @property
    def extra(self):
        return [r for r in self.checks if r.check.is_extra]

    @property
    def score(self):
        return sum(r.points for r in self.checks)

    @property
    def max_score(self):
        return sum(r.check.points for r in self.checks)

    @property
    def passed_ten(self):
        return sum(r.passed for r in self.ten)

    @classmethod
    def all_failed(cls, student, assignment_name, status, message, checks):
        """A submission that could not be probed: every check fails, for the same reason."""
        return cls(student, assignment_name, status, message, [CheckResult(c, False, message) for c in checks])


# Every status a row can have; all but "ok" ask for the instructor's attention.
STATUSES = {
    "ok": "graded",
    "missing": "no notebook where one was expected",
    "misnamed": "a notebook under another name",
    "not-a-notebook": "the file is not a notebook",
    "malformed": "the notebook's JSON is broken",
    "empty": "the notebook has no code",
    "no-class": "the notebook defines no class to grade",
    "timeout": "stopped at the wall-clock limit",
    "cpu-limit": "stopped at the CPU-time limit",
    "memory": "ran out of its memory allowance",
    "exited": "the code ended its own process",
    "crashed": "the process died",
    "sandbox-error": "the sandbox failed (not the student's fault): re-run",
    "unknown-assignment": "no such assignment",
}


# Statuses of submissions whose code never ran: no notebook to write back, no place in pass rates.
NOT_RUN = {"missing", "misnamed", "not-a-notebook", "malformed", "empty", "unknown-assignment", "sandbox-error"}


@cache
def grader_inputs(module_name):
    return importlib.import_module(module_name).make_inputs()


def judge_check(check, observation):
    obs, error = observation
    if error is not None:
        return CheckResult(check, False, error)
    judge = importlib.import_module(check.module).CHECKS[check.index][2]
    try:
        passed, why = judge(grader_inputs(check.module), obs)
    except Exception as exc:  # observations of an unexpected form: a failed check, never a crash
        return CheckResult(check, False, f"unexpected observations: {first_line(exc)}")
    return CheckResult(check, bool(passed), "" if passed else why)


def status_of(run, limits):
    """(status, message) for a probe run, from how the child ended and what it sent."""
    ended = run.ended
    memory_hit = any("MemoryError" in e or "allocate" in e for e in run.cell_errors + [
        err for _, err in run.observations.values() if err])
    if ended.get("ended") == "timeout":
        return "timeout", f"stopped after {limits.wall_seconds:g} s (wall-clock limit)"
    if ended.get("ended") == "sandbox-killed":
        return "crashed", "the code brought its whole sandbox down"
    if ended.get("ended") == "signal":
        signal = ended.get("signal")
        if signal == "SIGXCPU":
            return "cpu-limit", f"used more than {limits.cpu_seconds} s of CPU time"
        return "crashed", f"the process was killed by {signal}" + (" (out of memory?)" if memory_hit else "")
    if not run.complete:
        code = ended.get("code")
        return "exited", f"the code ended its process (exit code {code}) before grading finished"
    if run.missing_class:
        reason = next((e for e in run.cell_errors), "")
        return "no-class", run.missing_class + (f" ({reason})" if reason else "")
    if memory_hit:
        return "memory", f"ran out of memory (cap {limits.memory_mb} MiB)"
    return "ok", "; ".join(run.cell_errors[:3] + run.notes[:1])


def judge_run(student, assignment, run, checks, limits):
    status, message = status_of(run, limits)
    results = []
    for check in checks:
        observation = run.observations.get((check.module, check.index))
        if observation is None:
            why = message or "not run"
            results.append(CheckResult(check, False, f"not reached: {why}"))
        else:
            results.append(judge_check(check, observation))
    return Result(student, assignment.name, status, message, results)
