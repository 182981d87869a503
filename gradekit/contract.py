"""What an assignment provides: the one contract between an assignment and the kit.

An assignment called NAME is these files (`gradekit new NAME` scaffolds them):

    solutions/NAME/NAME.py              the reference solution, the one source of truth. `# %% ID`
                                        lines split it into notebook cells; a cell with nbgrader
                                        solution regions (### BEGIN SOLUTION ... ### END SOLUTION,
                                        `### PLACEHOLDER line` for what students start from) is
                                        theirs to complete, any other cell is given and locked.
    gradekit/assignments/NAME/
        __init__.py                     ASSIGNMENT = Assignment(...), below
        checks.py                       the core checks: make_inputs() and CHECKS (selfcheck.py
                                        says how a check is written). Shipped to students as
                                        NAME_checks.py; one point each unless `core_points` says
        hidden.py                       (optional) hidden checks, same form, never shipped; zero
                                        points unless grader_config.py sets Grading.hidden_points
        notebook.md                     the notebook's prose in Markdown. A line
                                        `<!-- cell: ID -->` places the solution's cell ID there,
                                        `<!-- self-check -->`, `<!-- tests -->` and `<!-- questions -->`
                                        the cells the kit writes (below)

The cells the kit writes have fixed ids: "self-check" (runs the core checks, prints the summary),
"check-N" (one autograded test cell per core check, what nbgrader's Validate runs),
"hidden-checks" (only while hidden checks carry points) and one answer cell per Question.
Grading skips them all: a submission is scored on its own cells.
"""
import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import gradekit.assignments
from gradekit import selfcheck
from gradekit.errors import KitError

SELF_CHECK_CELL = "self-check"
HIDDEN_CELL = "hidden-checks"
ASSIGNMENTS = Path(gradekit.assignments.__file__).resolve().parent
MARKERS = ("self-check", "tests", "questions")


@dataclass(frozen=True)
class Question:
    """A question answered in prose and graded by hand in formgrader."""

    id: str  # the answer cell's id
    prompt: str  # Markdown, shown above the answer cell
    answer: str  # the model answer: in the source notebook only
    points: float = 1.0


@dataclass(frozen=True)
class Assignment:
    """The facts of one assignment; the files around it follow the layout above."""

    name: str  # folder under source/, release/ and submitted/<student>/; the notebook is NAME.ipynb
    title: str
    defines: tuple  # names the notebook must define for its checks to run (a class, functions...)
    questions: tuple = ()  # Question, in the order the notebook shows them
    core_points: float = 1.0  # points per core check

    @property
    def notebook(self):
        return f"{self.name}.ipynb"

    @property
    def checks_module(self):
        return f"gradekit.assignments.{self.name}.checks"

    @property
    def hidden_module(self):
        return f"gradekit.assignments.{self.name}.hidden"

    @property
    def shipped_checks(self):
        """The core checks' file name beside the released notebook."""
        return f"{self.name}_checks.py"

    @property
    def folder(self):
        return ASSIGNMENTS / self.name

    @property
    def text(self):
        return (self.folder / "notebook.md").read_text()

    def modules(self):
        """(core checks module, hidden checks module or None)."""
        core = importlib.import_module(self.checks_module)
        has_hidden = (self.folder / "hidden.py").is_file()
        return core, importlib.import_module(self.hidden_module) if has_hidden else None

    def scored_checks(self, hidden_points=None):
        """Every check with its number, points and visibility: the core checks, then the hidden."""
        core, hidden = self.modules()
        hidden_points = hidden_points or {}
        found = [Scored(c, self.checks_module, number, self.core_points) for number, c in enumerate(selfcheck.load(core))]
        if hidden is not None:
            found += [Scored(c, self.hidden_module, None, float(hidden_points.get(c.name, 0)))
                      for c in selfcheck.load(hidden)]
        return found

    def kit_cell(self, grade_id):
        """Whether a cell with this nbgrader id is one the kit writes (and grading skips)."""
        return (grade_id in (SELF_CHECK_CELL, HIDDEN_CELL) or re.fullmatch(r"check-\d+", grade_id) is not None
                or grade_id in {q.id for q in self.questions})


@dataclass(frozen=True)
class Scored:
    """A check as the grader counts it."""

    check: selfcheck.Check
    module: str
    number: int | None  # core checks: 0, 1, ...; hidden checks: None
    points: float

    @property
    def hidden(self):
        return self.number is None

    @property
    def name(self):
        return self.check.name

    @property
    def hint(self):
        return self.check.hint

    @property
    def key(self):
        """Column in grades.csv: check_3, hidden_registered_parameters."""
        return f"hidden_{self.name}" if self.hidden else f"check_{self.number}"

    @property
    def id(self):
        """pytest id: 3-test-time-normalization, hidden-registered_parameters."""
        if self.hidden:
            return f"hidden-{self.name}"
        return f"{self.number}-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def label(self):
        """How people see it: "0 - Learnable parameters set correctly", "hidden: registered_parameters"."""
        return f"hidden: {self.name}" if self.hidden else f"{self.number} - {self.name}"

    @property
    def cell(self):
        """The autograded test cell that carries this check's points in nbgrader's gradebook."""
        return HIDDEN_CELL if self.hidden else f"check-{self.number}"


def names():
    return sorted(m.name for m in pkgutil.iter_modules(gradekit.assignments.__path__) if m.ispkg)


class UnknownAssignment(KitError):
    pass


@cache
def get(name):
    """The assignment called `name`, its contract checked; a clear error naming what is missing."""
    if name not in names():
        raise UnknownAssignment(f"unknown assignment {name!r} (known: {', '.join(names()) or 'none'})")
    where = f"gradekit/assignments/{name}"
    try:
        assignment = getattr(importlib.import_module(f"gradekit.assignments.{name}"), "ASSIGNMENT", None)
    except Exception as error:
        raise KitError(f"{where}/__init__.py fails to import: {selfcheck.first_line(error)}") from None
    if not isinstance(assignment, Assignment):
        raise KitError(f"{where}/__init__.py must define ASSIGNMENT = Assignment(...)")
    if assignment.name != name:
        raise KitError(f"{where}: ASSIGNMENT.name is {assignment.name!r}, expected {name!r} (the folder's name)")
    if not assignment.defines or not all(isinstance(n, str) and n.isidentifier() for n in assignment.defines):
        raise KitError(f"{where}: ASSIGNMENT.defines must name what the notebook defines, e.g. ('BatchNorm',)")
    if not (assignment.folder / "checks.py").is_file():
        raise KitError(f"{where}: no checks.py (the core checks)")
    if not (assignment.folder / "notebook.md").is_file():
        raise KitError(f"{where}: no notebook.md (the notebook's text)")
    missing = [m for m in MARKERS if f"<!-- {m} -->" not in assignment.text]
    if missing:
        raise KitError(f"{where}/notebook.md: no " + ", ".join(f"<!-- {m} -->" for m in missing) + " line")
    ids = [q.id for q in assignment.questions]
    if len(set(ids)) != len(ids) or any(not isinstance(q, Question) for q in assignment.questions):
        raise KitError(f"{where}: ASSIGNMENT.questions must be Question(...)s with distinct ids")
    try:
        for module in assignment.modules():
            if module is not None:
                selfcheck.load(module)
    except ValueError as error:
        raise KitError(str(error)) from None
    except Exception as error:
        raise KitError(f"{where}: the checks fail to import: {selfcheck.first_line(error)}") from None
    return assignment
