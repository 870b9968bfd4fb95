"""Batch compaction in the attack engine (``solver.compact_below``): a solve goes on with the
rows still running, and the results are those without compaction.

Equality is bitwise, with a model evaluated one row at a time. A batched model's kernels pick
their blocking by batch size, so a row's logits move in the last bits (about 1e-6 on mnist-cw)
with the number of rows evaluated beside it; compaction changes that number, nothing else."""

import attrs
import pytest
import torch
from torch import nn

from attacks import Attack
from attacks.builtin import builtin_spec
from attacks.spec import LagrangianSearch
from attacks.data import load_dataset
from attacks.models import load_model


class RowWise(nn.Module):
    """The model one row at a time (a row's numbers do not depend on its batch), counting the
    rows it differentiated."""

    def __init__(self, model):
        super().__init__()
        self.model, self.grad_rows = model, 0

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            self.grad_rows += x.shape[0]
        return torch.cat([self.model(x[i:i + 1]) for i in range(x.shape[0])])


def short(name, iterations=10, **kw):
    """``name`` with a short search (some examples go on into the rescue) and refine."""
    spec = builtin_spec(name, **kw)
    search = attrs.evolve(spec.search, iterations=iterations, rescue_iterations=40,
                          track_every=5, sections=[LagrangianSearch(grace=10)])
    return attrs.evolve(spec, search=search, refine=attrs.evolve(spec.refine, iterations=30))


@pytest.mark.parametrize("spec", [short("strattack"), short("strattack", budget=57),
                                  short("strattack-paper", iterations=20, budget=130)],
                         ids=["lagrangian", "lagrangian-budget", "binary-budget"])
def test_results_equal_with_and_without_compaction(spec):
    model = RowWise(load_model("mnist-cw", "cpu"))
    x, y = load_dataset("mnist-test20", n=8)
    t = (y + 3) % 10
    out, rows = {}, {}
    for below in (0.0, 1.0):
        model.grad_rows = 0
        solver = attrs.evolve(spec.solver, compact_below=below)
        out[below] = Attack(model, attrs.evolve(spec, solver=solver), grid=False)(x, y, t)
        rows[below] = model.grad_rows
    off, on = out[0.0], out[1.0]
    assert rows[1.0] < rows[0.0]  # it compacted: the model ran fewer rows
    assert rows[1.0] >= int(on.gradient_evals.sum())
    for field in ("adversarial", "success", "gradient_evals", "refined", "nonfinite"):
        assert torch.equal(getattr(on, field), getattr(off, field)), field
    torch.testing.assert_close(on.c, off.c, rtol=0, atol=0, equal_nan=True)
    assert (on.forward_evals <= off.forward_evals).all()  # checks on the rows held only
