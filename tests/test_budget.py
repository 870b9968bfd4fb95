"""The hard per-example budget of gradient evaluations (``search.budget``), proven by a model
wrapper that counts, per example, the rows it ran forward+backward."""

import attrs
import pytest
import torch
from torch import nn

from attacks import CWL2, StrAttack
from attacks.builtin import builtin_spec
from attacks.spec import PAPER_REFINE, PAPER_SEARCH, SearchSpec, SpecError
from attacks.verify import Evaluations


class GradRowCounter(nn.Module):
    """Counts the rows the model ran with autograd on (forward+backward), from shapes only."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.rows += x.shape[0]
        return self.model(x)


def _setup(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(10, 64, generator=g))
    x = torch.rand(b, 1, 8, 8, generator=g) * 0.2 + torch.linspace(0, 0.8, b).view(-1, 1, 1, 1)
    return net.eval(), x


@pytest.mark.parametrize("make,budget", [
    (lambda m, b: StrAttack(m, budget=b), 37),  # the default: lagrangian search + refine
    (lambda m, b: StrAttack(m, budget=b, grid=True), 91),  # + grid
    (lambda m, b: CWL2(m, budget=b), 50),
    (lambda m, b: StrAttack(m, search=attrs.evolve(PAPER_SEARCH, budget=b)), 1000),  # binary
    (lambda m, b: CWL2(m, budget=b, refine=True), 61),
])
def test_budget_is_honoured_exactly_per_example(make, budget):
    net, x = _setup()
    counter = GradRowCounter(net)
    attack = make(counter, budget)
    with torch.no_grad():
        y = net(x).argmax(1)
    targets = (y + 1) % 10
    if attack.grid:
        x = (x * 255).round() / 255
    r = attack(x, y, targets)
    assert (r.gradient_evals <= budget).all()
    # the budget binds here and is used (shares that a stage cannot use — a refine without a
    # success, a grid repair nobody needs — stay unspent)
    assert (r.gradient_evals >= 0.9 * budget).any()
    # batched: every row the model differentiated is counted on some example, nothing hidden
    assert counter.rows == int(r.gradient_evals.sum())
    # one example at a time: the model's own count is that example's, and the same as batched
    for i in range(x.shape[0]):
        counter.rows = 0
        one = attack(x[i:i + 1], y[i:i + 1], targets[i:i + 1])
        assert counter.rows == int(one.gradient_evals) <= budget
        assert int(one.gradient_evals) == int(r.gradient_evals[i])


def test_strattack_paper_is_the_published_search():
    spec = builtin_spec("strattack-paper")
    assert spec.search == PAPER_SEARCH and spec.search.mode == "binary"
    search = spec.search
    assert (search.section("binary").steps, search.iterations, search.rescue_iterations) == \
        (6, 200, 400)
    assert spec.refine == PAPER_REFINE and (spec.refine.quantile, spec.refine.iterations) == \
        (0.03, 400)
    assert spec.search.budget is None and spec.loss.project is False
    assert builtin_spec("strattack").search.mode == "lagrangian"
    assert builtin_spec("strattack", budget=500).search.budget == 500


def test_budget_errors_name_the_argument():
    with pytest.raises(SpecError, match="search.budget"):
        SearchSpec(budget=0)
    with pytest.raises(SpecError, match="search.mode"):
        SearchSpec(mode="bisect")
    with pytest.raises(ValueError, match="budget"):
        Evaluations.zeros(2, "cpu", budget=-1)
