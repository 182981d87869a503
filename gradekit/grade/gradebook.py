"""Hand results to nbgrader: scores, submission times and late penalties in its gradebook, and
autograded notebooks in its layout, so formgrader, `nbgrader generate_feedback` and `nbgrader
export` work as they always do.

Grading never writes source/ or release/: an assignment the gradebook does not know yet is
recorded from the committed source notebook by nbgrader's own preprocessors, in memory. The
gradebook is opened twice per run (before grading, to read the cells; after, to write every
score in one transaction), never once per submission.
"""
import warnings
from types import SimpleNamespace

import fastjsonschema
import jsonschema
import nbformat
from nbformat import NotebookNode
from nbgrader.api import (Assignment, Base, Comment, Grade, Gradebook, MissingEntry, Student, SubmittedAssignment,
                          SubmittedNotebook)
from nbgrader.converters import GenerateAssignment
from nbgrader.dbutil import ALEMBIC_DIR
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import AssignLatePenalties, ClearOutput, NbGraderPreprocessor, OverwriteCells, SaveCells
from nbgrader.utils import parse_utc
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import selectinload

from gradekit.errors import KitError
from gradekit.grade.submission import SubmissionError, read_bytes


def open_gradebook(course):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _create_gradebook(course.db_url)
        return Gradebook(course.db_url, course.directory.course_id)


def _create_gradebook(db_url):
    """Make a new gradebook as nbgrader's Gradebook does (its tables, stamped with alembic's
    newest revision), asking alembic for that revision in this process: nbgrader runs `alembic
    heads` in a subprocess for it, which takes seconds."""
    engine = create_engine(db_url, future=True)
    try:
        if inspect(engine).get_table_names():
            return
        from alembic.script import ScriptDirectory  # a third of a second to import, for a new gradebook only
        Base.metadata.create_all(bind=engine)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                               {"head": ScriptDirectory(ALEMBIC_DIR).get_current_head()})
    finally:
        engine.dispose()


def known_cells(course, assignments):
    """{assignment name: the source cells nbgrader keeps for it}, recording any assignment the
    gradebook lacks from its committed source notebook."""
    cells = {}
    with open_gradebook(course) as gradebook:
        for assignment in assignments:
            stem = assignment.notebook.removesuffix(".ipynb")
            try:
                notebook = gradebook.find_notebook(stem, assignment.name)
            except MissingEntry:
                _record_assignment(course, assignment, gradebook)
                notebook = gradebook.find_notebook(stem, assignment.name)
            cells[assignment.name] = SourceCells(notebook)
    return cells


def _record_assignment(course, assignment, gradebook):
    """nbgrader generate_assignment's steps up to SaveCells, on the committed source notebook."""
    path = course.source(assignment)
    if not path.is_file():
        raise KitError(f"{path} is missing: run `make release` to build the assignment first")
    notebook = nbformat.read(str(path), as_version=4)
    gradebook.update_or_create_assignment(assignment.name)
    resources = {"nbgrader": {"db_url": course.db_url, "assignment": assignment.name,
                              "notebook": assignment.notebook.removesuffix(".ipynb")}}
    steps = course.config.GenerateAssignment.get("preprocessors") or \
        GenerateAssignment.class_traits()["preprocessors"].default()
    for step in steps:
        notebook, resources = step(config=course.config).preprocess(notebook, resources)
        if step is SaveCells or issubclass(step, SaveCells):
            return
    raise KitError("nbgrader's GenerateAssignment preprocessors do not include SaveCells")


class SourceCells:
    """A snapshot of what nbgrader knows of an assignment's notebook, for OverwriteCells."""

    def __init__(self, notebook):
        self.source = {c.name: SimpleNamespace(name=c.name, cell_type=c.cell_type, locked=c.locked,
                                               checksum=c.checksum, source=c.source) for c in notebook.source_cells}
        self.graded = {c.name: SimpleNamespace(name=c.name, max_score=c.max_score) for c in notebook.grade_cells}

    def find_source_cell(self, name, notebook, assignment):
        return self._find(self.source, name)

    def find_graded_cell(self, name, notebook, assignment):
        return self._find(self.graded, name)

    @staticmethod
    def _find(cells, name):
        if name not in cells:
            raise MissingEntry(name)
        return cells[name]


class _CompiledSchema(BaseMetadataValidator):
    """nbgrader's per-cell schema check with the schema compiled once. nbgrader's own calls
    `jsonschema.validate`, which checks the schema itself again for every cell: 25 ms a notebook,
    most of what writing an autograded notebook cost. Compiled to code by fastjsonschema (as
    nbformat's own validation is), a valid cell costs microseconds; a cell it refuses is checked
    by jsonschema, whose error (the one nbgrader would give) is raised."""

    def validate_cell(self, cell):
        if "nbgrader" not in cell.metadata:
            return
        version = cell.metadata["nbgrader"].get("schema_version", 0)
        if version < self.schema_version:
            raise SchemaTooOldError(f"Outdated schema version: {version} (expected {self.schema_version})",
                                    version, self.schema_version)
        if version > self.schema_version:
            raise SchemaTooNewError(f"Schema version is too new: {version} (expected {self.schema_version})",
                                    version, self.schema_version)
        try:
            self._fast(cell.metadata["nbgrader"])
        except fastjsonschema.JsonSchemaException:
            error = jsonschema.exceptions.best_match(self._compiled.iter_errors(cell.metadata["nbgrader"]))
            if error is not None:
                raise error


class MetadataChecks(MetadataValidator, _CompiledSchema):
    """nbgrader's MetadataValidator (every check of its current version), schema compiled once."""

    def __init__(self):
        super().__init__()
        self._compiled = jsonschema.validators.validator_for(self.schema)(self.schema)
        self._fast = fastjsonschema.compile(self.schema, use_default=False)  # defaults would fill the cell in


METADATA = MetadataChecks()  # read-only once made: the worker processes share it as forked


class CheckMetadata(NbGraderPreprocessor):
    """nbgrader's CheckCellMetadata step, with the compiled schema."""

    def preprocess(self, nb, resources):
        METADATA.validate_nb(nb)
        return nb, resources


class OverwriteFromSnapshot(OverwriteCells):
    """nbgrader's OverwriteCells (given and test cells restored from the source, points and
    locks checked), reading the source cells from a snapshot instead of the database."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        self.snapshot = cells

    def preprocess(self, nb, resources):
        self.notebook_id = resources["nbgrader"]["notebook"]
        self.assignment_id = resources["nbgrader"]["assignment"]
        self.gradebook = self.snapshot
        return NbGraderPreprocessor.preprocess(self, nb, resources)


def autograded_notebook(submitted_path, assignment, result, cells):
    """The submission in nbgrader's autograded form: outputs cleared, nbgrader metadata checked,
    given and test cells restored, each check's verdict as the output of its test cell. None when
    the notebook cannot be put in that form (its result stands; the row says so)."""
    try:
        notebook = nbformat.reads(read_bytes(submitted_path).decode("utf-8"), as_version=4)
    except (SubmissionError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    resources = {"nbgrader": {"notebook": assignment.notebook.removesuffix(".ipynb"), "assignment": assignment.name}}
    try:
        for step in (ClearOutput(), CheckMetadata(), OverwriteFromSnapshot(cells)):
            notebook, resources = step.preprocess(notebook, resources)
    except (ValidationError, RuntimeError, ValueError, KeyError, TypeError, AttributeError):
        return None
    by_cell = {}
    for r in result.checks:
        by_cell.setdefault(r.check.cell, []).append(r)
    for cell in notebook.cells:
        verdicts = by_cell.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if verdicts:
            text = "".join(f"{r.check.label}: Pass\n" if r.passed else f"{r.check.label}: FAIL: {r.message}\n"
                           for r in verdicts)
            # new_output's node without its schema check: a stream of text is valid by construction
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=text)]
    try:  # as nbgrader will read it back (generate_feedback fails on a grade cell that lost its id)
        METADATA.validate_nb(notebook)
    except (ValidationError, RuntimeError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return nbformat.writes(notebook)


def read_timestamp(folder):
    """The submission time `nbgrader collect` wrote beside the notebook, or None."""
    try:
        text = read_bytes(folder / "timestamp.txt", limit=256).decode("utf-8").strip()
        return parse_utc(text) if text else None
    except (SubmissionError, UnicodeDecodeError, ValueError, OverflowError):
        return None


def record(course, rows):
    """Write [(assignment, Result, timestamp, graded now)] into the gradebook in one transaction,
    those graded now and those it lacks: the auto scores of the test cells, the submission time,
    nbgrader's late penalty. Hand-graded cells keep whatever the instructor entered."""
    penalties = AssignLatePenalties(config=course.config)
    penalties.init_plugin()
    with open_gradebook(course) as gradebook:
        session = gradebook.db
        present = {(student, name) for student, name in session.query(SubmittedAssignment.student_id, Assignment.name)
                   .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)}
        students = {s.id for s in session.query(Student.id)}
        submissions = _submissions(session, {assignment.name for assignment, *_ in rows})
        cell_names = {}  # the assignment's notebook -> {grade cell id: cell name}
        for assignment, result, timestamp, now in rows:
            if not now and (result.student, assignment.name) in present:
                continue
            if result.student not in students:
                session.add(Student(id=result.student))
                students.add(result.student)
            submission = (submissions.get((assignment.name, result.student))
                          or _submission(gradebook, assignment.name, result.student))
            submission.timestamp = timestamp
            notebook = next(n for n in submission.notebooks if n.name == assignment.notebook.removesuffix(".ipynb"))
            scores = {}
            for r in result.checks:
                scores[r.check.cell] = scores.get(r.check.cell, 0.0) + r.points
            if notebook.notebook_id not in cell_names:
                cell_names[notebook.notebook_id] = {cell.id: cell.name for cell in notebook.notebook.grade_cells}
            for grade in notebook.grades:
                name = cell_names[notebook.notebook_id].get(grade.cell_id)
                if name in scores:
                    grade.auto_score = scores[name]
                    grade.needs_manual_grade = False
            # As nbgrader's AssignLatePenalties: the penalty is on the notebook's whole score, hand
            # grades the instructor entered before this run included, and never more than it.
            notebook.late_submission_penalty = None
            late = submission.total_seconds_late
            if late > 0:
                session.flush()
                session.expire(notebook, ["score"])  # a sum the database computes from the grades
                score = notebook.score
                penalty = penalties.plugin_inst.late_submission_penalty(result.student, score, late)
                if penalty is not None:
                    notebook.late_submission_penalty = min(max(penalty, 0), score)
        session.commit()


def _submissions(session, names):
    """{(assignment name, student): submission} of every submission the gradebook holds of the
    assignments `names`, with their notebooks and grades: three queries, where asking per
    submission took one each (and one per notebook and per grade list, a third of a second for
    a class of 105)."""
    query = (session.query(SubmittedAssignment, Assignment.name)
             .join(Assignment, Assignment.id == SubmittedAssignment.assignment_id)
             .filter(Assignment.name.in_(sorted(names)))
             .options(selectinload(SubmittedAssignment.notebooks).selectinload(SubmittedNotebook.grades)))
    return {(name, submission.student_id): submission for submission, name in query}


def _submission(gradebook, assignment_name, student):
    """The student's submission, created with the assignment's structure (as nbgrader's
    add_submission does, without committing)."""
    try:
        return gradebook.find_submission(assignment_name, student)
    except MissingEntry:
        pass
    session = gradebook.db
    assignment = gradebook.find_assignment(assignment_name)
    with session.no_autoflush:
        submission = SubmittedAssignment(assignment=assignment, student_id=student)
        for notebook in assignment.notebooks:
            submitted = SubmittedNotebook(notebook=notebook, assignment=submission)
            for cell in notebook.grade_cells:
                Grade(cell_id=cell.id, notebook=submitted)
            for cell in notebook.solution_cells:
                Comment(cell_id=cell.id, notebook=submitted)
            for cell in notebook.task_cells:
                Comment(cell_id=cell.id, notebook=submitted)
                Grade(cell_id=cell.id, notebook=submitted)
        session.add(submission)  # after the structure: the add cascades down to it
    session.flush()
    return submission

