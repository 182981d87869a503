"""A throwaway copy of the course (configs and source), for tests that run nbgrader."""
import shutil

from conftest import COURSE


def copy_course(target):
    for name in ("grader_config.py", "nbgrader_config.py"):
        shutil.copy(COURSE / name, target / name)
    shutil.copytree(COURSE / "source", target / "source")
    shutil.copytree(COURSE / "solutions", target / "solutions")
    return target
