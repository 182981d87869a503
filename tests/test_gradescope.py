"""The Gradescope bundle holds the kit and the two scripts; `check --results` writes results.json."""
import json
import subprocess
import sys
import zipfile

from conftest import COURSE
from gradekit import gradescope


def test_bundle_has_the_kit_and_the_scripts(tmp_path):
    bundle = gradescope.build(COURSE, "batchnorm", out=tmp_path / "autograder.zip")
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        run = archive.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "requirements.txt", "Makefile", "gradekit/cli.py",
            "solutions/batchnorm/batchnorm.py"} <= names
    assert not any(n.startswith(("tests/", "submitted/", "autograded/")) for n in names)
    assert modes["run_autograder"] & 0o111 and "batchnorm.ipynb" in run and "--results" in run


def test_check_writes_gradescope_results(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", "release/batchnorm/batchnorm.ipynb",
                           "--results", str(out)], cwd=COURSE, capture_output=True, text=True)
    assert done.returncode == 1
    results = json.loads(out.read_text())
    ten = [t for t in results["tests"] if not t["name"].startswith("extra")]
    assert results["score"] == 0 and len(ten) == 10 and all(t["status"] == "failed" for t in ten)
    assert {t["visibility"] for t in ten} == {"visible"} and "Hint:" in ten[0]["output"]
    assert {t["visibility"] for t in results["tests"] if t not in ten} == {"after_published"}


def test_run_autograder_grades_an_upload(tmp_path):
    """The bundle's run_autograder, run as Gradescope would, on a fake /autograder root."""
    bundle = gradescope.build(COURSE, "batchnorm", out=tmp_path / "autograder.zip")
    root = tmp_path / "autograder"
    (root / "submission" / "upload").mkdir(parents=True)
    (root / "source").symlink_to(COURSE)  # stands for the unpacked bundle after setup.sh
    with zipfile.ZipFile(bundle) as archive:
        script = tmp_path / "run_autograder"
        script.write_bytes(archive.read("run_autograder"))
    results = root / "results" / "results.json"

    done = subprocess.run(["bash", str(script)], env={"AUTOGRADER_ROOT": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 0 and "No batchnorm.ipynb" in json.loads(results.read_text())["output"]

    (root / "submission" / "upload" / "batchnorm.ipynb").write_text(
        (COURSE / "source" / "batchnorm" / "batchnorm.ipynb").read_text())
    done = subprocess.run(["bash", str(script)], env={"AUTOGRADER_ROOT": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    graded = json.loads(results.read_text())
    assert graded["score"] == 10 and all(t["status"] == "passed" for t in graded["tests"])
