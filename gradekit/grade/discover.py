"""Finding a class's submissions in nbgrader's layout: submitted/<student>/<assignment>/<notebook>.

Every folder becomes one row, whatever is wrong with it: an unknown assignment, a missing or
misnamed notebook, a link where a folder or notebook should be. Nothing is followed or opened
here; the notebook itself is read later, by submission.read_bytes.
"""
import os
from dataclasses import dataclass
from pathlib import Path

from gradekit import contract
from gradekit.run.wire import clean_text


@dataclass
class Submission:
    student: str
    assignment: str  # the folder's name
    folder: Path
    notebook: Path | None = None  # where the notebook should be, when the folder is usable
    problem: tuple | None = None  # (status, message) when it is not

    @property
    def key(self):
        return (self.student, self.assignment)


def _folders(path):
    """[(name, path, is a link)] of the sub-folders of `path` (links to folders included)."""
    found = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=True):
                found.append((entry.name, Path(entry.path), entry.is_symlink()))
    return sorted(found)


def discover(course, students=None):
    """Every submission folder under submitted/, in a stable order; `students` limits them."""
    found = []
    if not course.submitted.is_dir():
        return found
    for student, student_folder, linked in _folders(course.submitted):
        if students and student not in students:
            continue
        student = clean_text(student, 200)
        if linked:
            found.append(Submission(student, "", student_folder,
                                    problem=("not-a-notebook", "the student's folder is a symbolic link")))
            continue
        assignment_folders = _folders(student_folder)
        if not assignment_folders:
            found.append(Submission(student, "", student_folder,
                                    problem=("missing", "no assignment folder in the submission")))
        for name, folder, linked in assignment_folders:
            found.append(_submission(student, clean_text(name, 200), folder, linked))
    return found


def _submission(student, name, folder, linked):
    if linked:
        return Submission(student, name, folder, problem=("not-a-notebook", "the assignment folder is a symbolic link"))
    try:
        assignment = contract.get(name)
    except contract.UnknownAssignment as error:
        return Submission(student, name, folder, problem=("unknown-assignment", str(error)))
    notebook = folder / assignment.notebook
    if os.path.lexists(notebook):
        return Submission(student, name, folder, notebook)
    others = sorted(clean_text(p.name, 200) for p in folder.glob("*.ipynb"))
    if others:
        return Submission(student, name, folder, problem=(
            "misnamed", f"expected {assignment.notebook}, found {', '.join(others)}: rename it and re-run"))
    return Submission(student, name, folder, problem=("missing", f"no {assignment.notebook} in the submission"))
