"""Make the student release with nbgrader itself (`nbgrader generate_assignment`)."""
import os
import subprocess
import sys
from pathlib import Path

from gradekit.assign import source
from gradekit.errors import KitError


def nbgrader_command(*args):
    return [str(Path(sys.executable).parent / "nbgrader"), *args]


def nbgrader_env():
    """nbgrader runs `alembic` from PATH whenever it opens a gradebook: put this venv's bin first."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        path = bin_dir + os.pathsep + path
    return {**os.environ, "PATH": path}


def release(assignment, course_dir=".", release_dir=None):
    """Rebuild the source notebook, then let nbgrader release it (into release/ by default)."""
    source.write(assignment, course_dir)
    args = ["generate_assignment", assignment.name, "--force", "--log-level=ERROR"]
    if release_dir is not None:
        args.append(f"--CourseDirectory.release_directory={release_dir}")
    done = subprocess.run(nbgrader_command(*args), cwd=course_dir, capture_output=True, text=True,
                          env=nbgrader_env())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise KitError(f"nbgrader generate_assignment failed: {lines[-1] if lines else 'no output'}")
    return Path(course_dir) / (release_dir or "release") / assignment.name / assignment.notebook
