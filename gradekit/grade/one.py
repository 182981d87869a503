"""Grade one notebook (or .py file): what `gradekit check` and the pytest battery use."""
from gradekit import assignment as assignments
from gradekit import config as kit_config
from gradekit.grade.judge import Result, judge_run
from gradekit.grade.sandbox import Worker
from gradekit.notebook import SubmissionError, code_cells


class Grader:
    """A sandbox for one assignment, reused across the submissions it grades."""

    def __init__(self, assignment_name, course_dir=".", workers=1):
        config = kit_config.load(course_dir)
        self.assignment = assignments.get(assignment_name)
        self.limits = kit_config.Sandbox(config=config)
        self.grading = kit_config.Grading(config=config)
        self.checks = self.assignment.checks(self.grading.extra_points)
        self.worker = Worker(self.assignment, self.limits, self.limits.mode, workers=workers)

    def grade_cells(self, student, cells):
        run = self.worker.run(cells, self.checks)
        return judge_run(student, self.assignment, run, self.checks, self.limits)

    def grade(self, student, path):
        try:
            cells = code_cells(path)
        except SubmissionError as error:
            return self.failed(student, error.status, str(error))
        return self.grade_cells(student, cells)

    def failed(self, student, status, message):
        return Result.all_failed(student, self.assignment.name, status, message, self.checks)

    def close(self):
        self.worker.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
