"""The ε-bounded mode: the PGD baseline, and the ADMM attacks' PGD start (``search.start =
"pgd"``): at least PGD's successes, the ℓ∞ bound honoured, the budget kept."""

import attrs
import pytest
import torch
from torch import nn

from attacks import Attack, builtin_spec
from attacks.baselines import PGD
from attacks.classifier import Classifier
from attacks.engine import Engine
from attacks.spec import AttackSpec, SpecError

EPS = 0.12


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    return net.eval()


def _data(b: int = 24):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(b, 1, 8, 8, generator=g)
    with torch.no_grad():
        y = _model()(x).argmax(1)  # every image classified "correctly"
    return x, y


def _spec(name: str, start: str = "pgd", **search) -> AttackSpec:
    spec = builtin_spec(name, eps=EPS) if name == "linf" else \
        attrs.evolve(builtin_spec(name), eps=EPS)
    return spec.with_overrides(f"search.start={start}", "search.start_steps=20",
                               "search.iterations=60", "search.rescue_iterations=0",
                               *(f"search.{k}={v}" for k, v in search.items()))


@pytest.mark.parametrize("name", ["linf", "cw-l2"])
def test_pgd_start_succeeds_wherever_pgd_does_within_eps(name):
    x, y = _data()
    model = _model()
    pgd = PGD(model, eps=EPS, steps=20, seed=3)(x, y)
    assert 0 < int(pgd.success.sum()) < len(y)  # some succeed and some fail: not vacuous
    res = Attack(model, _spec(name), seed=3)(x, y)
    assert bool((res.success | ~pgd.success).all())  # PGD's success set is contained
    assert float((res.adversarial - x).abs().amax()) <= EPS + 1e-6
    with torch.no_grad():  # and every success is one
        assert bool((model(res.adversarial).argmax(1) != y)[res.success].all())
    # the zero start finds fewer here: the start is what brings PGD's successes
    cold = Attack(model, _spec(name, start="zero"), seed=3)(x, y)
    assert int(cold.success.sum()) < int(res.success.sum())


def test_linf_sparsifies_pgds_examples():
    x, y = _data()
    model = _model()
    pgd = PGD(model, eps=EPS, steps=20, seed=3)(x, y)
    res = Attack(model, _spec("linf"), seed=3)(x, y)
    both = pgd.success & res.success
    assert bool(both.any())
    assert float(res.metrics["l0"][both].mean()) < float(pgd.metrics["l0"][both].mean())


def test_pgd_start_is_counted_and_kept_within_the_budget():
    x, y = _data(8)
    model = _model()
    for budget in (15, 40):
        res = Attack(model, _spec("linf", budget=budget), seed=3)(x, y)
        assert int(res.gradient_evals.max()) <= budget
    res = Attack(model, _spec("linf"), seed=3)(x, y)
    pgd = PGD(model, eps=EPS, steps=20, seed=3)(x, y)
    assert bool((res.gradient_evals >= pgd.gradient_evals).all())


def test_pgd_baseline_is_bounded_verified_seeded_and_stops_at_success():
    x, y = _data()
    model = _model()
    a, b = PGD(model, eps=EPS, seed=5)(x, y), PGD(model, eps=EPS, seed=5)(x, y)
    assert torch.equal(a.adversarial, b.adversarial) and torch.equal(a.success, b.success)
    assert float(a.delta.abs().amax()) <= EPS + 1e-6
    assert float(a.adversarial.min()) >= 0 and float(a.adversarial.max()) <= 1
    with torch.no_grad():
        fooled = model(a.adversarial).argmax(1) != y
    assert torch.equal(fooled, a.success)
    assert bool((a.gradient_evals <= 100).all()) and bool((a.gradient_evals[a.success] < 100)
                                                           .all())
    big = PGD(model, eps=0.9, steps=100)(x, y)  # everything breaks, early
    assert bool(big.success.all()) and float(big.gradient_evals.float().mean()) < 50
    targeted = PGD(model, eps=0.9)(x, y, targets="random")
    with torch.no_grad():
        assert bool((model(targeted.adversarial).argmax(1) == targeted.targets)
                    [targeted.success].all())
    assert bool(targeted.success.any())


@pytest.mark.parametrize("kw, key", [({"eps": 0.0}, "eps"), ({"eps": float("nan")}, "eps"),
                                     ({"eps": 0.3, "steps": 0}, "steps"),
                                     ({"eps": 0.3, "step_size": -1.0}, "step_size"),
                                     ({"eps": 0.3, "loss": "dlr"}, "loss")])
def test_pgd_baseline_refuses_bad_arguments_by_name(kw, key):
    with pytest.raises(ValueError, match=key):
        PGD(_model(), **kw)


def test_pgd_start_needs_eps_and_round_trips_through_toml():
    with pytest.raises(SpecError, match="search.start"):
        builtin_spec("cw-l2").with_overrides("search.start=pgd")
    with pytest.raises(SpecError, match="search.start"):
        builtin_spec("linf").with_overrides("search.start=adam")
    spec = _spec("linf")
    assert AttackSpec.from_toml(spec.to_toml()) == spec
    engine = Engine(Classifier(_model()), spec, (1, 8, 8))
    assert engine.stage_limits()[0] == 20 + 60  # the start is part of the search's share


def test_auto_start_is_pgd_exactly_where_there_is_an_eps():
    assert builtin_spec("linf").search.start == "auto" == builtin_spec("cw-l2").search.start
    assert builtin_spec("linf").search.starts_with_pgd(0.3)
    assert not builtin_spec("cw-l2").search.starts_with_pgd(None)
    x, y = _data(8)
    model = _model()
    auto, pgd = (Attack(model, _spec("cw-l2", start=s), seed=3)(x, y) for s in ("auto", "pgd"))
    assert torch.equal(auto.adversarial, pgd.adversarial)
    plain = attrs.evolve(_spec("cw-l2", start="auto"), eps=None)
    assert not plain.search.starts_with_pgd(plain.eps)
    assert int(Attack(model, plain)(x, y).gradient_evals.max()) <= 60  # no start spent
