"""Grade a class: every submission under submitted/, in parallel sandboxes, resumably.

What needs grading is known first (from each notebook's digest and the checks' fingerprint); the
sandboxes (some booted ahead by the command) then boot while each assignment's Battery is built
(inputs and expectations, made once) and the gradebook is read once. Workers (one process and one
sandbox each, forked from the grader: workers.py) then grade the submissions the grader hands
them and write their files; the grader saves each row in state.db as it comes back. At the end
the gradebook gets every new score in one transaction while a forked process writes grades.csv and
the report, once.

A submission is graded again only when its notebook, its timestamp, the checks or the caps
changed (or with --force). Whatever goes wrong with one submission (unreadable, hostile, or a
bug of the grader's own) ends in that row's status, and the batch goes on.
"""
import contextlib
import gc
import hashlib
import json
import os
import sys
import time

import torch
from tqdm import tqdm

from gradekit import contract, selfcheck
from gradekit.errors import SandboxError
from gradekit.grade import gradebook, outputs, workers
from gradekit.grade.battery import Battery, fingerprint
from gradekit.grade.discover import discover
from gradekit.grade.results import RETRY, Result
from gradekit.grade.sandbox import Sandbox, check_mode, start_all
from gradekit.grade.state import State
from gradekit.grade.submission import SubmissionError, code_cells, read_bytes
from gradekit.grade.workers import alongside
from gradekit.run import heap


def batteries_for(course, names):
    return {name: Battery(contract.get(name), course.grading.hidden_points) for name in sorted(names)}


def autograde(course, workers=None, students=None, force=False, progress=None, timeline=None, booted=()):
    """Grade what is new or changed; return every row (Result), in a stable order. `booted`:
    sandboxes started ahead (sandbox.boot_ahead), used first; those not needed are stopped at once.
    `timeline`, a dict, receives when each phase ended (time.monotonic()), for `make bench`."""
    timeline = {} if timeline is None else timeline
    timeline["start"] = time.monotonic()
    heap.keep_freed_memory()
    # The workers are the parallelism: each judgement runs on one core. OpenMP's extra threads
    # would spin between operations on cores the sandboxes need (about 12 ms a T04 submission).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _autograde(course, workers, students, force, progress, timeline, list(booted))
    finally:
        torch.set_num_threads(threads)


def _autograde(course, workers, students, force, progress, timeline, booted):
    check_mode(course.sandbox.mode)
    if course.sandbox.mode == "none":
        from gradekit.grade.sandbox import WEAK_MODE
        print(f"warning: {WEAK_MODE}", file=sys.stderr)
    submissions = discover(course, students)
    hidden_points = course.grading.hidden_points
    names = sorted({s.assignment for s in submissions if s.assignment in contract.names()})
    assignments = {name: contract.get(name) for name in names}
    checks = {name: assignment.scored_checks(hidden_points) for name, assignment in assignments.items()}
    prints = {name: fingerprint(checks[name], hidden_points) for name in names}
    state = State(course.autograded / "state.db")
    sandboxes = []
    try:
        graded = state.all()
        results, todo, unwritten, changed = {}, [], [], set()
        for s in submissions:
            if s.problem:
                results[s.key] = Result.failed(s.student, s.assignment, *s.problem, checks.get(s.assignment, []))
                continue
            digest = _digest(s, prints[s.assignment], course)
            saved = graded.get(s.key)
            if saved and saved[0] == digest and not force:
                result = Result.from_record(s.student, s.assignment, saved[1], checks[s.assignment])
                results[s.key] = result
                if not outputs.written(course, assignments[s.assignment], result):
                    unwritten.append((s, result))
                continue
            todo.append((s, digest))
        count = max(1, min(workers or course.grading.worker_count(), len(todo)))
        needed = count if todo else 0
        sandboxes = booted[:needed] + [Sandbox() for _ in range(len(booted), needed)]
        for sandbox in booted[needed:]:
            sandbox.stop()
        for sandbox in sandboxes:
            sandbox.configure(course.sandbox, workers=count)
        start_all(sandboxes[:os.cpu_count() or 1])  # one per core boots now; any more, once one is up
        batteries = batteries_for(course, {s.assignment for s, _ in todo})  # while the sandboxes boot
        cells = gradebook.known_cells(course, list(assignments.values()))
        for s, result in unwritten:
            outputs.write_submission(course, assignments[s.assignment], result, s.notebook, cells[s.assignment])
        timeline["prepared"] = time.monotonic()
        with _grading_heap():
            for s, result in _grade_all(course, todo, batteries, cells, state, sandboxes, progress, timeline):
                results[s.key] = result
                changed.add(s.key)
    finally:
        for sandbox in sandboxes:
            sandbox.stop()
        state.close()
    rows = [results[s.key] for s in submissions]
    timeline["graded"] = time.monotonic()
    columns = {}
    for name in names:
        for check in checks[name]:
            columns.setdefault(check.key, check)
    with alongside(outputs.write_class, course, rows, list(columns.values())):
        _record(course, submissions, rows, changed, assignments)
        timeline["recorded"] = time.monotonic()
    timeline["written"] = time.monotonic()
    return rows


@contextlib.contextmanager
def _grading_heap():
    """What exists when grading starts (imports, batteries, the class) lives through it: frozen,
    the cyclic collector walks only what grading makes. Collection is on while grading; the CLI
    turns it off while it imports (half a million objects that all live on: 0.5 s of collections
    that find nothing)."""
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()


def _digest(submission, checks_fingerprint, course):
    """Changes when anything that decides this row changes: the notebook, its submission time,
    the checks and their points, the caps."""
    digest = hashlib.sha256(checks_fingerprint.encode())
    digest.update(json.dumps(course.sandbox.trait_values(), sort_keys=True, default=str).encode())
    for name in (submission.notebook, submission.folder / "timestamp.txt"):
        try:
            digest.update(hashlib.sha256(read_bytes(name)).digest())
        except SubmissionError as error:
            digest.update(str(error).encode())
    return digest.hexdigest()


def _grade_all(course, todo, batteries, cells, state, sandboxes, progress, timeline):
    """Yield (submission, Result) as the workers finish them, one worker process per sandbox."""

    def job(sandbox, number):  # in the worker process
        submission, _ = todo[number]
        return _grade_one(course, sandbox, submission, batteries[submission.assignment],
                          cells[submission.assignment]).record()

    timeline["ready"], timeline["finished"] = [], []
    with workers.Workers(sandboxes, job) as pool:
        bar = tqdm(total=len(todo), unit="submission", desc="grading", file=sys.stderr,
                   disable=None if progress is None else not progress)  # None: only on a terminal
        for number, record in pool.answers(len(todo)):
            submission, digest = todo[number]
            checks = batteries[submission.assignment].checks
            if record is None:
                result = Result.failed(submission.student, submission.assignment, "grader-error",
                                       "the grading process ended while grading this submission: re-run, "
                                       "and report it", checks)
            else:
                result = Result.from_record(submission.student, submission.assignment, record, checks)
            if result.status not in RETRY:
                state.save(submission.student, submission.assignment, digest, result.record())
            timeline["finished"].append(time.monotonic())
            bar.update()
            bar.set_postfix_str(f"{submission.student[:20]}: {result.status}", refresh=False)
            yield submission, result
        bar.close()
        timeline["ready"], timeline["worker_bytes"] = pool.ready, pool.private_bytes


def _grade_one(course, sandbox, submission, battery, cells):
    """One row, whatever happens: the fault boundary of a submission."""
    assignment = battery.assignment
    try:
        try:
            source = code_cells(submission.notebook, assignment.kit_cell)
        except SubmissionError as error:
            result = Result.failed(submission.student, assignment.name, error.status, str(error), battery.checks)
        else:
            try:
                result = battery.grade(sandbox, submission.student, source)
            except SandboxError as error:  # not the student's doing: not saved, so a re-run retries it
                return Result.failed(submission.student, assignment.name, "sandbox-error", str(error), battery.checks)
        note = outputs.write_submission(course, assignment, result, submission.notebook, cells)
        if note:
            result.message = "; ".join(m for m in (result.message, note) if m)
        return result
    except Exception as error:  # a bug of the grader's own: this row says so, the class goes on
        return Result.failed(submission.student, assignment.name, "grader-error",
                             f"the grader failed on this submission ({selfcheck.first_line(error)}): please report it",
                             battery.checks)


def _record(course, submissions, rows, changed, assignments):
    """Scores into nbgrader's gradebook: the rows graded now, and any the gradebook lacks."""
    candidates = [(assignments[submission.assignment], result, gradebook.read_timestamp(submission.folder),
                   submission.key in changed)
                  for submission, result in zip(submissions, rows)
                  if result.ran and result.status not in RETRY and submission.assignment in assignments]
    if candidates:
        gradebook.record(course, candidates)


def needs_attention(results):
    return [r for r in results if r.status != "ok"]


def grade_file(course, assignment, path, student=None, sandbox=None):
    """Grade one notebook (or .py file): `gradekit check`, `make solution`, the pytest battery,
    Gradescope. In `sandbox` where given (configured here, stopped by its owner; each submission
    has a fresh world in it), else in a sandbox of its own. A file that cannot be read raises
    SubmissionError (one line)."""
    cells = code_cells(path, assignment.kit_cell)
    battery = Battery(assignment, course.grading.hidden_points)
    with _grading_heap():
        if sandbox is not None:
            return battery.grade(sandbox.configure(course.sandbox), student or str(path), cells)
        with Sandbox(course.sandbox) as sandbox:
            return battery.grade(sandbox, student or str(path), cells)
