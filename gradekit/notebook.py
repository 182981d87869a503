"""Reading what a student handed in: the code cells of a notebook (or a .py file, as one cell).

Everything here runs in the grader, on untrusted files, so every failure becomes a
`SubmissionError` with one line that says what is wrong.
"""
import json
from pathlib import Path

import nbformat

# Cells the kit wrote and grading need not run (the self-check and the test cells); nbgrader's
# autograde restores them from the source anyway, so a student's edit to them counts for nothing.
KIT_CELL_PREFIXES = ("self-check", "check-", "extra-checks")


class SubmissionError(ValueError):
    """A submission that cannot be graded; str() is the one line to show."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def code_cells(path):
    """The code cells a submission runs, in order, as strings."""
    path = Path(path)
    if not path.exists():
        raise SubmissionError("missing", f"{path}: no such file")
    if path.is_dir():
        raise SubmissionError("not-a-notebook", f"{path}: is a folder, not a notebook")
    if path.suffix == ".py":
        return [_text(path)]
    if path.suffix != ".ipynb":
        raise SubmissionError("not-a-notebook", f"{path}: not a notebook (expected a .ipynb file)")
    text = _text(path)
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise SubmissionError("malformed", f"{path}: malformed JSON at line {error.lineno}: {error.msg}") from None
    try:
        notebook = nbformat.reads(text, as_version=4)
        cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    except Exception as error:  # nbformat raises many types for JSON that is not a notebook
        raise SubmissionError("malformed", f"{path}: not a Jupyter notebook ({_first_line(error)})") from None
    sources = [cell.source for cell in cells if not _is_kit_cell(cell)]
    if not any(source.strip() for source in sources):
        raise SubmissionError("empty", f"{path}: the notebook has no code")
    return sources


def _is_kit_cell(cell):
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
    return isinstance(grade_id, str) and grade_id.startswith(KIT_CELL_PREFIXES)


def _text(path):
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SubmissionError("malformed", f"{path}: not a text file (not UTF-8)") from None
    except OSError as error:
        raise SubmissionError("missing", f"{path}: cannot be read: {error.strerror}") from None


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
