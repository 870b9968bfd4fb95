"""The last step of the ADMM attacks: each success moved to the boundary along its own ray
(attacks.shrink), on a linear model whose boundary is known exactly."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attacks import CWL2
from attacks.data import load_dataset
from attacks.grid import on_grid
from attacks.losses import margin
from attacks.models import load_model
from attacks.shrink import shrink_to_boundary
from attacks.spec import SearchSpec
from attacks.targets import Targets


class Linear(nn.Module):
    """Two logits ``[0, w·x − t]``: class 1 wins where ``w·x > t``; ``t`` a number or one
    per row of the batch the model is called on."""

    def __init__(self, w, t):
        super().__init__()
        self.w, self.t = w.flatten(), t

    def forward(self, x):
        score = x.flatten(1) @ self.w - self.t
        return torch.stack([torch.zeros_like(score), score], 1)


def at_fraction(x0, adv, w, frac, kappa=0.0):
    """The linear model whose boundary (margin −κ) is at x0 + frac·(adv − x0) on each row."""
    return Linear(w, x0.flatten(1) @ w + frac * ((adv - x0).flatten(1) @ w) - kappa)


def towards_1(b):
    return Targets(torch.zeros(b, dtype=torch.long), torch.ones(b, dtype=torch.long),
                   torch.ones(b, dtype=torch.bool))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.floats(0.05, 0.95), st.integers(1, 14),
       st.sampled_from([0.0, 0.5]))
def test_bisection_lands_within_its_precision_past_the_exact_boundary(seed, frac, steps, kappa):
    """x0 + αδ is adversarial (margin ≤ −κ) from α* = (t + κ − w·x0)/(w·δ) on: the shrunk
    example is α·δ with α* ≤ α ≤ α* + 2^-steps, adversarial with κ, in the box."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(3, 1, 4, 4, generator=g) * 0.5
    delta = torch.rand(3, 1, 4, 4, generator=g) * 0.5  # x0 + δ in [0, 1]
    w = torch.rand(16, generator=g) + 0.1  # w·δ > 0
    model = at_fraction(x0, x0 + delta, w, frac, kappa)
    adv, spent = shrink_to_boundary(model, x0, x0 + delta, torch.ones(3, dtype=torch.bool),
                                    towards_1(3), steps, kappa=kappa)
    alpha = ((adv - x0).flatten(1) * delta.flatten(1)).sum(1) / delta.flatten(1).pow(2).sum(1)
    assert torch.allclose(adv - x0, alpha.view(-1, 1, 1, 1) * delta, atol=1e-6)
    assert (alpha >= frac - 1e-5).all() and (alpha <= frac + 2.0 ** -steps + 1e-5).all()
    m = margin(model(adv), torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long),
               torch.ones(3, dtype=torch.bool))
    assert (m <= -kappa).all()
    assert spent.tolist() == [steps] * 3


def test_failures_are_untouched_and_cost_nothing():
    x0 = torch.full((2, 1, 2, 2), 0.2)
    adv = torch.full((2, 1, 2, 2), 0.8)
    model = Linear(torch.ones(4), 1.0)  # both adversarial; only the first is a success
    out, spent = shrink_to_boundary(model, x0, adv, torch.tensor([True, False]), towards_1(2), 8)
    assert torch.equal(out[1], adv[1]) and spent.tolist() == [8, 0]
    assert (out[0] < adv[0]).all()
    same, none = shrink_to_boundary(model, x0, adv, torch.tensor([True, True]), towards_1(2), 0)
    assert same is adv and none.tolist() == [0, 0]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2 ** 31 - 1), st.integers(1, 12))
def test_on_the_grid_no_entry_grows_and_the_answer_stays_on_it(seed, steps):
    """On the 8-bit grid every candidate is rounded: the result is on the grid, adversarial,
    and no |δ_i| is larger than before (the support never grows)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randint(0, 128, (4, 1, 3, 3), generator=g).float() / 255
    k = torch.randint(-40, 100, (4, 1, 3, 3), generator=g).float()
    k = torch.where(torch.rand(4, 1, 3, 3, generator=g) < 0.3, torch.zeros_like(k), k)
    adv = ((x0 * 255).round() + k).clamp(0, 255) / 255
    w = torch.rand(9, generator=g) + 0.1
    ok = (adv - x0).flatten(1) @ w > 0  # the successes: adversarial at α = 1
    x0, adv = x0[ok], adv[ok]
    model = at_fraction(x0, adv, w, 0.4)
    out, _ = shrink_to_boundary(model, x0, adv, torch.ones_like(ok[ok]), towards_1(len(x0)),
                                steps, grid=True)
    assert on_grid(out)
    before, after = (adv - x0).abs(), (out - x0).abs()
    assert (after <= before + 1e-6).all()
    assert ((out - x0)[before == 0] == 0).all()
    with torch.no_grad():
        assert (model(out).argmax(1) == 1).all()


def test_the_default_cw_ends_on_the_boundary_at_no_gradient_cost():
    """On real digits the shrink leaves margins within a hair of 0 and adds forward
    evaluations only: the same gradient evaluations with it as without, the ℓ2 never larger."""
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=2)
    runs = {steps: CWL2(model, search=SearchSpec(iterations=60, rescue_iterations=60,
                                                 shrink_steps=steps))(x, y, targets="all")
            for steps in (0, 10)}
    off, on = runs[0], runs[10]
    assert torch.equal(off.success, on.success) and on.success.all()
    assert torch.equal(off.gradient_evals, on.gradient_evals)
    assert (on.forward_evals == off.forward_evals + 10).all()
    l2 = lambda r: r.delta.flatten(1).norm(dim=1)
    assert (l2(on) <= l2(off) + 1e-6).all() and l2(on).mean() < l2(off).mean()
