"""Known reductions between operators, and proxes against independent brute-force minimisers."""

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from admmkit.prox import (L1, Box, BoxLinf, Constrained, ElasticNet, FixedSupport, GroupL2,
                          LinfBall, Scaled, SeparableSum, SquaredL2, Zero)
from admmkit.testing import (batched_shapes, brute_force_prox, check_same_operator, dtypes,
                             taus, tensors, weights)
from admmkit.testing.strategies import bound_pairs, fixed_supports, grouped_shapes

FAST = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def points(draw, shapes=batched_shapes()):
    """``(v, tau, dtype)`` for a random batched shape."""
    shape, dtype = draw(shapes), draw(dtypes())
    return draw(tensors(shape, dtype)), draw(taus(shape[0], dtype)), dtype


@FAST
@given(data=st.data(), shape=grouped_shapes(max_group_dim=1), dtype=dtypes())
def test_group_l2_with_singleton_groups_is_l1(data, shape, dtype):
    v, tau = data.draw(tensors(shape, dtype)), data.draw(taus(shape[0], dtype))
    w = data.draw(weights(shape[0], dtype))
    check_same_operator(L1(w), GroupL2(w), v, tau, factor=256)


@FAST
@given(data=st.data(), pt=points())
def test_elastic_net_reduces_to_l1_and_squared_l2(data, pt):
    v, tau, dtype = pt
    w = data.draw(weights(v.shape[0], dtype))
    check_same_operator(L1(w), ElasticNet(l1=w, l2=0.0), v, tau)
    check_same_operator(SquaredL2(w), ElasticNet(l1=0.0, l2=w), v, tau)
    check_same_operator(Zero(), ElasticNet(l1=0.0, l2=0.0), v, tau)


@FAST
@given(data=st.data(), pt=points())
def test_linf_ball_is_a_symmetric_box_and_box_linf_reduces(data, pt):
    v, tau, dtype = pt
    eps = data.draw(weights(v.shape[0], dtype))
    check_same_operator(LinfBall(eps), Box(-eps, eps), v, tau)
    check_same_operator(LinfBall(eps), BoxLinf(-np.inf, np.inf, eps), v, tau)
    lower, upper = data.draw(bound_pairs(tuple(v.shape), dtype))
    check_same_operator(Box(lower, upper), BoxLinf(lower, upper, 1e6), v, tau)


@FAST
@given(data=st.data(), pt=points())
def test_box_linf_is_the_box_of_the_paper(data, pt):
    """Eq. (11): clip(v, max(−x0, −ε), min(1 − x0, ε))."""
    v, tau, dtype = pt
    x0 = data.draw(tensors(tuple(v.shape), dtype, low=0.0, high=1.0))
    eps = data.draw(weights(v.shape[0], dtype))
    e = torch.as_tensor(eps, dtype=dtype)
    e = e.reshape(-1, *([1] * (v.dim() - 1))) if e.dim() else e
    expected = torch.minimum(torch.maximum(v, torch.maximum(-x0, -e)), torch.minimum(1 - x0, e))
    torch.testing.assert_close(BoxLinf(-x0, 1 - x0, eps).prox(v, tau), expected, rtol=0, atol=0)


@FAST
@given(data=st.data(), pt=points())
def test_scaled_multiplies_the_weight(data, pt):
    v, tau, dtype = pt
    w, alpha = data.draw(weights(v.shape[0], dtype)), data.draw(weights(v.shape[0], dtype))
    check_same_operator(L1(w * alpha), Scaled(L1(w), alpha), v, tau, factor=256)
    check_same_operator(SquaredL2(w * alpha), Scaled(SquaredL2(w), alpha), v, tau, factor=256)
    check_same_operator(LinfBall(w), Scaled(LinfBall(w), alpha), v, tau)


@FAST
@given(data=st.data(), pt=points())
def test_separable_sum_of_one_function_is_that_function(data, pt):
    v, tau, dtype = pt
    w = data.draw(st.floats(0.05, 3.0))
    labels = torch.from_numpy(data.draw(hnp.arrays(np.int64, tuple(v.shape[1:]),
                                                   elements=st.integers(0, 2))))
    parts = [(labels == k, L1(w)) for k in range(3) if (labels == k).any()]
    check_same_operator(L1(w), SeparableSum(parts), v, tau)
    check_same_operator(L1(w), SeparableSum([(torch.ones(v.shape[1:], dtype=torch.bool), L1(w))]),
                        v, tau)


@FAST
@given(data=st.data(), pt=points())
def test_constrained_by_fixed_support_zeroes_outside_the_mask(data, pt):
    v, tau, dtype = pt
    w = data.draw(weights(v.shape[0], dtype))
    support = data.draw(fixed_supports(tuple(v.shape), dtype))
    p = Constrained(ElasticNet(w, w), support).prox(v, tau)
    assert (p[~support.mask.expand_as(p)] == 0).all()
    inside = support.mask.expand_as(p)
    torch.testing.assert_close(p[inside], ElasticNet(w, w).prox(v, tau)[inside], rtol=0, atol=0)


@settings(max_examples=8, deadline=None)
@given(data=st.data(), shape=batched_shapes(max_batch=3, max_dims=2, max_side=3), dtype=dtypes())
def test_constrained_squared_l2_box_matches_scipy(data, shape, dtype):
    v, tau = data.draw(tensors(shape, dtype)), data.draw(taus(shape[0], dtype))
    w = data.draw(weights(shape[0], dtype))
    lower, upper = data.draw(bound_pairs(shape, dtype))
    p = Constrained(SquaredL2(w), Box(lower, upper)).prox(v, tau)
    q = brute_force_prox(SquaredL2(w), v, tau, lower=lower, upper=upper)
    tol = 1e-5 if dtype == torch.float32 else 1e-7
    torch.testing.assert_close(p, q, rtol=tol, atol=tol)


@settings(max_examples=8, deadline=None)
@given(data=st.data(), shape=batched_shapes(max_batch=3, max_dims=2, max_side=3))
def test_constrained_elastic_net_box_matches_a_grid_search(data, shape):
    """Per coordinate, the prox of l1|x| + l2 x² on [lo, hi] by a dense grid (independent of torch)."""
    dtype = torch.float64
    v, tau = data.draw(tensors(shape, dtype)), data.draw(st.floats(0.05, 5.0))
    l1, l2 = data.draw(st.floats(0.0, 2.0)), data.draw(st.floats(0.0, 2.0))
    lo = data.draw(st.floats(-3.0, 1.0))
    hi = lo + data.draw(st.floats(0.0, 3.0))
    p = Constrained(ElasticNet(l1, l2), Box(lo, hi)).prox(v, tau).numpy().reshape(-1)
    grid = np.linspace(lo, hi, 40001)
    vv = v.numpy().reshape(-1, 1)
    obj = l1 * np.abs(grid) + l2 * grid ** 2 + (grid - vv) ** 2 / (2 * tau)
    best = grid[np.argmin(obj, axis=1)]
    np.testing.assert_allclose(p, best, atol=2 * (hi - lo) / 40000 + 1e-12)


# -- exact values -------------------------------------------------------------------------------
def test_known_values():
    v = torch.tensor([[3.0, -0.5, 1.0, -2.0]])
    torch.testing.assert_close(L1(1.0).prox(v, 1.0), torch.tensor([[2.0, 0.0, 0.0, -1.0]]))
    torch.testing.assert_close(SquaredL2(1.0).prox(v, 0.5), v / 2)
    torch.testing.assert_close(ElasticNet(1.0, 1.0).prox(v, 1.0), torch.tensor([[2.0, 0.0, 0.0, -1.0]]) / 3)
    torch.testing.assert_close(Box(-1.0, 1.0).prox(v, 1.0), torch.tensor([[1.0, -0.5, 1.0, -1.0]]))
    g = torch.tensor([[[3.0, 4.0], [0.0, 0.0], [0.3, 0.4]]])  # norms 5, 0, 0.5
    torch.testing.assert_close(GroupL2(1.0).prox(g, 1.0),
                               torch.tensor([[[2.4, 3.2], [0.0, 0.0], [0.0, 0.0]]]))
    torch.testing.assert_close(GroupL2(2.0)(g), torch.tensor([11.0]))


def test_group_l2_is_nan_free_at_zero_and_for_tiny_groups():
    for dtype in (torch.float32, torch.float64):
        v = torch.zeros(2, 3, 4, dtype=dtype)
        v[1, 0, 0] = torch.finfo(dtype).tiny
        p = GroupL2(1.0).prox(v, torch.tensor([1e-3, 10.0], dtype=dtype))
        assert torch.isfinite(p).all() and (p == 0).all()
        big = GroupL2(1.0).prox(torch.full((1, 2, 2), 1e30, dtype=dtype), 1e-6)
        assert torch.isfinite(big).all()


def test_flags():
    box = Box(0.0, 1.0)
    assert (L1().is_separable, SquaredL2().is_separable, ElasticNet().is_separable) == (True,) * 3
    assert not GroupL2().is_separable and not GroupL2().is_indicator
    assert Zero().is_separable and not Zero().is_indicator
    for ind in (box, LinfBall(1.0), BoxLinf(-1.0, 1.0, 0.5), FixedSupport(torch.ones(1, 2, dtype=torch.bool))):
        assert ind.is_indicator and ind.is_separable
    assert Scaled(box, 2.0).is_indicator and not Scaled(L1(), 2.0).is_indicator
    assert not Scaled(GroupL2(), 2.0).is_separable
    assert Constrained(L1(), box).is_separable and not Constrained(L1(), box).is_indicator
    assert Constrained(box, LinfBall(0.5)).is_indicator
    m = torch.tensor([True, False])
    assert SeparableSum([(m, box), (~m, LinfBall(1.0))]).is_indicator
    assert not SeparableSum([(m, box), (~m, L1())]).is_indicator


def test_parameters_follow_the_input_dtype():
    v = torch.randn(2, 3, dtype=torch.float32)
    for f in (L1(torch.tensor([1.0, 2.0], dtype=torch.float64)),
              Box(-torch.ones(2, 3, dtype=torch.float64), 1.0),
              BoxLinf(-1.0, torch.ones(2, 3, dtype=torch.float64), torch.tensor([0.5, 1.0])),
              Scaled(SquaredL2(1.0), torch.tensor([1.0, 3.0], dtype=torch.float64))):
        p = f.prox(v, torch.tensor([1.0, 2.0], dtype=torch.float64))
        assert p.dtype == torch.float32 and f(p).dtype == torch.float32


def test_indicator_values_are_zero_or_inf_with_a_relative_tolerance():
    box = Box(0.0, 1.0)
    x = torch.tensor([[0.5, 1.0 + 1e-8], [0.5, 1.01], [-1e-9, 0.0]])
    assert box(x).tolist() == [0.0, float("inf"), 0.0]
    assert FixedSupport(torch.tensor([True, False]))(torch.tensor([[5.0, 1e-9], [5.0, 1e-3]])).tolist() \
        == [0.0, float("inf")]
    assert LinfBall(torch.tensor([1.0, 2.0]))(torch.tensor([[1.5], [1.5]])).tolist() == [float("inf"), 0.0]
