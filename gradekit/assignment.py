"""Assignments and their checks: what the kit knows about each exercise.

An assignment is a package under gradekit/assignments/<name>/ that defines `ASSIGNMENT`. Its check
modules each define `make_inputs()` and `CHECKS`, a list of (name, probe, judge); they are imported
inside the sandbox (probes) and in the grader (judgements).
"""
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

import gradekit.assignments


class UnknownAssignment(LookupError):
    pass


@dataclass(frozen=True)
class Check:
    module: str  # module that defines the check
    index: int  # its position in that module's CHECKS
    number: int | None  # 0-9 for the original battery, None for an extra check
    name: str
    hint: str
    points: float

    @property
    def key(self):
        """Column name in grades.csv: check_3, extra_registered_parameters."""
        return f"check_{self.number}" if self.number is not None else f"extra_{self.name}"

    @property
    def id(self):
        """pytest id: 3-test-time-normalization, extra-registered_parameters."""
        if self.number is None:
            return f"extra-{self.name}"
        return f"{self.number}-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def label(self):
        """How people see it: 0 - Learnable parameters set correctly, extra: registered_parameters."""
        return f"extra: {self.name}" if self.number is None else f"{self.number} - {self.name}"

    @property
    def is_extra(self):
        return self.number is None


@dataclass(frozen=True)
class Assignment:
    name: str  # folder under source/, release/, submitted/<student>/
    notebook: str  # file name of the notebook students hand in
    class_name: str  # what the notebook must define
    solution: str  # reference implementation, relative to the course directory
    checks_module: str  # the original battery (embedded in the student notebook)
    extra_module: str | None = None  # hidden extra checks
    hints: dict = field(default_factory=dict)  # check name -> hint shown on failure

    @property
    def modules(self):
        return [m for m in (self.checks_module, self.extra_module) if m]

    def checks(self, extra_points=None):
        """The ten checks then the extras, each with its points (1 each for the ten)."""
        extra_points = extra_points or {}
        found = []
        for module_name in self.modules:
            module = importlib.import_module(module_name)
            extra = module_name == self.extra_module
            for index, (name, _probe, _judge) in enumerate(module.CHECKS):
                points = float(extra_points.get(name, 0)) if extra else 1.0
                hint = getattr(module, "HINTS", self.hints).get(name, "")
                found.append(Check(module_name, index, None if extra else index, name, hint, points))
        return found

    def solution_path(self, course_dir="."):
        return Path(course_dir) / self.solution


def names():
    return sorted(m.name for m in pkgutil.iter_modules(gradekit.assignments.__path__) if m.ispkg)


def get(name):
    if name not in names():
        known = ", ".join(names())
        raise UnknownAssignment(f"unknown assignment {name!r} (known: {known})")
    return importlib.import_module(f"gradekit.assignments.{name}").ASSIGNMENT
