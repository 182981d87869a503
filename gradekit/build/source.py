"""Build an assignment's source folder (source/NAME/): the instructor notebook, made from the
solution file and notebook.md (see gradekit/contract.py), and the files shipped beside it.

`make source` writes it; the test suite fails when what is committed differs from what this
builds, so a change to the solution or the text reaches every notebook. nbgrader then releases
the folder as it is (build/release.py): the shipped files go to students with the notebook.
"""
import inspect
import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from gradekit import selfcheck
from gradekit.contract import HIDDEN_CELL, SELF_CHECK_CELL
from gradekit.errors import KitError

CHUNK = re.compile(r"^# %% ([A-Za-z0-9_-]+)[ \t]*$", re.M)
MARKER = re.compile(r"^<!-- (cell: ([A-Za-z0-9_-]+)|self-check|tests|questions) -->[ \t]*$", re.M)


def _nbgrader(grade_id, *, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def text(source, cell_id):
    cell = new_markdown_cell(source.strip())
    cell.id = cell_id
    return cell


def given(grade_id, source):
    """Code students read and run but do not change."""
    return new_code_cell(source.strip(), metadata=_nbgrader(grade_id, locked=True), id=grade_id)


def solution(grade_id, source):
    """Code with solution regions: nbgrader releases their placeholder lines instead."""
    return new_code_cell(source.strip(), metadata=_nbgrader(grade_id, solution=True), id=grade_id)


def test(grade_id, source, points):
    """An autograded test cell: its points are earned when it runs without error."""
    return new_code_cell(source.strip(), metadata=_nbgrader(grade_id, grade=True, locked=True, points=points),
                         id=grade_id)


def answer(grade_id, model_answer, points):
    """A prose answer graded by hand; the release shows nbgrader's text stub instead."""
    cell = new_markdown_cell(model_answer.strip(), metadata=_nbgrader(grade_id, grade=True, solution=True,
                                                                      points=points))
    cell.id = grade_id
    return cell


def solution_chunks(code, where):
    """{cell id: code} of a solution file split at its `# %% ID` lines."""
    parts = CHUNK.split(code)
    if parts[0].strip():
        raise KitError(f"{where}: code before the first `# %% ID` line")
    chunks = {}
    for cell_id, body in zip(parts[1::2], parts[2::2]):
        if cell_id in chunks:
            raise KitError(f"{where}: two cells called {cell_id!r}")
        chunks[cell_id] = body.strip()
    return chunks


def kit_cells(assignment, marker, hidden_points):
    """The cells the kit writes for <!-- self-check -->, <!-- tests --> or <!-- questions -->."""
    module = assignment.shipped_checks.removesuffix(".py")
    if marker == "self-check":
        return [given(SELF_CHECK_CELL, f'from selfcheck import self_check\nself_check("{module}", globals())')]
    if marker == "tests":
        cells = []
        for c in assignment.scored_checks(hidden_points):
            if c.hidden:
                continue
            cells.append(test(c.cell, f"# Check {c.label} ({c.points:g} point{'s' * (c.points != 1)})\n"
                                      f"from selfcheck import assert_check\n"
                                      f'assert_check("{module}", {c.number}, globals())', c.points))
        points = sum(c.points for c in assignment.scored_checks(hidden_points) if c.hidden)
        if points:  # only while they count: a 0-point cell would show as "0 / 0"
            cells.append(test(HIDDEN_CELL, "# Hidden checks: the autograder runs them.\n### BEGIN HIDDEN TESTS\n"
                                           "from gradekit.selfcheck import assert_all\n"
                                           f'assert_all("{assignment.hidden_module}", globals())\n'
                                           "### END HIDDEN TESTS", points))
        return cells
    cells = []
    for number, question in enumerate(assignment.questions, start=1):
        cells.append(text(f"**Question {number}.** {question.prompt}", f"{question.id}-prompt"))
        cells.append(answer(question.id, question.answer, question.points))
    return cells


def build(course, assignment):
    where = course.solution(assignment).relative_to(course.root)
    chunks = solution_chunks(course.solution(assignment).read_text(), where)
    placed, cells = set(), []
    parts = MARKER.split(assignment.text)
    # split() gives: text, marker, cell id (or None), text, marker, cell id, ...
    for index in range(0, len(parts), 3):
        if parts[index].strip():
            cells.append(text(parts[index], f"text-{len(cells)}"))
        if index + 1 >= len(parts):
            break
        marker, cell_id = parts[index + 1], parts[index + 2]
        if cell_id is None:
            cells += kit_cells(assignment, marker, course.grading.hidden_points)
            continue
        if cell_id not in chunks:
            raise KitError(f"notebook.md places cell {cell_id!r}, which {where} does not define")
        placed.add(cell_id)
        code = chunks[cell_id]
        cells.append(solution(cell_id, code) if "### BEGIN SOLUTION" in code else given(cell_id, code))
    if set(chunks) - placed:
        raise KitError(f"{where} defines cells notebook.md does not place: {', '.join(sorted(set(chunks) - placed))}")
    notebook = new_notebook(cells=cells)
    notebook.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}}
    return notebook


def shipped(assignment):
    """{file name: text} of what students get beside the notebook: the harness and the core checks."""
    checks, _ = assignment.modules()
    return {"selfcheck.py": inspect.getsource(selfcheck), assignment.shipped_checks: inspect.getsource(checks)}


def files(course, assignment):
    """{path: text} of the whole source folder."""
    folder = course.source(assignment).parent
    found = {course.source(assignment): nbformat.writes(build(course, assignment)) + "\n"}
    found.update({folder / name: body for name, body in shipped(assignment).items()})
    return found


def write(course, assignment):
    for path, body in files(course, assignment).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return course.source(assignment)


def stale(course, assignment):
    """The source files that differ from what `make source` would write."""
    return [path for path, body in files(course, assignment).items()
            if not path.is_file() or path.read_text() != body]
