"""Hand results to nbgrader: scores in its gradebook and autograded notebooks in its layout, so
`nbgrader generate_feedback`, `nbgrader export` and formgrader (for the hand-graded questions) work."""
import os
import warnings

import nbformat
from nbformat.v4 import new_output
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import OverwriteCells

from gradekit.assign.release import nbgrader_env, release
from gradekit.store import write_atomically


def db_url(course):
    os.environ["PATH"] = nbgrader_env()["PATH"]  # nbgrader's Gradebook runs `alembic` from PATH
    return f"sqlite:///{(course / 'gradebook.db').resolve()}"


def ensure_assignment(course, assignment):
    """The gradebook knows an assignment's grade cells once nbgrader has generated it."""
    with Gradebook(db_url(course)) as gradebook:
        try:
            gradebook.find_notebook(_stem(assignment), assignment.name)
            return
        except MissingEntry:
            pass
    release(assignment, course)


def record(course, assignment, result):
    """Scores of the autograded cells (check-0 ... check-9, extra-checks) for one student."""
    with Gradebook(db_url(course)) as gradebook, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's add_submission trips SQLAlchemy autoflush warnings
        gradebook.update_or_create_student(result.student)
        try:
            gradebook.find_submission(assignment.name, result.student)
        except MissingEntry:
            gradebook.add_submission(assignment.name, result.student)
        for cell_id, score in _cell_scores(result).items():
            try:
                grade = gradebook.find_grade(cell_id, _stem(assignment), assignment.name, result.student)
            except MissingEntry:
                continue
            grade.auto_score = score
            grade.needs_manual_grade = False
        gradebook.db.commit()


def write_autograded_notebook(course, assignment, result, submitted_path, target):
    """The submission with nbgrader's given and test cells restored, each check's verdict as output."""
    notebook = nbformat.read(str(submitted_path), as_version=4)
    resources = {"nbgrader": {"notebook": _stem(assignment), "assignment": assignment.name,
                              "db_url": db_url(course)}}
    notebook, _ = OverwriteCells().preprocess(notebook, resources)
    verdicts = {f"check-{r.check.number}": r for r in result.ten}
    for cell in notebook.cells:
        verdict = verdicts.get(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id"))
        if verdict is not None:
            text = "Pass\n" if verdict.passed else f"FAIL: {verdict.message}\n"
            cell.outputs = [new_output("stream", name="stdout", text=text)]
    write_atomically(target, nbformat.writes(notebook))


def _cell_scores(result):
    scores = {f"check-{r.check.number}": r.points for r in result.ten}
    if result.extra:
        scores["extra-checks"] = sum(r.points for r in result.extra)
    return scores


def _stem(assignment):
    return assignment.notebook.removesuffix(".ipynb")
