"""`make gradescope`: the Gradescope autograder bundle, grading with the same battery.

Gradescope unpacks the zip in /autograder/source, runs setup.sh once when building the image and
run_autograder for each submission; the kit there writes /autograder/results/results.json.
"""
import subprocess
import zipfile
from pathlib import Path

from gradekit.errors import KitError

SETUP = """#!/usr/bin/env bash
# Gradescope image set-up: the kit and its pinned dependencies (CPU torch).
set -euo pipefail
apt-get update -q && apt-get install -y -q python3 python3-venv python3-pip bubblewrap make
cd /autograder/source
make install
"""

RUN = """#!/usr/bin/env bash
# One submission: grade the notebook students uploaded, write Gradescope's results.json.
set -uo pipefail
cd /autograder/source
notebook=$(find /autograder/submission -name '{notebook}' | head -n 1)
mkdir -p /autograder/results
if [ -z "$notebook" ]; then
  echo '{{"score": 0, "output": "No {notebook} in the submission: upload the notebook under that name."}}' \\
    > /autograder/results/results.json
  exit 0
fi
.venv/bin/gradekit check "$notebook" --assignment {assignment} --results /autograder/results/results.json
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
