"""The files grading writes, all atomically (a crash or a kill never leaves half of one).

Per submission, in autograded/<student>/<assignment>/ (written by the worker that graded it):
the autograded notebook in nbgrader's form, feedback.html, Gradescope's results.json, and the
submission's timestamp.txt and submission_secret.txt as nbgrader's autograde keeps them.
Per class, in autograded/: grades.csv, report.html and report.png (written once, at the end).
"""
import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

from gradekit.grade import gradebook, report
from gradekit.grade.submission import SubmissionError, read_bytes

FIXED_COLUMNS = ["student_id", "assignment"]
TAIL_COLUMNS = ["score", "max_score", "status", "message"]
PER_SUBMISSION = ("feedback.html", "results.json")
SECRET = re.compile(r"[0-9a-f]{16,256}")  # nbgrader's submit writes secrets.token_hex(64)


def write_atomically(path, data):
    """Write text or bytes to a temporary file beside `path`, then rename it into place. A lone
    surrogate, which UTF-8 cannot hold, is written as a `\\udXXX` escape rather than failing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    text = not isinstance(data, bytes)
    try:
        with os.fdopen(fd, "w" if text else "wb", encoding="utf-8" if text else None,
                       errors="backslashreplace" if text else None) as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def submission_folder(course, result):
    return course.path("autograded", result.assignment, result.student)


def written(course, assignment, result):
    """Whether a submission's files are all there (an unchanged re-run writes nothing)."""
    folder = submission_folder(course, result)
    names = PER_SUBMISSION + ((assignment.notebook,) if result.ran else ())
    return all((folder / name).is_file() for name in names)


def write_submission(course, assignment, result, submitted, cells):
    """A graded submission's own files. Returns a note when the autograded notebook could not be
    written (malformed nbgrader metadata, say): the grade stands, the row says so."""
    folder = submission_folder(course, result)
    for name, text in nbgrader_files(Path(submitted).parent).items():
        write_atomically(folder / name, text)
    note = ""
    if result.ran:
        notebook = _autograded_notebook(submitted, assignment, result, cells)
        if notebook is None:
            note = "its nbgrader metadata is broken, so no autograded notebook was written"
        else:
            write_atomically(folder / assignment.notebook, notebook)
    write_atomically(folder / "results.json", json.dumps(result.gradescope(), indent=2))
    write_atomically(folder / "feedback.html", result.feedback_html(course.grading.show_hints, assignment.questions))
    return note


def nbgrader_files(folder):
    """What nbgrader keeps beside an autograded notebook, from what `nbgrader collect` put beside
    the submission: its time, and the secret that names the student's feedback in the exchange
    (`nbgrader release_feedback` needs both). The student's nbgrader wrote them, so each is taken
    only in the form nbgrader writes it."""
    found = {}
    timestamp = gradebook.read_timestamp(folder)
    if timestamp is not None:
        found["timestamp.txt"] = timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    try:
        secret = read_bytes(folder / "submission_secret.txt", limit=1024).decode("ascii")
    except (SubmissionError, UnicodeDecodeError):
        secret = ""
    if SECRET.fullmatch(secret):
        found["submission_secret.txt"] = secret
    return found


def _autograded_notebook(submitted, assignment, result, cells):
    """The autograded notebook's text, or None where the submitted notebook cannot be put in
    nbgrader's form (gradebook.autograded_notebook). nbformat and nbgrader raise errors of many
    types on a hostile notebook (a list where metadata should be, an outdated nbgrader schema...),
    and the result must stand whatever they raise. Lone surrogates (valid JSON escapes, but no
    UTF-8 page can hold them) become U+FFFD."""
    try:
        text = gradebook.autograded_notebook(submitted, assignment, result, cells)
        return None if text is None else text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    except Exception:
        return None


def grades_csv(results, checks):
    """One row per student and assignment: points per core check, 1/0 per hidden check, score, status."""
    columns = FIXED_COLUMNS + [c.key for c in checks if not c.hidden] + [c.key for c in checks if c.hidden] + TAIL_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for result in results:
        writer.writerow(result.csv_row(columns))
    return out.getvalue()


def write_class(course, results, checks):
    """grades.csv and the class report, from every row."""
    write_atomically(course.autograded / "grades.csv", grades_csv(results, checks))
    report.write(results, course.autograded)
