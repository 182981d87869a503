"""The batch normalization network assignment: the reference passes every check; each realistic
mistake gets, check for check, the verdicts the core checks give in one process and the failures
the spec's pass conditions name; each hidden check catches a mistake the core checks let through;
correct implementations written other ways pass everything; the release scores 0."""
import contextlib
import html
import io
import time

import pytest
import torch
import torch.nn.functional as F

from conftest import COURSE
from gradekit import contract, selfcheck
from gradekit.grade.submission import code_cells
from mutants import batchnorm_network as mutants
from mutants import run_cells

NAME = "batchnorm_network"
ASSIGNMENT = contract.get(NAME)
CORE, HIDDEN = ASSIGNMENT.modules()
BY_NAME = {m.name: m for m in mutants.MUTANTS + mutants.HONEST}


@pytest.fixture(scope="module")
def graded(grade):
    """graded(mutant) -> (Result, seconds): each mutant graded once in the shared sandbox."""
    done = {}

    def run(mutant):
        if mutant.name not in done:
            start = time.monotonic()
            result = grade(NAME, mutant.cells(), student=mutant.name)
            done[mutant.name] = (result, time.monotonic() - start)
        return done[mutant.name][0]
    run.seconds = lambda mutant: done[mutant.name][1]
    return run


def failed(results):
    return [(r.check.label, r.message) for r in results if not r.passed]


def test_reference_passes_every_check_well_within_the_caps(graded, course):
    reference = BY_NAME["reference"]
    result = graded(reference)
    assert result.status == "ok", result.message
    assert failed(result.checks) == []
    assert len(result.core) == 8 and len(result.hidden) >= 7
    assert result.score == result.max_score == 8
    # Training, the deep network and the hidden checks' four trainings stay far from the wall cap.
    assert graded.seconds(reference) < course.sandbox.wall_seconds / 2


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=[m.name for m in mutants.MUTANTS])
def test_grader_matches_the_checks_run_cells(graded, mutant):
    original = selfcheck.run_checks(CORE, run_cells(mutant.cells()))
    result = graded(mutant)
    verdicts = [r.passed for r in result.core]
    assert verdicts == [passed for passed, _ in original], (failed(result.core), original)
    if mutant.expected_failures is not None:
        assert {n for n, ok in enumerate(verdicts) if not ok} == mutant.expected_failures, failed(result.core)


def test_every_hidden_check_has_a_hint_and_a_mutant():
    hidden = [c for c in ASSIGNMENT.scored_checks() if c.hidden]
    assert len(hidden) >= 7 and all(c.hint for c in hidden)
    assert set(mutants.HIDDEN_CATCHES) == {c.name for c in hidden}


@pytest.mark.parametrize("check_name", sorted(mutants.HIDDEN_CATCHES))
def test_hidden_check_catches_what_the_core_checks_miss(graded, check_name):
    for name in (mutants.HIDDEN_CATCHES[check_name],) + mutants.ALSO_CAUGHT.get(check_name, ()):
        result = graded(BY_NAME[name])
        assert result.status == "ok", result.message
        assert failed(result.core) == [], name
        verdict = next(r for r in result.hidden if r.check.name == check_name)
        assert not verdict.passed and verdict.message, name
        assert verdict.check.hint in html.unescape(result.feedback_html())


@pytest.mark.parametrize("mutant", mutants.HONEST, ids=[m.name for m in mutants.HONEST])
def test_correct_alternatives_pass_every_check(graded, mutant):
    result = graded(mutant)
    assert result.status == "ok", result.message
    assert failed(result.checks) == []


def test_summed_loss_is_decided_with_a_wide_margin():
    """The averaged loss trains about 50 times too slowly: over ten torch seeds, the reference's
    training loss per seed stays below half the hidden check's limit and the averaged loss's above
    one and a half times it, so the mean over the check's seeds is never a close call."""
    data = CORE.load_data()

    def training_losses(mutant):
        namespace = run_cells(mutant.cells())
        losses = []
        for seed in range(10):
            torch.manual_seed(seed)
            model = namespace["Model"]()
            namespace["train_model"](model, data["x_train"], data["y_train"])
            model.eval()
            with torch.no_grad():
                losses.append(F.binary_cross_entropy(model(data["x_train"]), data["y_train"]).item())
        return losses

    assert max(training_losses(BY_NAME["reference"])) < HIDDEN.MAX_TRAIN_LOSS / 2
    assert min(training_losses(BY_NAME["averaged-loss"])) > HIDDEN.MAX_TRAIN_LOSS * 1.5
    assert 0 not in HIDDEN.LOSS_SEEDS  # the core check's seed: the hidden check sees new ones


def test_release_scores_zero_in_one_process():
    cells = code_cells(COURSE / "release" / NAME / ASSIGNMENT.notebook, ASSIGNMENT.kit_cell)
    namespace = run_cells(cells)
    assert set(ASSIGNMENT.defines) <= set(namespace)
    assert [passed for passed, _ in selfcheck.run_checks(CORE, namespace)] == [False] * 8


def test_release_runs_and_gives_nothing_away():
    """The release's cells run without an error, and its solution cells hold placeholders only."""
    cells = code_cells(COURSE / "release" / NAME / ASSIGNMENT.notebook, ASSIGNMENT.kit_cell)
    namespace = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for number, source in cells:
            exec(compile(source, f"<cell {number}>", "exec"), namespace)
    code = "\n".join(source for _, source in cells)
    assert code.count("# UPDATE:") == 13
    for given_away in ("nn.Parameter", "register_buffer", "unbiased=False", "add_(", "randperm(", 'reduction="sum"',
                       "kaiming_normal_", "bias=False)", "1.02", "0.49"):
        assert given_away not in code, given_away
