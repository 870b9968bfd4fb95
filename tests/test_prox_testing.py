"""admmkit.testing on a user's own operator, and its checks catching broken operators."""

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from admmkit.prox import L1, Box, BoxLinf, Constrained, GroupL2, LinfBall, ProxFunction, SquaredL2
from admmkit.prox import batch_view
from admmkit.prox.base import per_sample_sum
from admmkit.testing import (check_batch_independence, check_firm_nonexpansive, check_moreau,
                             check_optimality, check_projection, check_prox, check_purity,
                             prox_cases, select_sample, weights)


# -- a user's operator, checked with the public helpers ------------------------------------------
@attrs.define(frozen=True, eq=False)
class Huber(ProxFunction):
    """``f(x) = w Σ huber(x_i)`` with ``huber(t) = t²/2`` for ``|t| <= 1`` and ``|t| − 1/2`` above."""

    weight: float = 1.0
    is_separable = True

    def __call__(self, x):
        a = x.abs()
        return self.weight * per_sample_sum(torch.where(a <= 1, a * a / 2, a - 0.5))

    def prox(self, v, tau):
        t = self.weight * batch_view(tau, v)
        return torch.where(v.abs() <= 1 + t, v / (1 + t), v - t * torch.sign(v))


def hubers(shape, dtype):
    return st.floats(0.1, 3.0).map(Huber)


@settings(max_examples=20, deadline=None)
@given(case=prox_cases(hubers))
def test_a_user_operator_passes_check_prox(case):
    check_prox(case.f, case.v, case.tau)
    check_prox(Constrained(case.f, Box(-0.5, 2.0)), case.v, case.tau)


# -- broken operators are caught -----------------------------------------------------------------
class WrongThreshold(L1):
    def prox(self, v, tau):
        t = 1.3 * self.weight * batch_view(tau, v)
        return torch.sign(v) * torch.clamp_min(v.abs() - t, 0.0)


class ElementwiseGroup(GroupL2):
    def prox(self, v, tau):
        t = self.weight * batch_view(tau, v)
        return torch.sign(v) * torch.clamp_min(v.abs() - t, 0.0)


class ScalingBall(LinfBall):
    """Feasible and idempotent, but not the projection: rescales instead of clipping."""

    def prox(self, v, tau):
        m = v.abs().amax(dim=tuple(range(1, v.dim())), keepdim=True).clamp_min(self.radius)
        return v * (self.radius / m)


class InPlace(SquaredL2):
    def prox(self, v, tau):
        return v.div_(1.0 + 2.0 * self.weight * batch_view(tau, v))


class SharedStep(SquaredL2):
    def prox(self, v, tau):
        return v / (1.0 + 2.0 * self.weight * float(torch.as_tensor(tau).mean()))


class Expanding(SquaredL2):
    def prox(self, v, tau):
        return 1.5 * v


@pytest.fixture
def point():
    g = torch.Generator().manual_seed(0)
    return 2 * torch.randn(3, 4, 5, generator=g), torch.tensor([0.3, 1.0, 2.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("f, check, message", [
    (WrongThreshold(), check_optimality, "is not optimal"),
    (ElementwiseGroup(), check_optimality, "is not optimal"),
    (ScalingBall(0.5), check_optimality, "is not optimal"),
    (WrongThreshold(), check_moreau, "Moreau decomposition"),
    (ElementwiseGroup(), check_moreau, "Moreau decomposition"),
    (ScalingBall(0.5), check_projection, "is not the projection"),
    (InPlace(), check_purity, "mutated its input"),
    (SharedStep(), check_batch_independence, "sample 0"),
    (SquaredL2(), check_projection, "not an indicator"),
], ids=lambda x: getattr(x, "__name__", type(x).__name__))
def test_checks_catch_broken_operators(point, dtype, f, check, message):
    v, tau = point
    with pytest.raises(AssertionError, match=message):
        check(f, v.to(dtype), tau.to(dtype))


def test_firm_nonexpansiveness_catches_an_expansion(point):
    v, tau = point
    with pytest.raises(AssertionError, match="not firmly non-expansive"):
        check_firm_nonexpansive(Expanding(), v, v + 1.0, tau)


def test_correct_operators_pass_on_the_same_point(point):
    v, tau = point
    for f in (L1(), GroupL2(), LinfBall(0.5), SquaredL2()):
        check_prox(f, v, tau)


# -- select_sample ---------------------------------------------------------------------------------
def test_select_sample_slices_per_sample_parameters_only():
    lower = -torch.rand(3, 4)
    f = Constrained(L1(torch.tensor([1.0, 2.0, 3.0])),
                    BoxLinf(lower, 1.0, torch.tensor([0.1, 0.2, 0.3])), Box(-1.0, torch.ones(1, 4)))
    g = select_sample(f, 1, 3)
    assert g.f.weight.tolist() == [2.0]
    assert torch.equal(g.indicators[0].lower, lower[1:2]) and g.indicators[0].radius.tolist() == pytest.approx([0.2])
    assert g.indicators[1].upper.shape == (1, 4)  # shared (1, ...) bound: unchanged
    h = L1(2.0)
    assert select_sample(h, 0, 3) is h  # nothing per sample: the same operator
    v = torch.randn(3, 4)
    torch.testing.assert_close(g.prox(v[1:2], 0.5), f.prox(v, 0.5)[1:2])


@settings(max_examples=10, deadline=None)
@given(w=weights(4, torch.float64))
def test_weights_strategy_gives_valid_parameters(w):
    L1(w)
