"""Bad input: one clear line and a non-zero exit, never a traceback."""
import subprocess
import sys

import pytest

from conftest import COURSE

GOOD_CELL = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}


def notebook_with(code):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    return nbformat.writes(new_notebook(cells=[new_code_cell(c) for c in code]))


CASES = {
    "missing": (None, "no such file"),
    "not-a-notebook.txt": ("hello", "not a notebook"),
    "malformed.ipynb": ('{"cells": [', "malformed JSON"),
    "not-jupyter.ipynb": ('{"hello": 1}', "not a Jupyter notebook"),
    "empty.ipynb": (notebook_with([]), "has no code"),
}


@pytest.mark.parametrize("name", CASES)
def test_cli_rejects_bad_files_in_one_line(tmp_path, name):
    content, expected = CASES[name]
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", str(path)], cwd=COURSE,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("code, expected", [
    (["import torch\nx = 1"], "defines no class BatchNorm"),
    (["class BatchNorm(:\n    pass"], "SyntaxError"),
], ids=["no-class", "syntax-error"])
def test_cli_reports_ungradable_code(tmp_path, code, expected):
    path = tmp_path / "student.ipynb"
    path.write_text(notebook_with(code))
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", str(path)], cwd=COURSE,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "0/10 TESTS PASSED" in done.stdout
    assert "status: no-class" in done.stdout and expected in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_pytest_submission_option_rejects_bad_files(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/battery", "-q", "--submission", str(path)],
                          cwd=COURSE, capture_output=True, text=True)
    assert done.returncode != 0
    assert "malformed JSON" in done.stderr and "Traceback" not in done.stdout + done.stderr


def test_pytest_battery_on_code_without_the_class(tmp_path):
    path = tmp_path / "noclass.ipynb"
    path.write_text(notebook_with(["x = 1"]))
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/battery", "-q", "--submission", str(path)],
                          cwd=COURSE, capture_output=True, text=True)
    assert done.returncode == 1 and "20 failed" in done.stdout  # the ten and the ten extra checks
    assert "defines no class BatchNorm" in done.stdout and "Traceback" not in done.stdout
