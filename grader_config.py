# One configuration for nbgrader and for the kit (traitlets syntax). nbgrader reads it through
# nbgrader_config.py, so `nbgrader generate_assignment batchnorm` by hand makes the same release
# as `make release`; the kit reads it once, through gradekit/course.py.
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader.converters import GenerateAssignment
from nbgrader.preprocessors import ClearSolutions

from gradekit.build.placeholders import ClearSolutionsWithPlaceholders

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

# ---- nbgrader ------------------------------------------------------------------------
c.CourseDirectory.course_id = "deep-learning"
# Each solution region releases its own placeholder lines (`### PLACEHOLDER ...`).
c.GenerateAssignment.preprocessors = [
    ClearSolutionsWithPlaceholders if step is ClearSolutions else step
    for step in GenerateAssignment.class_traits()["preprocessors"].default()
]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ExecutePreprocessor.timeout = 120
# Pages nbgrader renders from students' notebooks (generate_feedback, formgrader) escape the HTML
# a student wrote in Markdown cells or left in outputs: no script of theirs runs in a reader's browser.
c.HTMLExporter.preprocessors = [SanitizeHTML]

# ---- the kit ------------------------------------------------------------------------
# Each submission runs in a bubblewrap sandbox; the kit refuses to grade where it cannot start
# one. "none" grades without isolation (caps only): opt into it only on a trusted machine.
c.Sandbox.mode = "bwrap"
# Caps on each submission (see gradekit/course.py for every setting).
c.Sandbox.memory_mb = 3072
c.Sandbox.cpu_seconds = 60
c.Sandbox.wall_seconds = 60
c.Sandbox.processes = 64
c.Sandbox.scratch_mb = 256
# Parallel sandboxes for `make autograde`; 0 = one per core.
c.Grading.workers = 0
# Points for hidden checks, by name (zero unless set here), e.g.
# c.Grading.hidden_points = {"registered_parameters": 1}
c.Grading.hidden_points = {}
