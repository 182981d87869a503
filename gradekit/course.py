"""A course directory, configured once from its grader_config.py: settings, paths, gradebook.

grader_config.py is one file for nbgrader and for the kit (traitlets syntax): nbgrader reads it
through nbgrader_config.py, the kit through `Course`. Every path the kit uses comes from
nbgrader's `CourseDirectory` (`format_path`), and the gradebook URL is its `db_url`.
"""
import os
from functools import cached_property
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from traitlets import Bool, Dict, Enum, Float, Int
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from gradekit.errors import KitError

CONFIG_FILE = "grader_config.py"


class Sandbox(Configurable):
    """Where and under which caps a submission's code runs."""

    mode = Enum(["bwrap", "none"], "bwrap", help=(
        "bwrap: each submission in a bubblewrap sandbox (no course files, no network, a fresh world "
        "per submission); the kit refuses to grade where it cannot start one. none: weak mode, a "
        "plain child process with the caps below and nothing more, for machines without bubblewrap.")
    ).tag(config=True)
    memory_mb = Int(3072, help="Address-space cap per submission, MiB.").tag(config=True)
    cpu_seconds = Int(60, help="CPU-time cap per submission.").tag(config=True)
    wall_seconds = Float(60.0, help="Wall-clock cap per submission (each run of its checks).").tag(config=True)
    processes = Int(64, help="Process and thread cap per sandbox.").tag(config=True)
    scratch_mb = Int(256, help="Scratch space a submission may write (/tmp and /dev/shm, each).").tag(config=True)
    answer_mb = Int(512, help="Data a submission's process may send the grader in all.").tag(config=True)


class Grading(Configurable):
    """How a class is graded."""

    workers = Int(0, help="Parallel sandboxes; 0 means one per CPU core.").tag(config=True)
    hidden_points = Dict({}, help="Points for each hidden check, by name; unnamed ones score 0.").tag(config=True)
    show_hints = Bool(True, help="Put a hint beside each failed check in the feedback.").tag(config=True)

    def worker_count(self):
        # One sandbox (and one worker process) per core: each keeps a core busy, its student's
        # process and its own Python taking turns.
        return self.workers or os.cpu_count() or 1


class Course:
    """The course at `root`: its settings (nbgrader's and the kit's) and where everything lives."""

    def __init__(self, root="."):
        self.root = Path(root).resolve()
        self.config = self._load()
        self.directory = CourseDirectory(config=self.config, root=str(self.root))
        self.sandbox = Sandbox(config=self.config)
        self.grading = Grading(config=self.config)

    def _load(self):
        path = self.root / CONFIG_FILE
        if not path.is_file():
            return Config()
        try:
            return PyFileConfigLoader(path.name, path=str(self.root)).load_config()
        except Exception as error:  # the instructor's file: say where it broke, in one line
            raise KitError(f"{path} could not be read: {type(error).__name__}: {error}") from None

    @cached_property
    def db_url(self):
        return self.directory.db_url

    def path(self, step, assignment, student=".", *parts):
        """nbgrader's layout: <step>/<student>/<assignment>/... (student "." for source and release)."""
        return Path(self.directory.format_path(getattr(self.directory, f"{step}_directory"), student,
                                               assignment)).joinpath(*parts)

    def source(self, assignment):
        return self.path("source", assignment.name, ".", assignment.notebook)

    def release(self, assignment):
        return self.path("release", assignment.name, ".", assignment.notebook)

    @property
    def submitted(self):
        return self.root / self.directory.submitted_directory

    @property
    def autograded(self):
        return self.root / self.directory.autograded_directory

    def solution(self, assignment):
        return self.solution_path(assignment.name)

    def solution_path(self, name):
        return self.root / "solutions" / name / f"{name}.py"
