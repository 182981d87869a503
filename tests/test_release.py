"""One source of truth: the source notebook is built from solutions/, the release by nbgrader."""
import nbformat

from conftest import COURSE
from course import copy_course
from gradekit import assignment as assignments
from gradekit.assign import release, source

BATCHNORM = assignments.get("batchnorm")
RELEASED = COURSE / "release" / "batchnorm" / "batchnorm.ipynb"
PLACEHOLDERS = ["self.gamma = torch.ones(1)", "self.beta = torch.ones(1)", "self.moving_mu = torch.zeros(1)",
                "self.moving_sigma = torch.zeros(1)", "x_hat = torch.zeros(1)", "mean = torch.zeros(1)",
                "var = torch.zeros(1)", "z = torch.zeros(1)"]


def cell(notebook_path, grade_id):
    notebook = nbformat.read(notebook_path, as_version=4)
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def test_source_notebook_is_built_from_the_solution():
    assert source.is_current(BATCHNORM, COURSE), "source/ is stale: run `make source`"
    solution = BATCHNORM.solution_path(COURSE).read_text()
    assert cell(source.path(BATCHNORM, COURSE), "batchnorm-class").source in solution


def test_committed_release_equals_a_fresh_nbgrader_release(tmp_path):
    fresh = release.release(BATCHNORM, copy_course(tmp_path))
    assert fresh.read_text() == RELEASED.read_text(), "release/ is stale: run `make release`"


def test_release_has_the_skeleton_and_nothing_hidden():
    text = RELEASED.read_text()
    code = cell(RELEASED, "batchnorm-class").source
    for part in range(1, 9):
        assert f"# PART {part}:" in code
    assert code.count("# UPDATE:") == 8
    lines = [line.strip() for line in code.splitlines()]
    for placeholder in PLACEHOLDERS:
        assert placeholder in lines
    assert lines.count("mean = torch.zeros(1)") == 2 and lines.count("x_hat = torch.zeros(1)") == 2
    for secret in ("BEGIN SOLUTION", "PLACEHOLDER", "nn.Parameter", "register_buffer", "HIDDEN TESTS",
                   "assert_check(", "torch.sqrt(var", "NotImplementedError"):
        assert secret not in code, secret
    assert "assert_check(0, BatchNorm)" not in text and "BEGIN HIDDEN" not in text
    assert "extra_checks" not in text and "assert_all" not in text
    model_answer = cell(source.path(BATCHNORM, COURSE), "question-1").source
    assert model_answer not in text and cell(RELEASED, "question-1").source == "YOUR ANSWER HERE"
