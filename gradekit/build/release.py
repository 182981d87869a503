"""Make the student release with nbgrader itself (`nbgrader generate_assignment`)."""
import os
import subprocess
import sys
from pathlib import Path

from gradekit.build import source
from gradekit.errors import KitError


def nbgrader_command(*args):
    return [str(Path(sys.executable).parent / "nbgrader"), *args]


def nbgrader_env():
    """nbgrader runs `alembic` from PATH whenever it creates a gradebook: put this venv's bin first."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        path = bin_dir + os.pathsep + path
    return {**os.environ, "PATH": path}


def nbgrader(course, *args):
    """Run an nbgrader command in the course; a failure is one line."""
    done = subprocess.run(nbgrader_command(*args, "--log-level=ERROR"), cwd=course.root, capture_output=True,
                          text=True, env=nbgrader_env())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise KitError(f"nbgrader {args[0]} failed: {lines[-1] if lines else 'no output'}")


def release(course, assignment, release_dir=None):
    """Rebuild the source folder, then let nbgrader release it (into release/ by default)."""
    source.write(course, assignment)
    args = ["generate_assignment", assignment.name, "--force"]
    if release_dir is not None:
        args.append(f"--CourseDirectory.release_directory={release_dir}")
    nbgrader(course, *args)
    return course.root / (release_dir or course.directory.release_directory) / assignment.name / assignment.notebook
