"""Bad parameters and inputs raise errors whose messages name the culprit."""

import math

import pytest
import torch

from admmkit.prox import (L1, Box, BoxLinf, Constrained, ElasticNet, FixedSupport, GroupL2,
                          LinfBall, Scaled, SeparableSum, SquaredL2, Zero)

BAD_POSITIVE = [0.0, -1.0, math.nan, math.inf, -math.inf, torch.tensor([1.0, -1.0]),
                torch.tensor([1.0, math.nan]), torch.tensor([0.0, 1.0])]
BAD_NON_NEGATIVE = [-1.0, math.nan, math.inf, torch.tensor([1.0, -0.5])]


@pytest.mark.parametrize("bad", BAD_POSITIVE, ids=repr)
@pytest.mark.parametrize("cls", [L1, SquaredL2, GroupL2])
def test_weights_must_be_finite_and_positive(cls, bad):
    with pytest.raises(ValueError, match="weight must be finite and positive"):
        cls(bad)


@pytest.mark.parametrize("cls", [L1, SquaredL2, GroupL2])
def test_weights_are_numbers_or_per_sample_tensors(cls):
    with pytest.raises(ValueError, match=r"weight must be a number or a per-sample \(B,\) tensor"):
        cls(torch.ones(2, 3))
    with pytest.raises(TypeError, match="weight must be a number or a tensor"):
        cls("big")


@pytest.mark.parametrize("bad", BAD_NON_NEGATIVE, ids=repr)
def test_elastic_net_weights_must_be_non_negative(bad):
    with pytest.raises(ValueError, match="l1 must be finite and non-negative"):
        ElasticNet(l1=bad)
    with pytest.raises(ValueError, match="l2 must be finite and non-negative"):
        ElasticNet(l2=bad)
    ElasticNet(0.0, 0.0)  # zero weights are fine


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, torch.tensor([1.0, 0.0]),
                                 torch.tensor([1.0, -2.0]), torch.tensor([math.inf, 1.0])], ids=repr)
@pytest.mark.parametrize("f", [L1(), SquaredL2(), ElasticNet(), Zero(), Box(0.0, 1.0), LinfBall(1.0),
                               BoxLinf(-1.0, 1.0, 0.5), FixedSupport(torch.ones(1, 3, dtype=torch.bool)),
                               Scaled(L1(), 2.0), Constrained(L1(), Box(0.0, 1.0))],
                         ids=lambda f: type(f).__name__)
def test_tau_must_be_finite_and_positive(f, bad):
    with pytest.raises(ValueError, match="tau must be finite and positive"):
        f.prox(torch.zeros(2, 3), bad)


def test_tau_must_match_the_batch():
    with pytest.raises(ValueError, match=r"tau must be a number or a per-sample tensor of shape \(2,\)"):
        L1().prox(torch.zeros(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="tau must be"):
        GroupL2().prox(torch.zeros(2, 3, 4), torch.ones(2, 1))


def test_group_l2_needs_grouped_input():
    with pytest.raises(ValueError, match=r"\(B, G, m\)"):
        GroupL2().prox(torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match=r"\(B, G, m\)"):
        GroupL2()(torch.zeros(2, 1, 3, 3))


def test_box_bounds():
    with pytest.raises(ValueError, match="lower > upper"):
        Box(1.0, 0.0)
    with pytest.raises(ValueError, match="lower > upper at 1 coordinate"):
        Box(torch.zeros(1, 3), torch.tensor([[1.0, -1.0, 1.0]]))
    with pytest.raises(ValueError, match="lower must not be NaN"):
        Box(math.nan, 1.0)
    with pytest.raises(ValueError, match="upper must not be NaN"):
        Box(0.0, torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="lower must not be NaN or inf"):
        Box(math.inf, math.inf)
    with pytest.raises(ValueError, match="upper must not be NaN or -inf"):
        Box(-math.inf, -math.inf)
    with pytest.raises(ValueError, match="do not broadcast"):
        Box(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(TypeError, match="bounds must be numbers or tensors"):
        Box("0", 1.0)
    Box(-math.inf, math.inf)  # the whole space is allowed
    Box(0.5, 0.5)  # as is a single point


@pytest.mark.parametrize("bad", BAD_NON_NEGATIVE, ids=repr)
def test_radius_must_be_non_negative(bad):
    with pytest.raises(ValueError, match="radius must be finite and non-negative"):
        LinfBall(bad)
    with pytest.raises(ValueError, match="radius must be finite and non-negative"):
        BoxLinf(-1.0, 1.0, bad)
    LinfBall(0.0)


def test_box_linf_rejects_an_empty_intersection():
    with pytest.raises(ValueError, match=r"BoxLinf\(lower, upper, radius\) is empty: "
                                         r"max\(lower, -radius\) > min\(upper, radius\)"):
        BoxLinf(0.5, 1.0, 0.2)  # lower > radius
    with pytest.raises(ValueError, match="is empty"):
        BoxLinf(-1.0, -0.5, 0.2)  # upper < -radius
    with pytest.raises(ValueError, match="is empty"):  # only the second sample is empty
        BoxLinf(torch.full((2, 3), 0.3), 1.0, torch.tensor([0.5, 0.1]))
    with pytest.raises(ValueError, match="lower > upper"):
        BoxLinf(1.0, 0.0, 5.0)
    BoxLinf(0.2, 1.0, 0.2)  # touching is fine: the set is {0.2}


def test_fixed_support_needs_a_bool_mask():
    with pytest.raises(TypeError, match="mask must be a bool tensor; got torch.float32"):
        FixedSupport(torch.ones(3))
    with pytest.raises(TypeError, match="mask must be a bool tensor; got list"):
        FixedSupport([True, False])


def test_scaled_validation():
    with pytest.raises(ValueError, match="alpha must be finite and positive"):
        Scaled(L1(), 0.0)
    with pytest.raises(ValueError, match="alpha must be finite and positive"):
        Scaled(L1(), torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="f must be a ProxFunction; got str"):
        Scaled("L1", 1.0)


def test_constrained_validation():
    with pytest.raises(TypeError, match="Constrained needs a separable f"):
        Constrained(GroupL2(), Box(0.0, 1.0))
    with pytest.raises(TypeError, match=r"indicators\[0\] must be the indicator of a coordinate-wise set"):
        Constrained(L1(), SquaredL2())
    with pytest.raises(TypeError, match=r"indicators\[1\] must be a ProxFunction"):
        Constrained(L1(), Box(0.0, 1.0), "box")
    with pytest.raises(TypeError, match="f must be a ProxFunction"):
        Constrained(None, Box(0.0, 1.0))


def test_separable_sum_validation():
    m = torch.tensor([True, True, False])
    with pytest.raises(ValueError, match="at least one"):
        SeparableSum([])
    with pytest.raises(ValueError, match="partition the coordinates: 1 coordinate"):
        SeparableSum([(m, L1())])
    with pytest.raises(ValueError, match="0 coordinate.* in no part, 2 in several"):
        SeparableSum([(m, L1()), (torch.ones(3, dtype=torch.bool), L1())])
    with pytest.raises(ValueError, match="share one shape"):
        SeparableSum([(m, L1()), (torch.ones(2, dtype=torch.bool), L1())])
    with pytest.raises(TypeError, match=r"parts\[0\] mask must be a bool tensor"):
        SeparableSum([(torch.ones(3), L1())])
    with pytest.raises(TypeError, match=r"parts\[1\] function must be a ProxFunction"):
        SeparableSum([(m, L1()), (~m, abs)])
    s = SeparableSum([(m, L1()), (~m, Box(0.0, 1.0))])
    with pytest.raises(ValueError, match=r"expected x of shape \(B, 3\)"):
        s.prox(torch.zeros(2, 4), 1.0)
