"""The bound on what a judgement may build from a submission's answers (gradekit/grade/budget.py):
every way of turning small tensors into a huge one is refused before it allocates, honest
judging is untouched, and the bound holds in the thread that set it alone."""
import threading

import pytest
import torch
import torch.nn.functional as F

from gradekit.grade.budget import ElementBudget, OverBudget

LIMIT = 1 << 20
N = 1 << 11  # N * N = 4 * LIMIT

AMPLIFIERS = {
    "broadcast": lambda: torch.ones(N, 1) + torch.ones(1, N),
    "three-way broadcast": lambda: torch.ones(128, 1, 1) * torch.ones(1, 128, 1) * torch.ones(1, 1, 128),
    "expanded view made whole": lambda: torch.ones(N, 1).expand(N, N).contiguous(),
    "matmul": lambda: torch.ones(N, 2) @ torch.ones(2, N),
    "outer": lambda: torch.outer(torch.ones(N), torch.ones(N)),
    "einsum": lambda: torch.einsum("i,j->ij", torch.ones(N), torch.ones(N)),
    "gather by index": lambda: torch.ones(1, N)[torch.zeros(N, dtype=torch.long)],
    "repeat": lambda: torch.ones(4).repeat(N, N),
    "factory from answered sizes": lambda: torch.zeros(N, N),
    "factory from an answered shape": lambda: torch.full((N, N), 0.5),
    "factory from a size keyword": lambda: torch.ones(size=[N, N]),
    "factory from an answered count": lambda: torch.zeros(torch.tensor(N), N),
    "pad": lambda: F.pad(torch.ones(2), (0, 4 * LIMIT)),
}


@pytest.mark.parametrize("make", AMPLIFIERS.values(), ids=AMPLIFIERS.keys())
def test_amplifiers_are_refused(make):
    make()  # without the bound, each builds 4M elements or more
    with ElementBudget(LIMIT), pytest.raises(OverBudget, match="more than 1048576 elements"):
        make()


def test_honest_judging_is_untouched():
    x, y = torch.randn(64, 3, 8, 8), torch.randn(64, 3, 8, 8)
    gamma = torch.randn(3, 1, 1)
    with ElementBudget(LIMIT):
        out = gamma * x + y
        results = (torch.allclose(out, out.clone(), rtol=1e-5, atol=1e-6), (out - y).abs().max().item(),
                   out.double().std(dim=0, unbiased=False).shape, out[:1].shape, out[torch.tensor([0, 2])].shape,
                   x.reshape(64, -1) @ torch.ones(192, 4), f"{out.sum():.3g}", bool((out > -1e9).all()))
    assert results[0] and results[2] == (3, 8, 8) and results[3] == (1, 3, 8, 8) and results[4] == (2, 3, 8, 8)
    assert results[5].shape == (64, 4)


def test_factories_of_plain_sizes_are_bounded_without_a_dry_run(monkeypatch):
    """torch.full and the like are judged from the size they ask for (the meta dry run costs more
    than the small tensors judgements build with them); any other size still gets a dry run."""
    monkeypatch.setattr(ElementBudget, "_dry_run", lambda *args: pytest.fail("dry run for a plain size"))
    with ElementBudget(LIMIT):
        made = [torch.full((1, 3, 1, 1), 0.5), torch.zeros(2, 3), torch.ones(size=(4,)), torch.empty([0, 7])]
        with pytest.raises(OverBudget):
            torch.full([N, N], 2.0)
    assert [tuple(t.shape) for t in made] == [(1, 3, 1, 1), (2, 3), (4,), (0, 7)]
    assert torch.equal(made[0], torch.tensor(0.5).expand(1, 3, 1, 1))


def test_the_bound_holds_in_its_own_thread_only():
    outcome = {}

    def elsewhere():
        outcome["size"] = (torch.ones(N, 1) + torch.ones(1, N)).numel()

    with ElementBudget(LIMIT):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        with pytest.raises(OverBudget):
            torch.ones(N, 1) + torch.ones(1, N)
    assert outcome["size"] == N * N
