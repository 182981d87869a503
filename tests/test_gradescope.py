"""The Gradescope bundle holds what grading needs and nothing else; run_autograder grades an upload."""
import json
import subprocess
import sys
import zipfile

import pytest

from conftest import COURSE
from gradekit import contract, gradescope


@pytest.mark.parametrize("name", contract.names())
def test_bundle_has_the_kit_and_nothing_students_must_not_see(course, tmp_path, name):
    bundle = gradescope.build(course, contract.get(name), out=tmp_path / "autograder.zip")
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        run = archive.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "requirements.txt", "Makefile", "gradekit/cli.py",
            f"gradekit/assignments/{name}/checks.py", "grader_config.py"} <= names
    assert not any(n.startswith(("tests/", "submitted/", "autograded/", "solutions/", "source/", "release/"))
                   for n in names)
    assert not any("mutant" in n for n in names)
    assert modes["run_autograder"] & 0o111 and contract.get(name).notebook in run and "--results" in run


def test_check_writes_gradescope_results(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", "release/batchnorm/batchnorm.ipynb",
                           "--results", str(out)], cwd=COURSE, capture_output=True, text=True)
    assert done.returncode == 1
    results = json.loads(out.read_text())
    core = [t for t in results["tests"] if not t["name"].startswith("hidden")]
    assert results["score"] == 0 and len(core) == 10 and all(t["status"] == "failed" for t in core)
    assert {t["visibility"] for t in core} == {"visible"} and "Hint:" in core[0]["output"]
    assert {t["visibility"] for t in results["tests"] if t not in core} == {"after_published"}


def test_run_autograder_grades_an_upload(course, tmp_path):
    """The bundle's run_autograder, run as Gradescope would, on a fake /autograder root."""
    bundle = gradescope.build(course, contract.get("batchnorm"), out=tmp_path / "autograder.zip")
    root = tmp_path / "autograder"
    (root / "submission" / "upload").mkdir(parents=True)
    (root / "source").symlink_to(COURSE)  # stands for the unpacked bundle after setup.sh
    with zipfile.ZipFile(bundle) as archive:
        script = tmp_path / "run_autograder"
        script.write_bytes(archive.read("run_autograder"))
    results = root / "results" / "results.json"
    env = {"AUTOGRADER_ROOT": str(root), "PATH": "/usr/bin:/bin"}

    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "No batchnorm.ipynb" in json.loads(results.read_text())["output"]

    (root / "submission" / "upload" / "batchnorm.ipynb").write_text(
        (COURSE / "source" / "batchnorm" / "batchnorm.ipynb").read_text())
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    graded = json.loads(results.read_text())
    assert graded["score"] == 10 and all(t["status"] == "passed" for t in graded["tests"])
