"""The BatchNorm1d parity assignment (spec: shared/spec/batchnorm1d-parity.md): the reference
passes every check; the sandboxed grader gives, check for check, the verdicts of the checks run in
one process, and the spec's failures for each realistic mistake; each hidden check catches a
mistake the core checks let through; correct completions written other ways pass everything."""
import ast
import html
import sys

import nbformat
import pytest
import torch

from conftest import COURSE
from gradekit import contract, selfcheck
from gradekit.grade.submission import code_cells
from mutants import batchnorm1d_parity as mutants

NAME = "batchnorm1d_parity"
ASSIGNMENT = contract.get(NAME)
CHECKS, HIDDEN = ASSIGNMENT.modules()
BY_NAME = {m.name: m for m in mutants.MUTANTS}
RELEASED = COURSE / "release" / NAME / ASSIGNMENT.notebook


def run_in_one_process(code, module=CHECKS):
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<submission>", "exec"), namespace)
    return [passed for passed, _ in selfcheck.run_checks(module, namespace)]


def failures(result):
    return [(r.check.label, r.message) for r in result.checks if not r.passed]


# ---- the contract ----------------------------------------------------------------------------

def test_eight_core_checks_of_one_point_and_two_questions():
    core = [c for c in ASSIGNMENT.scored_checks() if not c.hidden]
    assert [c.name for c in core] == ["Initial state", "Training output", "Running mean", "Running variance",
                                      "Eval output", "Gradients", "Buffers carry no graph",
                                      "The momentum 0.3 example"]
    assert sum(c.points for c in core) == 8 and all(c.hint for c in core)
    assert len(ASSIGNMENT.questions) == 2 and ASSIGNMENT.defines == ("BatchNorm1d",)


def test_inputs_are_the_draws_of_torch_manual_seed_42():
    state = torch.random.get_rng_state()
    inputs = CHECKS.make_inputs()
    for module in (CHECKS, HIDDEN):  # neither the inputs nor the expectations touch torch's generator
        for check in selfcheck.load(module):
            check.expect(module.make_inputs())
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.random.fork_rng():
        torch.manual_seed(42)
        batches = [torch.randn(32, 10) * 3 + 1 for _ in range(4)]
        w = torch.randn(32, 10)
    assert all(torch.equal(a, b) for a, b in zip(inputs["batches"], batches))
    assert inputs["x"] is inputs["batches"][0] and torch.equal(inputs["w"], w)
    assert torch.equal(inputs["example"], torch.tensor([[1.0, 2, 3, 4, 5]] * 3))


def test_the_momentum_example_is_what_pytorch_gives():
    expected = CHECKS.expect_example(CHECKS.make_inputs())
    assert torch.allclose(expected["running_mean"], torch.tensor([0.51, 1.02, 1.53, 2.04, 2.55]))
    assert torch.allclose(expected["running_var"], torch.full((5,), 0.49))


def test_checks_import_only_torch_and_the_standard_library():
    tree = ast.parse(open(CHECKS.__file__).read())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"torch"} | sys.stdlib_module_names, imported


def test_every_hidden_check_has_a_hint_and_a_mutant():
    hidden = [c for c in ASSIGNMENT.scored_checks() if c.hidden]
    assert len(hidden) >= 7 and all(c.hint for c in hidden)
    assert set(mutants.HIDDEN_CATCHES) == {c.name for c in hidden}
    assert set(mutants.HIDDEN_CATCHES.values()) <= set(BY_NAME)


# ---- grading ---------------------------------------------------------------------------------

def test_reference_passes_every_check(grade):
    result = grade(NAME, BY_NAME["reference"].code())
    assert result.status == "ok", result.message
    assert failures(result) == []
    assert result.score == result.max_score == 8


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=[m.name for m in mutants.MUTANTS])
def test_grader_matches_the_checks_run_in_one_process(grade, mutant):
    original = run_in_one_process(mutant.code())
    result = grade(NAME, mutant.code())
    graded = [r.passed for r in result.core]
    assert graded == original, [r.message for r in result.core]
    if mutant.expected_failures is not None:
        assert {n for n, ok in enumerate(graded) if not ok} == mutant.expected_failures, \
            [r.message for r in result.core if not r.passed]


@pytest.mark.parametrize("check_name", sorted(mutants.HIDDEN_CATCHES))
def test_hidden_check_catches_what_the_core_checks_miss(grade, check_name):
    mutant = BY_NAME[mutants.HIDDEN_CATCHES[check_name]]
    result = grade(NAME, mutant.code())
    assert [r.check.number for r in result.core if not r.passed] == [], [r.message for r in result.core]
    verdict = next(r for r in result.hidden if r.check.name == check_name)
    assert not verdict.passed and verdict.message
    assert verdict.check.hint in html.unescape(result.feedback_html())


@pytest.mark.parametrize("mutant", mutants.HONEST, ids=[m.name for m in mutants.HONEST])
def test_correct_completions_pass_every_check(grade, mutant):
    assert run_in_one_process(mutant.code()) == [True] * len(CHECKS.CHECKS)
    assert run_in_one_process(mutant.code(), HIDDEN) == [True] * len(HIDDEN.CHECKS)
    assert failures(grade(NAME, mutant.code())) == []


# ---- the release -----------------------------------------------------------------------------

def test_release_scores_zero_in_one_process():
    cells = code_cells(RELEASED, ASSIGNMENT.kit_cell)
    assert run_in_one_process("\n".join(source for _, source in cells)) == [False] * 8


def test_release_is_the_skeleton():
    notebook = nbformat.read(RELEASED, as_version=4)
    code = next(c.source for c in notebook.cells if c.get("id") == "batchnorm1d-class")
    assert code.count("# UPDATE:") == 6 and all(f"# PART {part}:" in code for part in range(1, 7))
    lines = [line.strip() for line in code.splitlines()]
    for placeholder in ("self.gamma = torch.ones(1)", "self.running_mean = torch.zeros(1)", "mean = torch.zeros(1)",
                        "x_hat = torch.zeros(1)", "self.out = torch.zeros(1)", "pass", "return []"):
        assert placeholder in lines, placeholder
    for given_away in ("requires_grad=True", "correction", "torch.sqrt", "no_grad", "n - 1", "self.gamma, self.beta"):
        assert given_away not in code, given_away
    for given in ("class BatchNorm1d:", "def __init__(self, dim, eps=1e-5, momentum=0.1):", "self.training = True",
                  "def __call__(self, x):", "return self.out", "def parameters(self):"):
        assert given in code, given


def test_hidden_checks_never_reach_students():
    text = "".join(p.read_text() for p in RELEASED.parent.iterdir())
    for secret in ["gradekit.assignments", "HIDDEN TESTS", "BEGIN SOLUTION", *mutants.HIDDEN_CATCHES]:
        assert secret not in text, secret
