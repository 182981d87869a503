"""nbgrader itself on what the kit makes: `nbgrader autograde` scores each reference full marks and
each release 0, and nbgrader's Validate tells the truth (fails on the release, naming a check;
passes on the solution)."""
import shutil
import subprocess

import pytest
from nbgrader.api import Gradebook

from conftest import COURSE, copy_course
from gradekit import contract
from gradekit.build.release import nbgrader_command, nbgrader_env


def nbgrader(course, *args):
    done = subprocess.run(nbgrader_command(*args), cwd=course, capture_output=True, text=True, env=nbgrader_env())
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("name", contract.names())
def test_nbgrader_autograde_by_hand(tmp_path, name):
    assignment = contract.get(name)
    course = copy_course(tmp_path)
    code, output = nbgrader(course, "generate_assignment", name, "--force")
    assert code == 0, output
    for student, folder in (("alice", COURSE / "source" / name), ("bob", COURSE / "release" / name)):
        shutil.copytree(folder, course / "submitted" / student / name)
    code, output = nbgrader(course, "autograde", name, "--force")
    assert code == 0, output
    core = len(assignment.modules()[0].CHECKS) * assignment.core_points
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission(name, s).code_score for s in ("alice", "bob")}
    assert scores == {"alice": core, "bob": 0}


def test_validate_fails_on_the_release_naming_the_check_and_passes_on_the_solution(tmp_path):
    course = copy_course(tmp_path)
    code, output = nbgrader(course, "validate", str(course / "release" / "batchnorm" / "batchnorm.ipynb"))
    assert "VALIDATION FAILED" in output and "check 3 (Test time normalization) failed" in output
    assert "Success! Your notebook passes all the tests." not in output
    code, output = nbgrader(course, "validate", str(course / "source" / "batchnorm" / "batchnorm.ipynb"))
    assert "Success! Your notebook passes all the tests." in output, output
