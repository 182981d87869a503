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


VALID_METADATA = {"schema_version": 3, "grade": True, "locked": True, "solution": False, "grade_id": "check-1",
                  "points": 2, "checksum": "0" * 32, "cell_type": "code"}
# One change each, at the edges of the schema where validators disagree most (1.0 for an integer,
# True for a number or 0 for a boolean, a pattern, lengths, an unknown key, a missing one).
METADATA_CHANGES = [{}, {"schema_version": 3.0}, {"points": True}, {"points": 1.5}, {"points": -1}, {"grade": 0},
                    {"grade_id": "a b"}, {"grade_id": "ünï"}, {"grade_id": ""}, {"checksum": "0" * 31},
                    {"checksum": "é" * 32}, {"cell_type": "heading"}, {"extra": 1}, {"locked": None},
                    {"solution": "false"}, {"task": True}, {"points": 10 ** 400}, {"grade_id": "x\n"}]


@pytest.mark.parametrize("change", METADATA_CHANGES, ids=[str(c) for c in METADATA_CHANGES])
@pytest.mark.parametrize("drop", [None, "locked"])
def test_the_compiled_metadata_check_agrees_with_nbgraders(change, drop):
    """gradebook.METADATA checks each cell with a compiled schema: it must refuse exactly what
    nbgrader's own MetadataValidator refuses, with nbgrader's error."""
    import nbformat
    from nbgrader.nbgraderformat import MetadataValidator
    from gradekit.grade.gradebook import METADATA
    metadata = {**VALID_METADATA, **change}
    metadata.pop(drop, None)
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": metadata})
    outcomes = []
    for validator in (MetadataValidator(), METADATA):
        try:
            validator.validate_cell(cell)
            outcomes.append(None)
        except Exception as error:
            outcomes.append((type(error).__name__, str(error).splitlines()[0]))
    assert outcomes[0] == outcomes[1]
    assert cell.metadata["nbgrader"] == metadata  # checked, not filled in
