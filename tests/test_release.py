"""One source of truth: each source folder is built from solutions/ and the assignment's text,
each release by nbgrader; the T04 release is the original skeleton."""
import nbformat
import pytest

from conftest import COURSE, copy_course
from gradekit import contract
from gradekit.build import release, source
from gradekit.course import Course

RELEASED = COURSE / "release" / "batchnorm" / "batchnorm.ipynb"
PLACEHOLDERS = ["self.gamma = torch.ones(1)", "self.beta = torch.ones(1)", "self.moving_mu = torch.zeros(1)",
                "self.moving_sigma = torch.zeros(1)", "x_hat = torch.zeros(1)", "mean = torch.zeros(1)",
                "var = torch.zeros(1)", "z = torch.zeros(1)"]


def cell(notebook_path, grade_id):
    notebook = nbformat.read(notebook_path, as_version=4)
    return next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.mark.parametrize("name", contract.names())
def test_source_folder_is_built_from_the_solution(course, name):
    assert source.stale(course, contract.get(name)) == [], "source/ is stale: run `make source`"


@pytest.mark.parametrize("name", contract.names())
def test_committed_release_equals_a_fresh_nbgrader_release(tmp_path, name):
    assignment = contract.get(name)
    fresh = release.release(Course(copy_course(tmp_path)), assignment, release_dir="fresh")
    committed = COURSE / "release" / name
    assert sorted(p.name for p in fresh.parent.iterdir()) == sorted(p.name for p in committed.iterdir())
    for path in fresh.parent.iterdir():
        assert path.read_text() == (committed / path.name).read_text(), f"release/{name} is stale: run `make release`"


@pytest.mark.parametrize("name", contract.names())
def test_release_holds_no_solution_and_no_model_answer(course, name):
    assignment = contract.get(name)
    text = (COURSE / "release" / name / assignment.notebook).read_text()
    for secret in ("BEGIN SOLUTION", "PLACEHOLDER", "BEGIN HIDDEN", "NotImplementedError"):
        assert secret not in text, secret
    for question in assignment.questions:
        assert question.answer.strip()[:60] not in text
        assert cell(COURSE / "release" / name / assignment.notebook, question.id).source == "YOUR ANSWER HERE"


def test_release_is_the_original_skeleton():
    code = cell(RELEASED, "batchnorm-class").source
    for part in range(1, 9):
        assert f"# PART {part}:" in code
    assert code.count("# UPDATE:") == 8
    lines = [line.strip() for line in code.splitlines()]
    for placeholder in PLACEHOLDERS:
        assert placeholder in lines
    assert lines.count("mean = torch.zeros(1)") == 2 and lines.count("x_hat = torch.zeros(1)") == 2
    for given_away in ("nn.Parameter", "register_buffer", "torch.sqrt(var", "param_shape", "shape[1]", "input_rank"):
        assert given_away not in code, given_away
    # What the original gives: the ValueErrors, the branch on grad mode, the rank dispatch, the logging.
    for given in ("raise ValueError", "torch.is_grad_enabled()", "len(x.shape) == 2", "len(x.shape) == 4",
                  "self._tmp_x_hat_test = x_hat", "self._tmp_moving_sigma = self.moving_sigma", "return z"):
        assert given in code, given
