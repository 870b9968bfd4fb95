"""The attack front end on tiny models: losses, targets, honesty of results, batch independence."""

import math

import attrs

import pytest
import torch
from torch import nn

from attacks import CWL2, EAD, LinfAttack, Refine, StrAttack
from attacks.builtin import strattack
from attacks.losses import is_adversarial, linearised_boundary, margin, max_other
from attacks.problems import support_mask
from attacks.spec import RefineSpec, SearchSpec, SpecError
from attacks.targets import expand_targets

D = torch.float64
# a short search; the toy model's hardest targets need a longer rescue than the default 200
FAST = dict(search=SearchSpec(iterations=60, track_every=5, rescue_iterations=500))


def tiny_model(classes=3, dead_class=None):
    torch.manual_seed(0)
    lin = nn.Linear(64, classes).double()
    if dead_class is not None:  # a class that can never win
        with torch.no_grad():
            lin.weight[dead_class] = 0
            lin.bias[dead_class] = -1e3
    return nn.Sequential(nn.Flatten(), lin)


def tiny_data(n=4):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 8, 8, generator=g, dtype=D)
    model = tiny_model()
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


def test_margin_masks_the_excluded_class_with_minus_inf():
    logits = torch.tensor([[-5.0, -3.0, -10.0]])
    # the (1 - onehot) trick would see 0 for the excluded class and pick it when logits < 0
    assert max_other(logits, torch.tensor([1])).item() == -5.0
    t, lab = torch.tensor([2]), torch.tensor([1])
    assert margin(logits, lab, t, torch.tensor([True])).item() == 7.0   # -3 - (-10)
    assert margin(logits, lab, t, torch.tensor([False])).item() == 2.0  # -3 - (-5)
    assert not is_adversarial(logits, lab, t, torch.tensor([True])).item()
    assert is_adversarial(torch.tensor([[0.0, 1.0, 2.0]]), lab, t, torch.tensor([True])).item()


def test_targets_all_random_explicit_and_errors():
    labels = torch.tensor([0, 2, 1])
    idx, tg = expand_targets(labels, 4, "all")
    assert idx.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert tg.targets.tolist() == [1, 2, 3, 0, 1, 3, 0, 2, 3]
    assert (tg.targets != tg.labels).all() and tg.targeted.all()
    _, r1 = expand_targets(labels, 4, "random", seed=7)
    _, r2 = expand_targets(labels, 4, "random", seed=7)
    assert torch.equal(r1.targets, r2.targets) and (r1.targets != labels).all()
    _, un = expand_targets(labels, 4, None)
    assert not un.targeted.any()
    with pytest.raises(ValueError, match="equals the true label"):
        expand_targets(labels, 4, torch.tensor([1, 2, 0]))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 4\)"):
        expand_targets(labels, 4, torch.tensor([1, 9, 0]))
    with pytest.raises(ValueError, match="shape"):
        expand_targets(labels, 4, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="targets must be"):
        expand_targets(labels, 4, "everything")


def test_support_mask_is_per_sample():
    torch.manual_seed(0)
    delta = torch.randn(3, 1, 10, 10, dtype=D)
    delta[1] *= 100  # a sample at another scale must not move the others' thresholds
    delta[2, :, :5] = 0
    batch = support_mask(delta, 0.03)
    for b in range(3):
        assert torch.equal(batch[b], support_mask(delta[b:b + 1], 0.03)[0])
        nz = delta[b].abs() > 0
        dropped = (nz & ~batch[b]).sum().item()
        assert dropped == math.floor(0.03 * (nz.sum().item() - 1)) + 1  # the smallest 3%


@pytest.mark.parametrize("make", [lambda m: StrAttack(m, **FAST),
                                  lambda m: StrAttack(m, overlapping=True, **FAST),
                                  lambda m: CWL2(m, **FAST), lambda m: EAD(m, **FAST)])
def test_attacks_succeed_and_results_are_verified(make):
    x, y = tiny_data()
    model = tiny_model()
    attack = make(model)
    res = attack(x, y, targets="all")
    assert len(res) == 4 * 2 and res.success.all()
    with torch.no_grad():
        pred = model(res.adversarial).argmax(1)
    assert torch.equal(pred, res.targets)  # a fresh forward pass agrees with every success
    assert res.adversarial.min() >= 0 and res.adversarial.max() <= 1
    torch.testing.assert_close(res.adversarial, x[res.source_index] + res.delta)
    l0 = (res.delta.flatten(1).abs() > 1e-7).sum(1).to(D)
    assert torch.equal(res.metrics["l0"], l0)
    spec = attack.spec  # the search's plan (iterations + rescue) + refine
    budget = spec.search.planned + (spec.refine.iterations if spec.refine else 0)
    assert res.success.all() and (res.gradient_evals <= budget).all()


def test_failed_examples_are_flagged_and_returned_clean():
    model = tiny_model(dead_class=2)
    x, _ = tiny_data(3)
    with torch.no_grad():
        y = model(x).argmax(1)
    targets = torch.full_like(y, 2)
    res = StrAttack(model, **FAST)(x, y, targets)
    assert not res.success.any()
    assert torch.equal(res.adversarial, x) and (res.delta == 0).all()
    assert all(torch.isnan(v).all() for v in res.metrics.values())
    assert math.isnan(res.summary()["l2"]) and res.summary()["asr"] == 0.0


def test_batch_results_do_not_depend_on_the_rest_of_the_batch():
    x, y = tiny_data(4)
    model = tiny_model()
    attack = StrAttack(model, **FAST)
    t = (y + 1) % 3
    whole = attack(x, y, t)
    for b in [0, 3]:
        alone = attack(x[b:b + 1], y[b:b + 1], t[b:b + 1])
        torch.testing.assert_close(alone.delta[0], whole.delta[b], atol=1e-10, rtol=0)
        assert alone.gradient_evals[0] == whole.gradient_evals[b]


def test_strattack_is_group_sparse_and_refine_shrinks_support():
    x, y = tiny_data(4)
    model = tiny_model()
    t = (y + 1) % 3
    raw = StrAttack(model, refine=False, **FAST)(x, y, t)
    ref = StrAttack(model, **FAST)(x, y, t)
    cw = CWL2(model, **FAST)(x, y, t)
    assert raw.success.all() and ref.success.all()
    assert ref.metrics["groups_fraction"].mean() < cw.metrics["groups_fraction"].mean()
    assert (ref.metrics["l0"][ref.refined] <= raw.metrics["l0"][ref.refined]).all()


def test_refine_any_attack_keeps_successes_and_support():
    x, y = tiny_data(4)
    model = tiny_model()
    t = (y + 1) % 3
    cw = CWL2(model, **FAST)(x, y, t)
    refined = Refine(model, quantile=0.2, iterations=100)(x, y, cw.delta, t)
    assert refined.success.all()
    grew = (refined.delta != 0) & (cw.delta == 0)
    assert not grew.any()  # refine never leaves the given support
    assert (refined.metrics["l0"] <= cw.metrics["l0"]).all()
    failed = Refine(model, iterations=5)(x, y, torch.zeros_like(x), t)  # nothing to refine
    assert not failed.success.any() and torch.isnan(failed.c).all()  # as the engine's attacks
    assert torch.equal(failed.adversarial, x)


def test_linf_attack_respects_eps():
    x, y = tiny_data(4)
    model = tiny_model()
    res = LinfAttack(model, eps=0.3, **FAST)(x, y, (y + 1) % 3)
    ok = res.success
    assert ok.any()
    assert (res.metrics["linf"][ok] <= 0.3 + 1e-12).all()


def test_bad_inputs_give_clear_errors():
    x, y = tiny_data(2)
    model = tiny_model()
    attack = StrAttack(model, **FAST)
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        attack(x * 3, y)
    with pytest.raises(ValueError, match=r"images must be a \(B, C, H, W\)"):
        attack(x[0], y)
    with pytest.raises(ValueError, match="labels must be an integer tensor of shape"):
        attack(x, y[:1])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        attack(x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="equals the true label"):
        attack(x, y, y)
    with pytest.raises(ValueError, match="logits of shape"):
        StrAttack(nn.Sequential(nn.Flatten(), nn.Linear(64, 6).double(), nn.Unflatten(1, (3, 2))),
                  **FAST)(x, y)
    with pytest.raises(SpecError, match="weight"):
        StrAttack(model, tau=-1.0)
    with pytest.raises(SpecError, match="quantile"):
        RefineSpec(quantile=1.5)
    with pytest.raises(SpecError, match="groups: group size 9 is larger"):
        StrAttack(model, group_size=9, **FAST)(x, y)
    with pytest.raises(TypeError, match="either a spec or parameters"):
        StrAttack(model, strattack(), tau=1.0)


@pytest.mark.parametrize("iterations", [1, 10])
@pytest.mark.parametrize("norm", ["inf", "2"])
def test_fgm_ifgsm_find_a_small_successful_eps_per_sample(norm, iterations):
    from attacks.baselines import GradientAttack
    x, y = tiny_data(4)
    model = tiny_model()
    attack = GradientAttack(model, norm=norm, iterations=iterations)
    res = attack(x, y, "all")
    assert res.success.all()
    key = "linf" if norm == "inf" else "l2"
    assert (res.metrics[key] <= res.c + 1e-9).all()  # within the ε that was found
    # a clearly smaller ε fails: the search found a near-minimal one
    tg = expand_targets(y, 3, "all")[1]
    smaller = attack.perturb(x[res.source_index], tg, res.c * 0.5)
    with torch.no_grad():
        ok = is_adversarial(model(smaller), tg.labels, tg.targets, tg.targeted)
    assert not ok.all()
    with pytest.raises(ValueError, match="norm must be one of"):
        GradientAttack(model, norm="1")


def test_boundary_distance_is_the_linear_models_exact_distance():
    """On a linear model the distance linearised at x₀ is the distance: margin / ||a||, where
    a = w_label − w_target is the margin's gradient."""
    model = tiny_model()
    x, y = tiny_data()
    _, tg = expand_targets(y, 3, "all")
    x = x.repeat_interleave(2, 0)
    s, n = linearised_boundary(model, x, tg, kappa=0.5)
    w, b = model[1].weight, model[1].bias
    with torch.no_grad():
        m = margin(model(x), tg.labels, tg.targets, tg.targeted) + 0.5
    a = (w[tg.labels] - w[tg.targets]).detach()
    torch.testing.assert_close(n, a.norm(dim=1))
    torch.testing.assert_close(s, m / a.norm(dim=1))
    # an example already past the boundary is at distance 0; a flat model gives 0 and NaN
    assert float(linearised_boundary(model, x[:1], tg.select(torch.tensor([0])), -1e6)[0]) == 0
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64, 3).double())
    nn.init.zeros_(flat[1].weight)
    s, n = linearised_boundary(flat, x, tg, 0.0)
    assert (s == 0).all() and n.isnan().all()


def test_boundary_scaled_tau_is_tau_times_the_distance_per_example():
    """scale = "boundary" is exactly StrAttack with τ = tau·s for each example alone (its own
    distance s), plus the one gradient evaluation that measured s."""
    model = tiny_model()
    x, y = tiny_data(3)
    t = (y + 1) % 3
    scaled = StrAttack(model, tau=0.5, **FAST)(x, y, t)
    s, _ = linearised_boundary(model, x, expand_targets(y, 3, t)[1], 0.0)
    for i in range(3):
        alone = StrAttack(model, tau=0.5 * float(s[i]), scale="none", **FAST)(
            x[i:i + 1], y[i:i + 1], t[i:i + 1])
        torch.testing.assert_close(scaled.delta[i:i + 1], alone.delta, rtol=0, atol=1e-9)
        assert int(scaled.gradient_evals[i]) == int(alone.gradient_evals[0]) + 1
    assert len(set(s.tolist())) == 3  # three different weights were in play


@pytest.mark.parametrize("k", [0.01, 30.0])
def test_boundary_scaled_search_does_not_see_the_scale_of_the_logits(k):
    """With the group weight and the multiplier in units of each example's linearised boundary
    (terms and search.scale = "boundary"), scaling the logits by k (distillation's temperature,
    a model's calibration) changes nothing: c scales by 1/k, the rest is the same. The
    multiplier in logits (search.scale = "none") does see it."""
    model = tiny_model()
    scaled = nn.Sequential(model, Scale(k))
    x, y = tiny_data(3)
    t = (y + 1) % 3
    search = SearchSpec(iterations=60, track_every=5, rescue_iterations=100, scale="boundary")
    base = StrAttack(model, search=search)(x, y, t)
    other = StrAttack(scaled, search=search)(x, y, t)
    assert base.success.all() and torch.equal(other.success, base.success)
    torch.testing.assert_close(other.delta, base.delta, rtol=0, atol=1e-6)
    torch.testing.assert_close(other.c * k, base.c, rtol=1e-6, atol=0)
    logits = attrs.evolve(search, scale="none")
    assert not torch.allclose(StrAttack(scaled, search=logits)(x, y, t).delta,
                              StrAttack(model, search=logits)(x, y, t).delta, atol=1e-3)


class Scale(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, z):
        return self.k * z
