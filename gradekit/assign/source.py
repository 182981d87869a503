"""Build the instructor notebook (source/<assignment>/<notebook>) from the solution file.

The reference solution is written once, in solutions/; each assignment's `notebook.py` lays out
the cells around it. `make source` writes the notebook; the test suite fails when the committed
one differs from what this builds, so a change to the solution is reflected everywhere.
"""
import importlib
from pathlib import Path

import nbformat

from gradekit import config as kit_config
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def _nbgrader(grade_id, *, grade=False, solution=False, locked=False, points=None, cell_type="code"):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def text(source):
    return new_markdown_cell(source.strip())


def given(grade_id, source):
    """Code students read and run but do not change."""
    return new_code_cell(source.strip(), metadata=_nbgrader(grade_id, locked=True))


def solution(grade_id, source):
    """Code with solution regions; nbgrader releases the placeholders instead."""
    return new_code_cell(source.strip(), metadata=_nbgrader(grade_id, solution=True))


def test(grade_id, source, points):
    """An autograded test cell: its points are earned when it runs without error."""
    return new_code_cell(source.strip(), metadata=_nbgrader(grade_id, grade=True, locked=True, points=points))


def answer(grade_id, model_answer, points):
    """A prose answer graded by hand; the release shows nbgrader's text stub instead."""
    return new_markdown_cell(model_answer.strip(),
                             metadata=_nbgrader(grade_id, grade=True, solution=True, points=points))


def split_imports(code):
    """(leading import lines, the rest): the imports go to a cell of their own."""
    lines = code.strip().splitlines()
    end = 0
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(("import ", "from "))):
        end += 1
    return "\n".join(lines[:end]).strip(), "\n".join(lines[end:]).strip()


def build(assignment, course_dir="."):
    layout = importlib.import_module(f"gradekit.assignments.{assignment.name}.notebook")
    solution_code = assignment.solution_path(course_dir).read_text()
    checks_code = Path(importlib.import_module(assignment.checks_module).__file__).read_text()
    grading = kit_config.Grading(config=kit_config.load(course_dir))
    extra_points = sum(c.points for c in assignment.checks(grading.extra_points) if c.is_extra)
    notebook = new_notebook(cells=layout.cells(*split_imports(solution_code), checks_code, extra_points))
    for number, cell in enumerate(notebook.cells):  # stable ids, so a rebuild is byte-identical
        cell.id = cell.metadata.get("nbgrader", {}).get("grade_id", f"text-{number}")
    notebook.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}}
    return notebook


def path(assignment, course_dir="."):
    return Path(course_dir) / "source" / assignment.name / assignment.notebook


def render(notebook):
    return nbformat.writes(notebook) + "\n"


def write(assignment, course_dir="."):
    target = path(assignment, course_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(build(assignment, course_dir)))
    return target


def is_current(assignment, course_dir="."):
    target = path(assignment, course_dir)
    return target.is_file() and target.read_text() == render(build(assignment, course_dir))
