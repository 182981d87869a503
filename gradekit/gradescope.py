"""`make gradescope`: the Gradescope autograder bundle, grading with the same battery.

Gradescope unpacks the zip in /autograder/source, runs setup.sh once when building the image and
run_autograder for each submission; the kit there writes /autograder/results/results.json.
"""
import subprocess
import zipfile
from pathlib import Path

from gradekit.errors import KitError

SETUP = """#!/usr/bin/env bash
# Gradescope image set-up: Python 3.11, bubblewrap, then the kit and its pinned dependencies.
set -euo pipefail
apt-get update -q
apt-get install -y -q python3.11 python3.11-venv bubblewrap make
cd /autograder/source
python3.11 -m venv .venv
# The CPU build of torch first: PyPI's torch==2.13.0 for Linux pulls gigabytes of CUDA packages.
.venv/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
make install PYTHON=python3.11
"""

RUN = """#!/usr/bin/env bash
# One submission: grade the notebook the student uploaded, write Gradescope's results.json.
set -uo pipefail
root="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$root/source"
mkdir -p "$root/results"
notebook=$(find "$root/submission" -name '{notebook}' | head -n 1)
if [ -z "$notebook" ]; then
  printf '%s\\n' '{{"score": 0, "output": "No {notebook} in the submission: upload the notebook under that name."}}' \\
    > "$root/results/results.json"
  exit 0
fi
.venv/bin/gradekit check "$notebook" --assignment {assignment} --results "$root/results/results.json"
exit 0
"""


def build(course=".", assignment_name="batchnorm", out="autograded/gradescope-autograder.zip"):
    from gradekit import assignment as assignments

    assignment = assignments.get(assignment_name)
    course, out = Path(course), Path(course) / out
    tracked = subprocess.run(["git", "ls-files"], cwd=course, capture_output=True, text=True)
    if tracked.returncode != 0:
        raise KitError("make gradescope packs the files git tracks: run it inside the course's git checkout")
    files = [f for f in tracked.stdout.splitlines() if not f.startswith(("submitted/", "autograded/", "tests/"))]
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in files:
            bundle.write(course / name, name)
        for name, text in (("setup.sh", SETUP), ("run_autograder", RUN.format(notebook=assignment.notebook,
                                                                               assignment=assignment.name))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            bundle.writestr(info, text)
    return out
