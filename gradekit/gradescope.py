"""`make gradescope`: a Gradescope autograder bundle per assignment, grading with the same checks.

Gradescope unpacks the zip in /autograder/source, runs setup.sh once when it builds the image,
and run_autograder for each submission; the kit there writes /autograder/results/results.json.
The bundle holds what grading needs and nothing else: the kit (checks and hidden checks
included, they never reach students), its pinned requirements and the course's configuration;
no solutions, source notebooks, releases or tests.
"""
import zipfile
from pathlib import Path

from gradekit.errors import KitError

# What grading needs, as paths in the course folder (folders packed whole, caches left out).
NEEDED = ("gradekit/", "requirements.txt", "pyproject.toml", "Makefile", "grader_config.py", "nbgrader_config.py")

# The interpreter the kit runs on, printed: the image's python3 when it is 3.11 or newer (Ubuntu
# 24.04 ships 3.12), else python3.11, which setup.sh then installs (Ubuntu 22.04 ships 3.10; its
# universe archive has 3.11). A function of its own, so that tests can run it against fake
# interpreters.
CHOOSE_PYTHON = """choose_python() {
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo python3
  else
    echo python3.11
  fi
}
"""

SETUP = """#!/usr/bin/env bash
# Gradescope image set-up, run once as root when the image is built: a Python the kit supports,
# bubblewrap, then the kit and its pinned dependencies. Last, a self-test: the sandbox must start
# here, or the build fails (grading would refuse to run anyway).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
source_dir="${AUTOGRADER_ROOT:-/autograder}/source"
""" + CHOOSE_PYTHON + """apt-get update -q
apt-get install -y -q bubblewrap make
command -v python3 >/dev/null 2>&1 || apt-get install -y -q python3
python=$(choose_python)
if [ "$python" = python3 ]; then
  apt-get install -y -q python3-venv
elif ! apt-get install -y -q python3.11 python3.11-venv; then
  echo "setup.sh: no Python 3.11 or newer here, and no python3.11 package: choose an Ubuntu 22.04 or 24.04 base image" >&2
  exit 1
fi
echo "setup.sh: the kit runs on $("$python" --version 2>&1) ($python)"
cd "$source_dir"
"$python" -m venv .venv
# The CPU build of torch first: PyPI's torch==2.13.0 for Linux pulls gigabytes of CUDA packages.
.venv/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
make install PYTHON="$python"
.venv/bin/gradekit sandbox
"""

RUN = """#!/usr/bin/env bash
# One submission: grade the notebook the student uploaded, write Gradescope's results.json.
# Gradescope runs it as root. The sandbox must start (Sandbox.mode "bwrap"): where it cannot,
# `gradekit check` refuses in one line, and results.json says so.
set -uo pipefail
root="${{AUTOGRADER_ROOT:-/autograder}}"
results="$root/results/results.json"
cd "$root/source"
mkdir -p "$root/results"
notebook=$(find "$root/submission" -name '{notebook}' -type f | head -n 1)
if [ -z "$notebook" ]; then
  printf '%s\\n' '{{"score": 0, "output": "No {notebook} in the submission: upload the notebook under that name."}}' \\
    > "$results"
  exit 0
fi
errors=$(mktemp)
.venv/bin/gradekit check "$notebook" --assignment {assignment} --results "$results" 2> "$errors"
cat "$errors"  # the autograder's output, which only instructors see
if [ ! -s "$results" ]; then
  # Not graded: gradekit said why in one line (a notebook it cannot read, a sandbox that cannot start).
  reason=$(tail -n 1 "$errors")
  .venv/bin/python -c 'import json, sys
reason = sys.argv[1].removeprefix("gradekit: error: ").strip()
print(json.dumps({{"score": 0, "output": "The autograder could not grade this submission: "
                  + (reason or "please tell your instructor.")}}))' "$reason" > "$results" 2>/dev/null ||
    printf '%s\\n' '{{"score": 0, "output": "The autograder could not grade this submission: please tell your instructor."}}' \\
      > "$results"
fi
rm -f "$errors"
exit 0
"""


def bundle_files(course):
    """The course files the bundle carries: the kit's package (without caches) and the root files."""
    files = [name for name in NEEDED if not name.endswith("/")]
    for folder in (name for name in NEEDED if name.endswith("/")):
        files += sorted(str(p.relative_to(course.root)) for p in (course.root / folder).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    missing = [name for name in files if not (course.root / name).is_file()]
    if missing:
        raise KitError(f"make gradescope needs {', '.join(missing)} in the course folder")
    return files


def build(course, assignment, out=None):
    files = bundle_files(course)
    out = Path(out or course.autograded / f"gradescope-{assignment.name}.zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in files:
            bundle.write(course.root / name, name)
        for name, text in (("setup.sh", SETUP),
                           ("run_autograder", RUN.format(notebook=assignment.notebook, assignment=assignment.name))):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            bundle.writestr(info, text)
    return out
