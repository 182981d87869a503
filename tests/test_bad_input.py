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
    "deeply-nested.ipynb": ("[" * 100000 + "]" * 100000, "nested too deeply"),
    "bad-utf8.ipynb": (b"\xff\xfe{", "not UTF-8"),
}


@pytest.mark.parametrize("name", CASES)
def test_cli_rejects_bad_files_in_one_line(tmp_path, name):
    content, expected = CASES[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", str(path), "--assignment", "batchnorm"],
                          cwd=COURSE, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("code, expected", [
    (["import torch\nx = 1"], "does not define BatchNorm"),
    (["print('intro')", "class BatchNorm(:\n    pass"], "cell 2: SyntaxError"),
], ids=["no-class", "syntax-error"])
def test_cli_reports_ungradable_code_once(tmp_path, code, expected):
    path = tmp_path / "batchnorm.ipynb"
    path.write_text(notebook_with(code))
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", str(path)], cwd=COURSE,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "0/10 TESTS PASSED" in done.stdout
    assert "status: not-defined" in done.stdout and expected in done.stdout
    assert done.stdout.count(expected) == 2  # once for the checks, once in the status: not once per check
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_needs_to_know_the_assignment(tmp_path):
    path = tmp_path / "homework.ipynb"
    path.write_text(notebook_with(["x = 1"]))
    done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", str(path)], cwd=COURSE,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--assignment" in done.stderr and done.stderr.count("\n") == 1


def test_pytest_submission_option_rejects_bad_files(tmp_path):
    path = tmp_path / "batchnorm.ipynb"
    path.write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/battery", "-q", "--submission", str(path)],
                          cwd=COURSE, capture_output=True, text=True)
    assert done.returncode != 0
    assert "malformed JSON" in done.stderr and "Traceback" not in done.stdout + done.stderr


def test_pytest_battery_on_code_without_the_class(tmp_path):
    path = tmp_path / "noclass.ipynb"
    path.write_text(notebook_with(["x = 1"]))
    done = subprocess.run([sys.executable, "-m", "pytest", "tests/battery", "-q", "--submission", str(path),
                           "--assignment", "batchnorm"], cwd=COURSE, capture_output=True, text=True)
    assert done.returncode == 1 and "20 failed" in done.stdout  # the ten and the ten hidden checks
    assert "does not define BatchNorm" in done.stdout and "Traceback" not in done.stdout


def test_cli_rejects_links_and_fifos_without_following_or_blocking(tmp_path):
    import os
    link, fifo = tmp_path / "batchnorm.ipynb", tmp_path / "fifo.ipynb"
    link.symlink_to(COURSE / "source" / "batchnorm" / "batchnorm.ipynb")
    os.mkfifo(fifo)
    for path, expected in ((link, "symbolic link"), (fifo, "not a regular file")):
        done = subprocess.run([sys.executable, "-m", "gradekit.cli", "check", str(path), "--assignment", "batchnorm"],
                              cwd=COURSE, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and expected in done.stderr and done.stderr.count("\n") == 1
