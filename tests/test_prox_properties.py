"""Property tests of every prox operator, with the reusable checks of :mod:`admmkit.testing`."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from admmkit.testing import (check_batch_independence, check_firm_nonexpansive, check_moreau,
                             check_optimality, check_projection, check_purity, prox_cases,
                             prox_pairs)
from admmkit.testing.strategies import NONCONVEX, OPERATORS

FAST = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
ALL = sorted(OPERATORS)
CONVEX = sorted(set(OPERATORS) - NONCONVEX)
INDICATORS = ["Box", "LinfBall", "BoxLinf", "FixedSupport"]
#: Operators with an independently written conjugate prox in admmkit.testing.
WITH_CONJUGATE = ["L1", "GroupL2", "SquaredL2", "ElasticNet", "Zero", "Box", "LinfBall",
                  "FixedSupport", "Scaled"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL)
def test_prox_minimises_its_objective(name, dtype):
    @FAST
    @given(case=prox_cases(name, dtypes=st.just(dtype)))
    def run(case):
        check_optimality(case.f, case.v, case.tau)
    run()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CONVEX)
def test_prox_is_firmly_nonexpansive(name, dtype):
    @FAST
    @given(pair=prox_pairs(name, dtypes=st.just(dtype)))
    def run(pair):
        case, v2 = pair
        check_firm_nonexpansive(case.f, case.v, v2, case.tau)
    run()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL)
def test_prox_is_pure_and_batch_independent(name, dtype):
    @FAST
    @given(case=prox_cases(name, dtypes=st.just(dtype)))
    def run(case):
        check_purity(case.f, case.v, case.tau)
        check_batch_independence(case.f, case.v, case.tau)
    run()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", INDICATORS)
def test_projection_is_feasible_idempotent_and_satisfies_the_vi(name, dtype):
    @FAST
    @given(case=prox_cases(name, dtypes=st.just(dtype)))
    def run(case):
        assert case.f.is_indicator
        check_projection(case.f, case.v, case.tau)
    run()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", WITH_CONJUGATE)
def test_moreau_decomposition(name, dtype):
    @FAST
    @given(case=prox_cases(name, dtypes=st.just(dtype)))
    def run(case):
        check_moreau(case.f, case.v, case.tau)
    run()
