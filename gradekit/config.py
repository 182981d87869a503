"""The kit's settings, as traitlets Configurables read from the course's grader_config.py.

grader_config.py is one file for nbgrader and the kit: nbgrader reads the sections it knows
(through nbgrader_config.py), the kit reads these.
"""
import os
from pathlib import Path

from traitlets import Bool, Dict, Enum, Float, Int
from traitlets.config import Configurable
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "grader_config.py"


class Sandbox(Configurable):
    """Where and under which caps a submission's code runs."""

    mode = Enum(["auto", "bwrap", "none"], "auto", help=(
        "bwrap: bubblewrap sandbox (no course files, no network, scratch-only writes). "
        "none: a plain child process with the caps below and nothing more. auto: bwrap when it works.")
    ).tag(config=True)
    memory_mb = Int(3072, help="Address-space cap per submission, MiB.").tag(config=True)
    cpu_seconds = Int(60, help="CPU-time cap per submission.").tag(config=True)
    wall_seconds = Float(60.0, help="Wall-clock cap per submission.").tag(config=True)
    processes = Int(64, help="Process and thread cap per sandbox user (applies when the grader runs as root).").tag(config=True)
    output_kb = Int(256, help="Cap on what a submission may print; the rest is dropped.").tag(config=True)


class Grading(Configurable):
    """How a class is graded."""

    workers = Int(0, help="Parallel sandboxes; 0 means one per CPU core.").tag(config=True)
    extra_points = Dict({}, help="Points for each hidden extra check, by name; unnamed ones score 0.").tag(config=True)
    show_hints = Bool(True, help="Put a hint for each failed check in the feedback.").tag(config=True)

    def worker_count(self):
        return self.workers or os.cpu_count() or 1


def load(course_dir="."):
    """The traitlets Config of a course; an empty one where the course has no grader_config.py."""
    path = Path(course_dir) / CONFIG_FILE
    if not path.is_file():
        from traitlets.config import Config
        return Config()
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
