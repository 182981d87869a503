"""`gradekit new NAME`: the files of a new assignment, each a working example to edit (see
gradekit/contract.py for the contract they fulfil). The scaffold grades as it is: its one check
passes on its solution and fails on its release."""
import re

from gradekit.contract import ASSIGNMENTS, names
from gradekit.errors import KitError

INIT = '''"""{title}: what the assignment is, for whom, and where its spec lives."""
from gradekit.contract import Assignment, Question

ASSIGNMENT = Assignment(
    name="{name}",
    title="{title}",
    defines=("scale",),  # what the notebook must define for the checks to run
    questions=(
        Question("question-1", "Why does `scale` multiply rather than add?",
                 "Model answer, shown only in the source notebook and to graders."),
    ),
)
'''

CHECKS = '''"""The core checks of {name}: shipped to students as {name}_checks.py, run by the autograder.
Write each check as a probe (drive the submission through `ns`), an expectation (from the inputs
alone) and a judgement; see selfcheck.py for the contract. torch is the only import allowed."""
import torch


def make_inputs():
    g = torch.Generator().manual_seed(0)  # private: never torch's global generator
    return {{"x": torch.randn(4, 3, generator=g), "factor": 2.5}}


def probe_scale(ns, inputs):
    return ns.read(ns.scale(inputs["x"], inputs["factor"]))


def judge_close(expected, observed):
    try:
        if torch.allclose(observed, expected):
            return True, ""
        return False, "the result differs from x * factor"
    except Exception as error:
        return False, f"the result cannot be compared ({{type(error).__name__}})"


CHECKS = [
    dict(name="Scale by a factor", probe=probe_scale, expect=lambda inputs: inputs["x"] * inputs["factor"],
         judge=judge_close, hint="Multiply every entry of x by factor."),
]
'''

SOLUTION = '''# %% imports
import torch


# %% scale
def scale(x, factor):
    # PART 1: multiply x by factor.
    # UPDATE:
    ### BEGIN SOLUTION
    ### PLACEHOLDER result = torch.zeros(1)
    result = x * factor
    ### END SOLUTION
    return result
'''

NOTEBOOK = '''# {title}

What students learn here, and the maths, in Markdown (LaTeX works: $y = a x$).

<!-- cell: imports -->

## Your task

Complete the function below: replace each placeholder under a `# PART n` comment.

<!-- cell: scale -->

## Check your work

Run the next cell: it runs this assignment's checks on your code and says what each failed check
expected.

<!-- self-check -->

### Autograder cells

nbgrader's Validate button runs these; leave them as they are.

<!-- tests -->

## Discussion

<!-- questions -->
'''


def new(course, name):
    """Create the assignment's files; refuse to overwrite anything."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise KitError(f"{name!r}: an assignment's name is lowercase letters, digits and _, starting with a letter")
    if name in names():
        raise KitError(f"assignment {name!r} exists already")
    title = name.replace("_", " ").capitalize()
    files = {
        ASSIGNMENTS / name / "__init__.py": INIT.format(name=name, title=title),
        ASSIGNMENTS / name / "checks.py": CHECKS.format(name=name),
        ASSIGNMENTS / name / "notebook.md": NOTEBOOK.format(title=title),
        course.solution_path(name): SOLUTION,
    }
    taken = [str(path) for path in files if path.exists()]
    if taken:
        raise KitError(f"would overwrite {', '.join(taken)}")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
