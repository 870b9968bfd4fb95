"""The lagrangian search (the default): its loss, known answers on a linear classifier, the
model only ever seeing valid images, and the refine never making an answer worse."""

import math
from typing import ClassVar

import attrs
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from attacks import CWL2, StrAttack
from attacks.builtin import builtin_spec, strattack
from attacks.losses import lagrangian_margin_loss, margin
from attacks.classifier import Classifier
from attacks.engine import Engine, Evaluations
from attacks.problems import term_blocks
from attacks.search.base import STRATEGIES, Strategy, register_strategy
from attacks.search.lagrangian import PENALTY_WINDOW, Multiplier
from attacks.search_spec import SECTIONS, register_section
from attacks.spec import (AttackSpec, BinarySearch, DeprecatedSpecKey, LagrangianSearch,
                          RefineSpec, SearchSpec, SpecError)
from attacks.targets import expand_targets


def _logits(k=4, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, k, generator=g, dtype=torch.float64) * 3
    labels = torch.zeros(b, dtype=torch.long)
    targets = torch.ones(b, dtype=torch.long)
    return z, labels, targets, torch.ones(b, dtype=torch.bool)


@settings(max_examples=60, deadline=None)
@given(lam=st.floats(0, 50), mu=st.floats(0.01, 10), kappa=st.floats(0, 5),
       seed=st.integers(0, 1000))
def test_lagrangian_loss_is_the_augmented_lagrangian_of_the_margin_constraint(lam, mu, kappa,
                                                                               seed):
    z, labels, targets, targeted = _logits(seed=seed)
    z.requires_grad_(True)
    lam_t = torch.full((3,), lam, dtype=torch.float64)
    value = lagrangian_margin_loss(z, labels, targets, targeted, lam_t, mu, kappa)
    g = margin(z, labels, targets, targeted) + kappa
    # ψ(g) = λg + μg²/2 where λ + μg ≥ 0, else −λ²/(2μ) (flat: the constraint is inactive)
    expected = torch.where(lam + mu * g >= 0, lam * g + mu * g ** 2 / 2,
                           torch.full_like(g, -lam ** 2 / (2 * mu)))
    assert torch.allclose(value, expected, rtol=1e-9, atol=1e-9)
    # ∇ψ = max(0, λ + μg)·∇m: the multiplier, corrected by μ times the violation
    (grad,) = torch.autograd.grad(value.sum(), z)
    (gm,) = torch.autograd.grad(g.sum(), z)
    slope = torch.clamp(lam + mu * g, min=0).detach().view(-1, 1)
    assert torch.allclose(grad, slope * gm, atol=1e-9)


class Linear2(nn.Module):
    """Two classes with logits (0, a·x − s): the margin towards class 0 is a·x − s."""

    def __init__(self, a: torch.Tensor, s: float):
        super().__init__()
        self.a, self.s = a.flatten(), s

    def forward(self, x):
        z1 = x.flatten(1) @ self.a - self.s
        return torch.stack([torch.zeros_like(z1), z1], dim=1)


@pytest.mark.parametrize("m0", [1.0, 2.0, 4.0])
def test_the_multiplier_converges_to_the_kkt_multiplier_on_a_linear_classifier(m0):
    """min ||δ||² s.t. m0 + a·δ ≤ 0 has δ* = −m0·a/||a||² and multiplier λ* = 2·m0/||a||²
    (from 2δ* + λ*a = 0): the C&W objective by the lagrangian search finds both."""
    a = torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(0))
    x0 = torch.full((1, 1, 6, 6), 0.5)
    model = Linear2(a, float(x0.flatten() @ a.flatten()) - m0)  # margin m0 at x0
    spec = builtin_spec("cw-l2", search=SearchSpec(iterations=400, rescue_iterations=0))
    r = CWL2(model, spec=spec, grid=False)(x0, torch.tensor([1]), torch.tensor([0]))
    norm = float(a.norm())
    assert (r.delta.abs() < 0.5).all()  # the box is not active: the known answer holds
    assert bool(r.success)
    assert float(r.metrics["l2"]) == pytest.approx(m0 / norm, rel=0.02)
    assert float(r.c) == pytest.approx(2 * m0 / norm ** 2, rel=0.15)


class RangeRecorder(nn.Module):
    """Records the smallest and largest input value the model was ever called with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.lo, self.hi = model, math.inf, -math.inf

    def forward(self, x):
        self.lo = min(self.lo, float(x.detach().min()))
        self.hi = max(self.hi, float(x.detach().max()))
        return self.model(x)


@pytest.fixture(scope="module")
def mnist():
    from attacks.data import load_dataset
    from attacks.models import load_model
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=3)
    return model, x, y


def test_the_model_only_ever_sees_valid_images(mnist):
    """loss.project (default): the loss is evaluated at x0 + P(z), never outside [0, 1]; the
    paper's linearisation at the iterate (strattack-paper) does leave the box."""
    model, x, y = mnist
    t = (y + 1) % 10
    search = SearchSpec(iterations=40, rescue_iterations=0)
    seen = RangeRecorder(model)
    StrAttack(seen, search=search, grid=False)(x, y, t)
    assert -1e-6 <= seen.lo and seen.hi <= 1 + 1e-6
    paper = builtin_spec("strattack-paper", search=attrs.evolve(
        search, mode="binary", sections=[BinarySearch(steps=2)]))
    seen = RangeRecorder(model)
    StrAttack(seen, spec=paper, grid=False)(x, y, t)
    assert seen.lo < -1e-3 or seen.hi > 1 + 1e-3


def test_the_refine_never_makes_an_answer_worse(mnist):
    """The refine replaces the search's answer only by an adversarial one of lower distortion
    (γ||δ||²: here ℓ2), so with it every example is at least as good as without it."""
    model, x, y = mnist
    search = SearchSpec(iterations=60, rescue_iterations=0)
    t = torch.tensor([[(int(v) + k) % 10 for k in (1, 4, 7)] for v in y]).flatten()
    xs, ys = x.repeat_interleave(3, 0), y.repeat_interleave(3)
    plain = StrAttack(model, search=search, refine=False, grid=False)(xs, ys, t)
    refined = StrAttack(model, search=search, grid=False)(xs, ys, t)
    assert torch.equal(plain.success, refined.success) and plain.success.any()
    ok = plain.success
    assert (refined.metrics["l2"][ok] <= plain.metrics["l2"][ok] + 1e-6).all()
    assert refined.refined[ok].any()  # and it does improve some of them
    better = refined.refined
    assert (refined.metrics["l2"][better] < plain.metrics["l2"][better]).all()
    # the support only shrinks
    assert ((refined.delta != 0) <= (plain.delta != 0)).all()


@settings(max_examples=40, deadline=None)
@given(tau=st.floats(0.1, 5), gamma=st.floats(0.1, 5), seed=st.integers(0, 1000))
def test_subgradient_is_the_group_lasso_and_ridge_gradient_at_active_groups(tau, gamma, seed):
    """The gradient map at a small step is τ·δ_G/||δ_G|| on non-zero groups, 0 on zero ones,
    and 2γδ/(1 + 2γt) for γ||δ||²: the subgradient the refine's c rescaling needs."""
    g = torch.Generator().manual_seed(seed)
    delta = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    keep = torch.rand(2, 1, 4, 4, generator=g) < 0.5  # half the 2×2 groups are zero
    delta = delta * keep.repeat_interleave(2, 2).repeat_interleave(2, 3)
    spec = strattack(tau=tau, gamma=gamma, group_size=2, stride=2)
    blocks = term_blocks(spec, (1, 8, 8))
    ridge, group = blocks[0].subgradient(delta), blocks[1].subgradient(delta)
    assert torch.allclose(ridge, 2 * gamma * delta / (1 + 2e-3 * gamma), atol=1e-9)
    norms = (torch.nn.functional.avg_pool2d(delta ** 2, 2) * 4).sqrt()
    unit = delta / norms.clamp(min=1e-300).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.allclose(group, tau * unit, atol=1e-9)


def test_the_refine_starts_at_the_kkt_multiplier_of_its_own_problem():
    """On a linear classifier (margin m0 + a·δ) the search stops at c·a = −(2γδ + τu); the
    refine (min γ||δ_S||² s.t. m0 + a_S·δ_S ≤ 0) has multiplier λ* = 2γ·m0/||a_S||². The
    rescaled start c·<g_r, g>/||g||² is λ* — the search's c, with the group term, is far above."""
    a = torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(1))
    x0 = torch.full((1, 1, 6, 6), 0.5)
    m0 = 1.0
    model = Linear2(a, float(x0.flatten() @ a.flatten()) - m0)
    spec = attrs.evolve(strattack(search=SearchSpec(iterations=3000, rescue_iterations=0)),
                        refine=RefineSpec(quantile=0.0))
    engine = Engine(Classifier(model), spec, (1, 6, 6))
    _, tg = expand_targets(torch.tensor([1]), 2, torch.tensor([0]), 0)
    best = engine.search(x0, tg, Evaluations.zeros(1, x0.device, None))
    assert bool(best.found) and (best.delta.abs() < 0.5).all()  # box inactive
    support = best.delta != 0
    a_s = a.flatten() * support.flatten()
    exact = 2 * m0 / float(a_s.norm()) ** 2  # γ = 1
    start = float(engine.refine_c(best, support))
    assert start == pytest.approx(exact, rel=0.03)
    assert float(best.c) > 1.5 * exact


def test_search_keys_are_validated_by_name():
    with pytest.raises(SpecError, match="search.mode"):
        SearchSpec(mode="adaptive")
    with pytest.raises(SpecError, match="mu"):
        LagrangianSearch(mu=0)
    with pytest.raises(SpecError, match="search.lagrangian.mu_growth_limit"):
        LagrangianSearch(mu_growth_limit=0.5)
    with pytest.raises(SpecError, match="rescue_iterations"):
        SearchSpec(rescue_iterations=-1)


# -- a third search, added without touching the other two -----------------------------------
@attrs.frozen
class OneSolve:
    """``[search.one_solve]`` (a test search): one solve at the constant c = c0 × scale."""

    name: ClassVar[str] = "one_solve"
    doc: ClassVar[str] = "one solve at a fixed c (a test search)"

    scale: float = attrs.field(default=1.0, metadata={"doc": "c = c0 × this"})

    def planned(self, search: SearchSpec) -> int:
        return search.iterations


class OneSolveStrategy(Strategy):
    name = OneSolve.name

    def run(self, engine, x0, tg, evals, limit, start):
        best = start.best
        cap = torch.clamp(evals.left(until=limit), max=self.search.iterations)
        idx = (cap > 0).nonzero().squeeze(1)
        part = best.select(idx)
        c = engine.c0(x0).index_select(0, idx) * self.settings.scale
        engine.solve(idx, x0, tg, c, part, start.z0.index_select(0, idx),
                     cap.index_select(0, idx), evals)
        best.put(idx, part)
        return best


@pytest.fixture
def one_solve():
    register_section(OneSolve)
    register_strategy(OneSolveStrategy)
    yield
    del SECTIONS[OneSolve.name], STRATEGIES[OneSolveStrategy.name]


def test_a_new_search_is_one_section_and_one_strategy(one_solve):
    """Registered by name, a search is a spec key (TOML, --set), runs through the engine, and
    plans its own budget; the built-in searches are untouched."""
    spec = builtin_spec("cw-l2").with_overrides("search.mode=one_solve", "search.iterations=40",
                                                "search.one_solve.scale=2")
    assert spec.search.section() == OneSolve(scale=2.0) and spec.search.planned == 40
    text = spec.to_toml()
    assert "[search.one_solve]" in text and "c = c0 × this" in text
    assert AttackSpec.from_toml(text) == spec
    a = torch.randn(1, 6, 6, generator=torch.Generator().manual_seed(0))
    x0 = torch.full((2, 1, 6, 6), 0.5)
    model = Linear2(a, float(x0[0].flatten() @ a.flatten()) - 1.0)  # margin 1 at x0
    r = CWL2(model, spec=spec, grid=False)(x0, torch.tensor([1, 1]), torch.tensor([0, 0]))
    assert r.success.all()
    assert (r.gradient_evals == 40).all()  # one solve, no rescue
    assert torch.allclose(r.c, torch.full((2,), 2 * 0.5))  # c0 (0.5 on small images) × scale
    assert {"lagrangian", "binary", "one_solve"} == set(STRATEGIES) == set(SECTIONS)


def test_a_search_name_is_registered_once(one_solve):
    with pytest.raises(ValueError, match="already registered"):
        register_section(OneSolve)
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(OneSolveStrategy)


# -- the older flat search keys ------------------------------------------------------------
@pytest.mark.parametrize("old, new, value", [("mu", "lagrangian.mu", 0.5),
                                             ("steps", "binary.steps", 3)])
def test_flat_search_keys_are_read_with_one_warning_naming_the_new_key(old, new, value):
    section, key = new.split(".")
    expected = builtin_spec("strattack").with_overrides(f"search.{new}={value}")
    assert expected.search.section(section) == attrs.evolve(
        LagrangianSearch() if section == "lagrangian" else BinarySearch(), **{key: value})
    with pytest.warns(DeprecatedSpecKey, match=f"search.{new}") as seen:
        assert builtin_spec("strattack").with_overrides(f"search.{old}={value}") == expected
    assert len(seen) == 1 and issubclass(DeprecatedSpecKey, FutureWarning)
    data = builtin_spec("strattack").to_dict()
    del data["search"][section]
    data["search"][old] = value
    with pytest.warns(DeprecatedSpecKey, match=f"search.{old} is deprecated; write "
                                               f"search.{new}") as seen:
        assert AttackSpec.from_dict(data) == expected
    assert len(seen) == 1


def test_the_mode_of_an_old_file_picks_the_table_of_a_flat_key():
    data = builtin_spec("strattack").to_dict()
    data["search"] = {"mode": "binary", "steps": 2, "iterations": 30}
    with pytest.warns(DeprecatedSpecKey, match="search.binary.steps"):
        spec = AttackSpec.from_dict(data)
    assert spec.search.mode == "binary" and spec.search.section().steps == 2
    data["search"]["binary"] = {"steps": 3}
    with pytest.raises(SpecError, match="search.steps: set twice"):
        AttackSpec.from_dict(data)


def test_the_multiplier_steps_by_mu_times_the_violation_and_grows_mu_where_it_stalls():
    """c ← max(0, c + μ·g) at every check; after PENALTY_WINDOW checks without the violation
    halving (and not adversarial), μ ×= mu_growth, at most mu × mu_growth_limit."""
    settings = LagrangianSearch(mu=0.5, mu_growth=2.0, mu_growth_limit=4.0)
    m = Multiplier(torch.tensor([1.0, 1.0, 1.0]), settings, stop_after=None)
    hit = torch.tensor([False, False, True])
    excess = torch.tensor([1.0, -4.0, 1.0])
    for k in range(1, 3 * PENALTY_WINDOW + 1):
        m.update(excess, hit, torch.full((3,), k), torch.full((3,), 5 * k))
        if k == 1:
            assert torch.equal(m.c, torch.tensor([1.5, 0.0, 1.5]))
    assert m.mu.tolist() == [2.0, 0.5, 0.5]  # grown twice (the cap), never, never (a success)


def test_a_late_first_success_goes_on_for_grace_iterations(mnist):
    """An example first adversarial at check k after ``search.iterations`` stops at k + grace
    (capped by the plan) instead of at once; one found in time stops at
    max(iterations, k + grace). Before its first success nothing changes, so the success is
    the same and the best ℓ2 can only get lower."""
    model, x, y = mnist
    x, y = x.repeat(3, 1, 1, 1), y.repeat(3)
    t = (y + torch.arange(9) % 3 + 1) % 10  # three targets per image
    runs = {}
    for grace in (0, 40):
        search = SearchSpec(iterations=10, track_every=5, rescue_iterations=200,
                            sections=[LagrangianSearch(grace=grace)])
        runs[grace] = CWL2(model, search=search, grid=False)(x, y, t)
    plain, graced = runs[0], runs[40]
    assert torch.equal(plain.success, graced.success) and plain.success.all()
    late = plain.gradient_evals > 10  # first adversarial in the rescue, at check k
    assert late.any() and (~late).any()
    k = plain.gradient_evals[late]
    assert torch.equal(graced.gradient_evals[late], torch.clamp(k + 40, max=210))
    assert set((graced.gradient_evals[~late] - 40).tolist()) <= {5, 10}
    assert (graced.metrics["l2"] <= plain.metrics["l2"] + 1e-6).all()
