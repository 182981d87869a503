"""A submission's grade, and how it renders: a grades.csv row, Gradescope's results.json, the
student's feedback page, and the record resumable grading keeps.

Every message in a result may hold text the submission chose (an exception's message, a type
name, a value a judgement quotes); it was cleaned where it left the sandbox (wire.clean_text), is
cleaned and bounded again here, whatever the grader made of it since (str() of a list the
submission answered is not bounded by the wire), and is escaped again by each rendering: HTML by
jinja2's autoescape, spreadsheet formulas by `csv_cell`.
"""
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2

from gradekit.run.wire import clean_text

TEMPLATES = Path(__file__).resolve().parent / "templates"

# Every status a row can have, and what it means; all but "ok" ask for the instructor's attention.
STATUSES = {
    "ok": "graded",
    "missing": "no notebook where one was expected",
    "misnamed": "a notebook under another name",
    "not-a-notebook": "the file is not a notebook (or is a link, a folder or a device)",
    "malformed": "the notebook's JSON is broken",
    "empty": "the notebook has no code",
    "not-defined": "the notebook does not define what the checks use",
    "timeout": "stopped at the wall-clock limit",
    "cpu-limit": "stopped at the CPU-time limit",
    "memory": "ran out of its memory allowance",
    "exited": "the code ended its own process",
    "crashed": "the process died",
    "protocol": "the code interfered with the grader's channel",
    "too-much-data": "the code sent more data than a submission may",
    "sandbox-error": "the sandbox failed (not the student's fault): re-run",
    "grader-error": "the grader failed on this submission (a bug of the kit's): re-run, and report it",
    "unknown-assignment": "no such assignment",
}
# Submissions whose code never ran: no autograded notebook, no place in means and pass rates.
NOT_RUN = {"missing", "misnamed", "not-a-notebook", "malformed", "empty", "unknown-assignment", "sandbox-error",
           "grader-error"}
RETRY = {"sandbox-error", "grader-error"}  # not saved as graded: the next run grades them again
MAX_MESSAGE = 2000  # characters of any one message a row or a check carries


@dataclass
class CheckResult:
    check: object  # gradekit.contract.Scored
    passed: bool
    message: str = ""

    def __post_init__(self):
        self.message = clean_text(self.message, MAX_MESSAGE)

    @property
    def points(self):
        return self.check.points if self.passed else 0.0


@dataclass
class Result:
    """One submission's grade: a status, a one-line message, a verdict per check."""

    student: str
    assignment: str
    status: str
    message: str = ""
    checks: list = field(default_factory=list)

    def __post_init__(self):
        self.message = clean_text(self.message, MAX_MESSAGE)

    @classmethod
    def failed(cls, student, assignment, status, message, checks):
        """A submission that could not be graded: every check fails for the same reason."""
        return cls(student, assignment, status, message, [CheckResult(c, False, message) for c in checks])

    @property
    def core(self):
        return [r for r in self.checks if not r.check.hidden]

    @property
    def hidden(self):
        return [r for r in self.checks if r.check.hidden]

    @property
    def score(self):
        return sum(r.points for r in self.checks)

    @property
    def max_score(self):
        return sum(r.check.points for r in self.checks)

    @property
    def ran(self):
        """Whether the submission's code ran: only those count in class means and pass rates."""
        return self.status not in NOT_RUN

    @property
    def code_did_not_run(self):
        """No check could look at the code: one reason explains every failure."""
        return bool(self.checks) and all(not r.passed and r.message.startswith("not reached") for r in self.checks)

    # ---- renderings -------------------------------------------------------------------

    def record(self):
        """What resumable grading stores (state.py), and from_record reads back."""
        return {"status": self.status, "message": self.message,
                "checks": {r.check.key: [r.passed, r.message] for r in self.checks}}

    @classmethod
    def from_record(cls, student, assignment, record, checks):
        verdicts = record.get("checks", {})
        results = [CheckResult(c, *verdicts.get(c.key, [False, "not graded"])) for c in checks]
        return cls(student, assignment, record["status"], record["message"], results)

    def csv_row(self, columns):
        """Values for grades.csv, in `columns` order (see outputs.grades_csv)."""
        verdict = {r.check.key: r for r in self.checks}
        row = {"student_id": self.student, "assignment": self.assignment, "score": number(self.score),
               "max_score": number(self.max_score), "status": self.status, "message": self.message}
        for key in columns:
            if key in verdict:
                r = verdict[key]
                row[key] = int(r.passed) if r.check.hidden else number(r.points)
        return [csv_cell(row.get(key, "")) for key in columns]

    def gradescope(self):
        """Gradescope's results.json. Hidden checks stay hidden until grades are published; the
        total score is always visible."""
        tests = []
        for r in self.checks:
            test = {"name": r.check.label, "status": "passed" if r.passed else "failed",
                    "output": "" if r.passed else f"{r.message}\nHint: {r.check.hint}".strip(),
                    "visibility": "after_published" if r.check.hidden else "visible"}
            if r.check.points:  # a check worth nothing shows its status alone, not "0.0 / 0.0"
                test.update(score=r.points, max_score=r.check.points)
            tests.append(test)
        output = "" if self.status == "ok" else f"{self.status}: {self.message}"
        return {"score": self.score, "output": output, "visibility": "visible",
                "stdout_visibility": "hidden", "tests": tests}

    def feedback_html(self, show_hints=True, questions=()):
        """The student's page: the score and what it counts, each check, and what to try."""
        return template("feedback.html.j2").render(
            result=self, show_hints=show_hints, questions=questions, number=number,
            question_points=sum(q.points for q in questions))


def number(value):
    return int(value) if float(value).is_integer() else round(value, 3)


def csv_cell(value):
    """A value a spreadsheet shows as text: a leading =, +, -, @, tab or CR would start a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@cache
def template(name):
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(name)


def status_of(run, settings, second=None):
    """(status, message) of a graded submission, from how its process(es) ended and what they said.
    The grader's own reasons come first: a process that dies after the grader hung up on it (by
    SIGPIPE, writing the rest of a refused answer) died of the grader's decision."""
    for r in (run, second) if second else (run,):
        ended, session = r.ended, r.ended.get("session")
        if ended.get("lost"):
            return "sandbox-error", "the sandbox stopped answering while grading (not your code's fault): re-run"
        if ended.get("memory"):  # whatever followed (a parent waiting on a killed child times out)
            return "memory", f"ran out of memory: its processes together may hold {settings.memory_mb} MiB"
        if session == "timeout" or ended.get("killed"):
            return "timeout", f"stopped after {settings.wall_seconds:g} s (wall-clock limit)"
        if session == "protocol":
            if "over the budget" in (r.cut or ""):
                return "too-much-data", f"sent the grader more than {settings.answer_mb} MiB of data"
            return "protocol", "the code wrote into the grader's channel, so its answers could not be read"
        if ended.get("signal") == "SIGXCPU":
            return "cpu-limit", f"used more than {settings.cpu_seconds} s of CPU time"
        if ended.get("signal"):
            return "crashed", f"the process was killed by {ended['signal']}" + (" (out of memory?)" if _memory(r) else "")
        if session == "closed":
            code = ended.get("exit")
            return "exited", f"the code ended its own process (exit code {code}) before grading finished"
    if any(_memory(r) for r in (run, second) if r):
        return "memory", f"ran out of memory (cap {settings.memory_mb} MiB)"
    if run.missing:
        reason = run.cell_errors[0] if run.cell_errors else "no cell defines it"
        return "not-defined", f"the notebook does not define {', '.join(run.missing)} ({reason})"
    return "ok", "; ".join(run.cell_errors[:3])


def _memory(run):
    texts = run.cell_errors + [o[1] for o in run.outcomes if o[0] == "raised"]
    return any("MemoryError" in t or "can't allocate memory" in t or "bad_alloc" in t for t in texts)
