"""Hypothesis strategies for batched tensors, step sizes and the built-in prox operators.

Operator strategies take the batch shape ``(B, ...)`` and dtype of the points they will be applied
to, because parameters may be per-sample ``(B,)`` tensors or full tensors shaped like ``x``::

    @given(case=prox_cases("L1"))
    def test_my_l1(case):
        check_prox(case.f, case.v, case.tau)

For an operator of your own, write ``my_ops(shape, dtype) -> SearchStrategy`` and pass it to
:func:`prox_cases`.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple, Union

import attrs
import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import Tensor

from admmkit.prox import (L0, L1, Box, BoxLinf, Constrained, ElasticNet, FixedSupport, GroupL0,
                          GroupL2, LinfBall, ProxFunction, Scaled, SeparableSum, SquaredL2, Zero)

Shape = Tuple[int, ...]
OperatorStrategy = Callable[[Shape, torch.dtype], st.SearchStrategy]

FLOAT_DTYPES = (torch.float32, torch.float64)


def dtypes() -> st.SearchStrategy:
    """``torch.float32`` or ``torch.float64``."""
    return st.sampled_from(FLOAT_DTYPES)


def batched_shapes(*, min_batch: int = 1, max_batch: int = 4, min_dims: int = 1,
                   max_dims: int = 3, max_side: int = 5) -> st.SearchStrategy:
    """Shapes ``(B, d1, ..., dk)`` with ``min_dims <= k <= max_dims`` and small sizes."""
    return st.tuples(st.integers(min_batch, max_batch),
                     st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims)
                     ).map(lambda t: (t[0], *t[1]))


def grouped_shapes(*, max_batch: int = 4, max_groups: int = 6, max_group_dim: int = 5
                   ) -> st.SearchStrategy:
    """Shapes ``(B, G, m)`` of group copies (see :meth:`SlidingGroups.gather`)."""
    return st.tuples(st.integers(1, max_batch), st.integers(1, max_groups),
                     st.integers(1, max_group_dim))


def _np_dtype(dtype: torch.dtype):
    return np.float32 if dtype == torch.float32 else np.float64


def tensors(shape: Shape, dtype: torch.dtype, *, low: float = -4.0, high: float = 4.0
            ) -> st.SearchStrategy:
    """Tensors of ``shape`` and ``dtype`` with finite values in ``[low, high]`` (zeros and ties
    are likely, as hypothesis favours them)."""
    width = 32 if dtype == torch.float32 else 64
    elements = st.floats(low, high, width=width, allow_nan=False, allow_infinity=False,
                         allow_subnormal=False)
    return hnp.arrays(_np_dtype(dtype), shape, elements=elements).map(torch.from_numpy)


def _log_uniform(low: float, high: float) -> st.SearchStrategy:
    return st.floats(np.log10(low), np.log10(high)).map(lambda e: float(10.0 ** e))


def positives(batch: int, dtype: torch.dtype, *, low: float = 0.01, high: float = 10.0,
              allow_zero: bool = False) -> st.SearchStrategy:
    """A positive float or a per-sample ``(B,)`` tensor, log-uniform in ``[low, high]``
    (and sometimes exactly 0 when ``allow_zero``)."""
    scalar = _log_uniform(low, high)
    if allow_zero:
        scalar = st.one_of(st.just(0.0), scalar)
    per_sample = st.lists(scalar, min_size=batch, max_size=batch).map(
        lambda xs: torch.tensor(xs, dtype=dtype))
    return st.one_of(scalar, per_sample)


def taus(batch: int, dtype: torch.dtype) -> st.SearchStrategy:
    """Step sizes: a positive float or a per-sample ``(B,)`` tensor in ``[0.01, 10]``."""
    return positives(batch, dtype)


def weights(batch: int, dtype: torch.dtype, *, allow_zero: bool = False) -> st.SearchStrategy:
    """Penalty weights: a positive float or a per-sample ``(B,)`` tensor in ``[0.05, 3]``."""
    return positives(batch, dtype, low=0.05, high=3.0, allow_zero=allow_zero)


# -- bounds -----------------------------------------------------------------------------------
@st.composite
def bound_pairs(draw, shape: Shape, dtype: torch.dtype, *, contain_zero: bool = False):
    """``(lower, upper)`` with ``lower <= upper``: floats, per-sample ``(B,)`` tensors, full
    ``(B, ...)`` tensors or broadcast ``(1, ...)`` tensors (and sometimes infinite floats)."""
    form = draw(st.sampled_from(["float", "per_sample", "full", "broadcast", "image"]))
    b = shape[0]
    if form == "image":  # the attack's box: lower = -x0, upper = 1 - x0 with x0 in [0, 1]
        x0 = draw(tensors(shape, dtype, low=0.0, high=1.0))
        return -x0, 1.0 - x0
    bshape = {"float": (), "per_sample": (b,), "full": shape, "broadcast": (1, *shape[1:])}[form]
    lo_max = 0.0 if contain_zero else 2.0
    lower = draw(tensors(bshape, dtype, low=-3.0, high=lo_max))
    width = draw(tensors(bshape, dtype, low=0.0, high=3.0))
    upper = torch.maximum(lower + width, torch.zeros_like(lower)) if contain_zero else lower + width
    if form == "float":
        lower, upper = float(lower), float(upper)
        if draw(st.booleans()) and draw(st.booleans()):
            lower, upper = draw(st.sampled_from([(-np.inf, upper), (lower, np.inf),
                                                 (-np.inf, np.inf)]))
    return lower, upper


def _full(t, shape: Shape, dtype: torch.dtype) -> Tensor:
    """A bound as a full ``shape`` tensor (``(B,)`` tensors are per sample)."""
    t = torch.as_tensor(t, dtype=dtype)
    if t.dim() == 1 and t.shape[0] == shape[0] and len(shape) > 1:
        t = t.reshape(-1, *([1] * (len(shape) - 1)))
    return t.expand(shape)


# -- operators ----------------------------------------------------------------------------------
def l1s(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    return weights(shape[0], dtype).map(L1)


def squared_l2s(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    return weights(shape[0], dtype).map(SquaredL2)


def elastic_nets(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    w = weights(shape[0], dtype, allow_zero=True)
    return st.builds(ElasticNet, w, w)


def group_l2s(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    """:class:`GroupL2`; ``shape`` must be ``(B, G, m)``."""
    return weights(shape[0], dtype).map(GroupL2)


def l0s(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    return weights(shape[0], dtype).map(L0)


def group_l0s(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    """:class:`GroupL0`; ``shape`` must be ``(B, G, m)``."""
    return weights(shape[0], dtype).map(GroupL0)


def zeros(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    return st.just(Zero())


def boxes(shape: Shape, dtype: torch.dtype, *, contain_zero: bool = False) -> st.SearchStrategy:
    return bound_pairs(shape, dtype, contain_zero=contain_zero).map(lambda lu: Box(*lu))


def linf_balls(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    return positives(shape[0], dtype, low=0.05, high=3.0, allow_zero=True).map(LinfBall)


@st.composite
def box_linfs(draw, shape: Shape, dtype: torch.dtype, *, contain_zero: bool = False):
    """:class:`BoxLinf` with a non-empty set: the radius is at least ``max(lower, -upper)``."""
    lower, upper = draw(bound_pairs(shape, dtype, contain_zero=contain_zero))
    need = torch.maximum(_full(lower, shape, dtype), -_full(upper, shape, dtype)).clamp_min(0.0)
    need = need.reshape(shape[0], -1).amax(dim=1)  # finite: lower < +inf and upper > -inf
    extra = draw(positives(shape[0], dtype, low=0.01, high=2.0, allow_zero=True))
    if isinstance(extra, float) or draw(st.booleans()):
        radius = float(need.max()) + float(torch.as_tensor(extra).max())
    else:
        radius = need + extra
    return BoxLinf(lower, upper, radius)


@st.composite
def fixed_supports(draw, shape: Shape, dtype: torch.dtype):
    """:class:`FixedSupport` with a per-sample ``(B, ...)`` or shared ``(1, ...)`` mask."""
    mshape = draw(st.sampled_from([shape, (1, *shape[1:])]))
    return FixedSupport(torch.from_numpy(draw(hnp.arrays(np.bool_, mshape))))


#: Separable functions that are not indicators (valid ``f`` of :class:`Constrained`).
SEPARABLE_PENALTIES: Sequence[OperatorStrategy] = (l1s, squared_l2s, elastic_nets, zeros)


@st.composite
def scaleds(draw, shape: Shape, dtype: torch.dtype):
    """``Scaled(f, alpha)`` of a separable penalty or an indicator."""
    inner = draw(st.sampled_from([*SEPARABLE_PENALTIES, linf_balls]))
    return Scaled(draw(inner(shape, dtype)), draw(weights(shape[0], dtype)))


def _zero_containing_sets(shape: Shape, dtype: torch.dtype) -> st.SearchStrategy:
    return st.one_of(boxes(shape, dtype, contain_zero=True), linf_balls(shape, dtype),
                     box_linfs(shape, dtype, contain_zero=True), fixed_supports(shape, dtype))


@st.composite
def constraineds(draw, shape: Shape, dtype: torch.dtype):
    """``Constrained(f, C1[, C2])`` with sets that all contain 0 (so their intersection is not
    empty)."""
    f = draw(draw(st.sampled_from(SEPARABLE_PENALTIES))(shape, dtype))
    sets = draw(st.lists(_zero_containing_sets(shape, dtype), min_size=1, max_size=2))
    return Constrained(f, *sets)


#: Operators a :class:`SeparableSum` part may hold (their parameters suit a flat ``(B, n)``).
FLAT_OPERATORS: Sequence[OperatorStrategy] = (l1s, squared_l2s, elastic_nets, zeros, linf_balls,
                                             boxes, box_linfs)


@st.composite
def separable_sums(draw, shape: Shape, dtype: torch.dtype):
    """:class:`SeparableSum` of up to three parts from a random labelling of the coordinates."""
    k = draw(st.integers(1, 3))
    labels = torch.from_numpy(draw(hnp.arrays(np.int64, shape[1:], elements=st.integers(0, k - 1))))
    parts = []
    for j in range(k):
        mask = labels == j
        n = int(mask.sum())
        if n:
            op = draw(st.sampled_from(FLAT_OPERATORS))
            parts.append((mask, draw(op((shape[0], n), dtype))))
    return SeparableSum(parts)


#: Every built-in operator's strategy, by class name.
OPERATORS: Dict[str, OperatorStrategy] = {
    "L1": l1s, "SquaredL2": squared_l2s, "ElasticNet": elastic_nets, "GroupL2": group_l2s,
    "Zero": zeros, "Box": boxes, "LinfBall": linf_balls, "BoxLinf": box_linfs,
    "FixedSupport": fixed_supports, "Scaled": scaleds, "Constrained": constraineds,
    "SeparableSum": separable_sums, "L0": l0s, "GroupL0": group_l0s,
}
#: Operators that need grouped ``(B, G, m)`` inputs.
GROUPED = frozenset({"GroupL2", "GroupL0"})
#: Operators of non-convex functions: their (exact) prox is not firmly non-expansive.
NONCONVEX = frozenset({"L0", "GroupL0"})


# -- cases --------------------------------------------------------------------------------------
@attrs.frozen
class ProxCase:
    """An operator ``f``, a point ``v`` of shape ``(B, ...)`` and a step ``tau``."""

    f: ProxFunction
    v: Tensor
    tau: Union[float, Tensor]


@st.composite
def prox_cases(draw, operator: Union[str, OperatorStrategy], *, shapes=None, dtypes=dtypes()):
    """A :class:`ProxCase` for ``operator`` (a name in :data:`OPERATORS` or a strategy factory
    ``(shape, dtype) -> SearchStrategy``); ``shapes`` defaults to grouped shapes for
    :data:`GROUPED` operators and :func:`batched_shapes` otherwise."""
    if shapes is None:
        shapes = grouped_shapes() if operator in GROUPED else batched_shapes()
    if isinstance(operator, str):
        operator = OPERATORS[operator]
    shape = draw(shapes)
    dtype = draw(dtypes)
    return ProxCase(draw(operator(shape, dtype)), draw(tensors(shape, dtype)),
                    draw(taus(shape[0], dtype)))


@st.composite
def prox_pairs(draw, operator: Union[str, OperatorStrategy], **kwargs):
    """A :class:`ProxCase` and a second point ``v2`` of the same shape and dtype."""
    case = draw(prox_cases(operator, **kwargs))
    return case, draw(tensors(tuple(case.v.shape), case.v.dtype))
