"""`make gradescope`: a Gradescope autograder bundle per assignment, grading with the same checks.

Gradescope unpacks the zip in /autograder/source, runs setup.sh once when it builds the image,
and run_autograder for each submission; the kit there writes /autograder/results/results.json.
The bundle holds what grading needs and nothing else: the kit (checks and hidden checks
included, they never reach students), its pinned requirements and the course's configuration;
no solutions, source notebooks, releases or tests.
"""
import subprocess
import zipfile
from pathlib import Path

from gradekit.errors import KitError

# What grading needs, as paths in the course's git checkout.
NEEDED = ("gradekit/", "requirements.txt", "pyproject.toml", "Makefile", "grader_config.py", "nbgrader_config.py")

SETUP = """#!/usr/bin/env bash
# Gradescope image set-up: a Python the kit supports, bubblewrap, then the kit and its pinned
# dependencies. Then a self-test: the sandbox must start here, or grading refuses to run.
set -euo pipefail
apt-get update -q
apt-get install -y -q bubblewrap make python3-venv
cd /autograder/source
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then  # Ubuntu 22.04 ships 3.10: its universe archive has 3.11
  apt-get install -y -q python3.11 python3.11-venv
  python=python3.11
fi
"$python" -m venv .venv
# The CPU build of torch first: PyPI's torch==2.13.0 for Linux pulls gigabytes of CUDA packages.
.venv/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
make install PYTHON="$python"
.venv/bin/gradekit sandbox
"""

RUN = """#!/usr/bin/env bash
# One submission: grade the notebook the student uploaded, write Gradescope's results.json.
set -uo pipefail
root="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$root/source"
mkdir -p "$root/results"
notebook=$(find "$root/submission" -name '{notebook}' -type f | head -n 1)
if [ -z "$notebook" ]; then
  printf '%s\\n' '{{"score": 0, "output": "No {notebook} in the submission: upload the notebook under that name."}}' \\
    > "$root/results/results.json"
  exit 0
fi
.venv/bin/gradekit check "$notebook" --assignment {assignment} --results "$root/results/results.json"
if [ ! -s "$root/results/results.json" ]; then
  printf '%s\\n' '{{"score": 0, "output": "The autograder could not grade this submission: please tell your instructor."}}' \\
    > "$root/results/results.json"
fi
exit 0
"""


def bundle_files(course):
    """The course files the bundle carries: what git tracks under NEEDED."""
    tracked = subprocess.run(["git", "ls-files", *NEEDED], cwd=course.root, capture_output=True, text=True)
    if tracked.returncode != 0:
        raise KitError("make gradescope packs the files git tracks: run it inside the course's git checkout")
    return tracked.stdout.splitlines()


def build(course, assignment, out=None):
    out = Path(out or course.autograded / f"gradescope-{assignment.name}.zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in bundle_files(course):
            bundle.write(course.root / name, name)
        for name, text in (("setup.sh", SETUP),
                           ("run_autograder", RUN.format(notebook=assignment.notebook, assignment=assignment.name))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            bundle.writestr(info, text)
    return out
