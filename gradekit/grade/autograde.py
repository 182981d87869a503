"""Grade a class: every submitted/<student>/<assignment>/<notebook>.ipynb, in parallel sandboxes.

Resumable: each finished submission is saved at once in autograded/state.json (atomically),
keyed by a digest of the notebook's bytes and of the battery; a re-run grades only what is new or
changed, and an interrupted run picks up where it stopped. The outputs (grades.csv, gradebook,
autograded notebooks, feedback, Gradescope results, class report) are then written from that state.
"""
import hashlib
import importlib
import json
import queue
import sys
import threading
from pathlib import Path

from gradekit import assignment as assignments
from gradekit import config as kit_config
from gradekit.errors import SandboxError
from gradekit.grade import gradebook, outputs, report
from gradekit.grade.judge import NOT_RUN, CheckResult, Result, judge_run
from gradekit.grade.sandbox import WEAK_MODE_WARNING, Worker, resolve_mode
from gradekit.notebook import SubmissionError, code_cells
from gradekit.store import write_atomically

STATE = "state.json"


def discover(course):
    """(student, assignment name, notebook path or None, problem or None) for each submission folder."""
    found = []
    submitted = course / "submitted"
    for student_dir in sorted(p for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []:
        assignment_dirs = sorted(p for p in student_dir.iterdir() if p.is_dir())
        if not assignment_dirs:
            found.append((student_dir.name, "", None, ("missing", "no assignment folder in the submission")))
        for folder in assignment_dirs:
            try:
                assignment = assignments.get(folder.name)
            except assignments.UnknownAssignment as error:
                found.append((student_dir.name, folder.name, None, ("unknown-assignment", str(error))))
                continue
            notebook = folder / assignment.notebook
            if notebook.is_file():
                found.append((student_dir.name, folder.name, notebook, None))
                continue
            others = sorted(p.name for p in folder.glob("*.ipynb"))
            if others:
                problem = ("misnamed", f"expected {assignment.notebook}, found {', '.join(others)}: rename it and re-run")
            else:
                problem = ("missing", f"no {assignment.notebook} in the submission")
            found.append((student_dir.name, folder.name, None, problem))
    return found


def battery_fingerprint(assignment, limits, grading):
    """Changes when anything that decides a verdict changes: the check modules, the caps, the points."""
    digest = hashlib.sha256()
    for module in assignment.modules:
        digest.update(Path(importlib.import_module(module).__file__).read_bytes())
    digest.update(json.dumps([limits.trait_values(), grading.extra_points], sort_keys=True, default=str).encode())
    return digest.hexdigest()


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream

    def step(self, label):
        self.done += 1
        if self.stream is None:
            return
        width = 30
        filled = width * self.done // max(self.total, 1)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label[:30]:<30}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def autograde(course=".", workers=None, quiet=False):
    """Grade everything new or changed; return every row (list of Result), in a stable order."""
    course = Path(course)
    config = kit_config.load(course)
    limits, grading = kit_config.Sandbox(config=config), kit_config.Grading(config=config)
    if resolve_mode(limits.mode) == "none":
        why = "Sandbox.mode is 'none'" if limits.mode == "none" else "bubblewrap is not available"
        print(f"warning: {why}: {WEAK_MODE_WARNING}", file=sys.stderr)
    out = course / "autograded"
    state_path = out / STATE
    state = _load_state(state_path)
    submissions = discover(course)

    problems, todo, batteries = {}, [], {}  # batteries: name -> (checks, fingerprint), made once
    for student, name, notebook, problem in submissions:
        key = f"{student}/{name}"
        if problem:
            problems[key] = Result(student, name, *problem, [])
            continue
        assignment = assignments.get(name)
        if name not in batteries:
            batteries[name] = (assignment.checks(grading.extra_points), battery_fingerprint(assignment, limits, grading))
        checks, fingerprint = batteries[name]
        digest = hashlib.sha256(notebook.read_bytes()).hexdigest() + fingerprint
        if state.get(key, {}).get("digest") == digest:
            continue  # unchanged since it was graded
        todo.append((key, student, assignment, checks, notebook, digest))

    progress = Progress(len(todo), stream=None if quiet else sys.stderr)
    lock = threading.Lock()

    def save(key, result, digest):
        with lock:
            state[key] = {"digest": digest, "result": to_dict(result)}
            write_atomically(state_path, json.dumps(state, indent=1, sort_keys=True))
            progress.step(key)

    _grade_all(todo, limits, workers or grading.worker_count(), save)
    results = []
    for student, name, _notebook, _problem in submissions:
        key = f"{student}/{name}"
        if key in problems:
            results.append(problems[key])
        else:
            results.append(from_dict(state[key]["result"], batteries[name][0]))
    return results


def _load_state(path):
    """What earlier runs graded; an unreadable file (edited by hand, say) means grading everything again."""
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
        if isinstance(state, dict):
            return state
    except (ValueError, OSError):
        pass
    print(f"warning: {path} is unreadable; grading every submission again", file=sys.stderr)
    return {}


def _grade_all(todo, limits, worker_count, save):
    """Grade `todo` on `worker_count` sandboxes (one thread each); `save` is called as each finishes."""
    jobs = queue.Queue()
    for job in todo:
        jobs.put(job)
    errors = []

    def work():
        sandboxes = {}
        try:
            while True:
                try:
                    key, student, assignment, checks, notebook, digest = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    cells = code_cells(notebook)
                except SubmissionError as error:
                    save(key, Result.all_failed(student, assignment.name, error.status, str(error), checks), digest)
                    continue
                if assignment.name not in sandboxes:
                    sandboxes[assignment.name] = Worker(assignment, limits, limits.mode, workers=worker_count)
                try:
                    run = sandboxes[assignment.name].run(cells, checks)
                except SandboxError as error:  # not the student's doing: no digest, so a re-run retries it
                    save(key, Result.all_failed(student, assignment.name, "sandbox-error", str(error), checks), "")
                    continue
                save(key, judge_run(student, assignment, run, checks, limits), digest)
        except Exception as error:  # a grader bug: stop this thread, report after the others finish
            errors.append(error)
        finally:
            for sandbox in sandboxes.values():
                sandbox.stop()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(worker_count, len(todo))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def to_dict(result):
    return {"student": result.student, "assignment": result.assignment, "status": result.status,
            "message": result.message,
            "checks": {r.check.key: {"passed": r.passed, "message": r.message} for r in result.checks}}


def from_dict(data, checks):
    verdicts = data.get("checks", {})
    results = [CheckResult(c, verdicts.get(c.key, {}).get("passed", False),
                           verdicts.get(c.key, {}).get("message", "not graded")) for c in checks]
    return Result(data["student"], data["assignment"], data["status"], data["message"], results)


def needs_attention(results):
    return [r for r in results if r.status != "ok"]


def write_outputs(course, results):
    """Everything the class's grading produces, from the graded rows."""
    course = Path(course)
    out = course / "autograded"
    grading = kit_config.Grading(config=kit_config.load(course))
    graded_assignments = sorted({r.assignment for r in results if r.checks})
    columns = {}
    for name in graded_assignments:
        for check in assignments.get(name).checks(grading.extra_points):
            columns.setdefault(check.key, check)
    outputs.write_grades_csv(out / "grades.csv", results, list(columns.values()))
    for name in graded_assignments:
        gradebook.ensure_assignment(course, assignments.get(name))
    for result in results:
        if not result.checks:
            continue
        assignment = assignments.get(result.assignment)
        folder = out / result.student / result.assignment
        gradebook.record(course, assignment, result)
        submitted = course / "submitted" / result.student / result.assignment / assignment.notebook
        if result.status not in NOT_RUN:
            gradebook.write_autograded_notebook(course, assignment, result, submitted, folder / assignment.notebook)
        outputs.write_gradescope_results(folder / "results.json", result)
        write_atomically(folder / "feedback.html", outputs.feedback_html(result, grading.show_hints))
    report.write(results, list(columns.values()), out)
