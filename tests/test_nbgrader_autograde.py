"""The real `nbgrader autograde` scores the solution 10 and the untouched release 0."""
import shutil
import subprocess

from nbgrader.api import Gradebook

from conftest import COURSE
from course import copy_course
from gradekit.assign.release import nbgrader_command, nbgrader_env


def nbgrader(course, *args):
    done = subprocess.run(nbgrader_command(*args), cwd=course, capture_output=True, text=True, env=nbgrader_env())
    assert done.returncode == 0, done.stdout + done.stderr


def test_autograde_by_hand(tmp_path):
    course = copy_course(tmp_path)
    nbgrader(course, "generate_assignment", "batchnorm", "--force")
    for student, notebook in (("alice", COURSE / "source" / "batchnorm" / "batchnorm.ipynb"),
                              ("bob", COURSE / "release" / "batchnorm" / "batchnorm.ipynb")):
        target = course / "submitted" / student / "batchnorm"
        target.mkdir(parents=True)
        shutil.copy(notebook, target / "batchnorm.ipynb")
    nbgrader(course, "autograde", "batchnorm", "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission("batchnorm", s).code_score for s in ("alice", "bob")}
    assert scores == {"alice": 10, "bob": 0}
