"""`make bench`: grade one generated class with the kit and with `nbgrader autograde`, compare.

The class is made of the reference solution and realistic wrong versions of it, each in the
instructor notebook's nbgrader form, so both graders see exactly the same files.
"""
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from gradekit import assignment as assignments
from gradekit.assign.release import nbgrader_command, nbgrader_env
from gradekit.assign.source import split_imports
from gradekit.assignments.batchnorm.mutants import MUTANTS
from gradekit.grade.autograde import autograde
from gradekit.grade.gradebook import db_url


def make_class(course_dir, size, target):
    course, target = Path(course_dir), Path(target)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("grader_config.py", "nbgrader_config.py"):
        shutil.copy(course / name, target / name)
    for folder in ("source", "solutions"):
        shutil.copytree(course / folder, target / folder)
    source = nbformat.read(str(course / "source" / "batchnorm" / "batchnorm.ipynb"), as_version=4)
    for n in range(size):
        mutant = MUTANTS[n % len(MUTANTS)]
        notebook = nbformat.from_dict(source)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "batchnorm-class":
                cell.source = split_imports(mutant.code())[1]
        folder = target / "submitted" / f"student{n:03d}-{mutant.name}" / "batchnorm"
        folder.mkdir(parents=True)
        nbformat.write(notebook, str(folder / "batchnorm.ipynb"))
    return target


def _nbgrader(course, *args):
    done = subprocess.run(nbgrader_command(*args), cwd=course, capture_output=True, text=True, env=nbgrader_env())
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {args[0]} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def run(course_dir=".", size=24, target="bench-course"):
    course = make_class(course_dir, size, target)
    print(f"class of {size} submissions in {course}/submitted")
    _nbgrader(course, "generate_assignment", "batchnorm", "--force")

    started = time.perf_counter()
    kit = {r.student: [x.passed for x in r.ten] for r in autograde(course, quiet=True)}
    kit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    _nbgrader(course, "autograde", "batchnorm", "--force")
    nbgrader_seconds = time.perf_counter() - started

    notebook = assignments.get("batchnorm").notebook.removesuffix(".ipynb")
    disagreements = []
    with Gradebook(db_url(course)) as gradebook:
        for student, verdicts in sorted(kit.items()):
            theirs = [gradebook.find_grade(f"check-{k}", notebook, "batchnorm", student).score == 1 for k in range(10)]
            if theirs != verdicts:
                disagreements.append(f"{student}: kit {verdicts} nbgrader {theirs}")
    print(f"kit:      {kit_seconds:7.2f} s  ({1000 * kit_seconds / size:6.0f} ms per submission, sandbox start-up included)")
    print(f"nbgrader: {nbgrader_seconds:7.2f} s  ({1000 * nbgrader_seconds / size:6.0f} ms per submission)")
    print(f"ratio:    {nbgrader_seconds / kit_seconds:7.1f}x faster")
    print("verdicts: identical on every submission" if not disagreements else
          "verdicts differ:\n  " + "\n  ".join(disagreements))
    return 0 if not disagreements else 1
