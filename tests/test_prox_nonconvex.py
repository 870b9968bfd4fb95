"""The non-convex counts L0 and GroupL0: their hard-threshold prox is the exact global minimiser
of f(x) + ||x − v||²/(2τ), found here by brute force over every keep/zero pattern."""

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admmkit.prox import L0, Box, Constrained, GroupL0
from admmkit.testing import objective, tensors
from admmkit.testing.strategies import batched_shapes, grouped_shapes, taus, weights

FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KINDS = {"L0": (L0, batched_shapes(max_dims=2, max_side=3)),
         "GroupL0": (GroupL0, grouped_shapes(max_groups=5, max_group_dim=3))}


@st.composite
def cases(draw, name):
    cls, shapes = KINDS[name]
    shape = draw(shapes)
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return (cls(draw(weights(shape[0], dtype))), draw(tensors(shape, dtype)),
            draw(taus(shape[0], dtype)))


def pieces(f, v):
    """Keep/zero units of ``v`` as a (B, K, m) view: coordinates for L0, groups for GroupL0."""
    return v.reshape(v.shape[0], -1, 1) if isinstance(f, L0) else v


def brute_force_minimum(f, v, tau):
    """min over every keep/zero pattern of the units (the problem is separable, and a kept
    unit's best value is v's own), per sample."""
    units = pieces(f, v)
    best = None
    for keep in itertools.product((False, True), repeat=units.shape[1]):
        mask = torch.tensor(keep).reshape(1, -1, 1)
        q = torch.where(mask, units, torch.zeros_like(units)).reshape(v.shape)
        obj = objective(f, q, v, tau)
        best = obj if best is None else torch.minimum(best, obj)
    return best


@pytest.mark.parametrize("name", sorted(KINDS))
def test_prox_is_a_global_minimiser_made_of_vs_entries_and_zeros(name):
    @FAST
    @given(case=cases(name))
    def run(case):
        f, v, tau = case
        p = f.prox(v, tau)
        assert ((p == v) | (p == 0)).all()
        if isinstance(f, GroupL0):  # whole groups: kept as they are or zeroed together
            assert ((p == v).all(-1) | (p == 0).all(-1)).all()
        best = brute_force_minimum(f, v, tau)
        tol = 1e-5 if v.dtype == torch.float32 else 1e-12
        got = objective(f, p, v, tau)
        assert (got <= best + tol * (1 + best.abs())).all(), (got, best)
    run()


@pytest.mark.parametrize("name", sorted(KINDS))
def test_per_sample_weights_equal_a_loop_over_rows_and_select_equals_indexing(name):
    @FAST
    @given(case=cases(name), data=st.data())
    def run(case, data):
        f, v, tau = case
        b = v.shape[0]
        w = torch.as_tensor(f.weight, dtype=v.dtype).expand(b)
        t = torch.as_tensor(tau, dtype=v.dtype).expand(b)
        p, val = f.prox(v, tau), f(v)
        for i in range(b):
            fi = type(f)(float(w[i]))
            assert torch.equal(fi.prox(v[i:i + 1], float(t[i])), p[i:i + 1])
            assert torch.allclose(fi(v[i:i + 1]), val[i:i + 1])
        idx = torch.tensor(data.draw(st.lists(st.integers(0, b - 1), min_size=1, max_size=b)))
        g = f.select(idx, b)
        assert torch.equal(g.prox(v[idx], t[idx]), p[idx])
        assert torch.equal(g(v[idx]), val[idx])
    run()


def test_the_counts_and_their_thresholds():
    v = torch.tensor([[3.0, -1.0, 0.5, 0.0]])
    assert L0(2.0)(v).item() == 6.0                      # three non-zero entries
    # τ = 0.25: keep v_i² > 2·2·0.25 = 1 (a tie at |v_i| = 1 gives 0)
    assert L0(2.0).prox(v, 0.25).tolist() == [[3.0, 0.0, 0.0, 0.0]]
    g = torch.tensor([[[1.0, 1.0], [0.0, 0.0], [0.5, -0.5]]])   # ||v_g||² = 2, 0, 0.5
    assert GroupL0(0.5)(g).item() == 1.0                  # two groups touched
    assert GroupL0(0.5).prox(g, 1.0).tolist() == [[[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]]
    w = torch.tensor([0.1, 10.0])                         # per sample: the second zeroes all
    assert GroupL0(w).prox(torch.cat([g, g]), 1.0)[1].abs().sum() == 0
    assert torch.equal(GroupL0(w).prox(torch.cat([g, g]), 1.0)[0], g[0])


def test_non_convex_counts_are_refused_where_convexity_is_needed():
    with pytest.raises(TypeError, match="separable f.*L0"):
        Constrained(L0(1.0), Box(-1.0, 1.0))   # clip ∘ hard threshold is not its prox
    with pytest.raises(ValueError, match=r"GroupL0 expects grouped copies of shape \(B, G, m\)"):
        GroupL0(1.0).prox(torch.zeros(2, 3), 1.0)
