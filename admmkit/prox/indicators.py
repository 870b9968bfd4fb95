"""Indicators of coordinate-wise convex sets: ``Box``, ``LinfBall``, ``BoxLinf``, ``FixedSupport``.

``f(x) = 0`` on the set and ``+inf`` elsewhere (per sample, with a relative tolerance of
``FEASIBILITY_RTOL``); ``prox`` is the Euclidean projection and ignores ``tau``. Each set is a
product of intervals, so every indicator here is separable.

Bounds are floats or tensors: a per-sample ``(B,)`` tensor, or a tensor broadcastable to ``x``
with ``x``'s rank (e.g. ``lower = -x0``, ``upper = 1 - x0`` for images ``x0`` of shape ``(B, ...)``).
"""

from __future__ import annotations

import math
import numbers
from typing import Union

import attrs
import torch
from torch import Tensor

from admmkit.prox.base import (PER_SAMPLE, ProxFunction, Scalar, batch_view, check_per_sample,
                               check_tau, param_repr)

#: Relative tolerance of the feasibility test in ``__call__``.
FEASIBILITY_RTOL = 1e-6

Bound = Union[float, Tensor]


def _indicator(violation: Tensor, scale) -> Tensor:
    """``0`` per sample where ``violation <= rtol · (1 + scale)`` elementwise, else ``+inf``."""
    bad = (violation > FEASIBILITY_RTOL * (1.0 + scale)).reshape(violation.shape[0], -1).any(dim=1)
    zero = violation.new_zeros(violation.shape[0])
    return torch.where(bad, torch.full_like(zero, math.inf), zero)


def _clip(v: Tensor, lo, hi) -> Tensor:
    """``min(max(v, lo), hi)`` for float or tensor bounds."""
    v = torch.clamp_min(v, lo) if isinstance(lo, float) else torch.maximum(v, lo)
    return torch.clamp_max(v, hi) if isinstance(hi, float) else torch.minimum(v, hi)


def _to_bound(value) -> Bound:
    if isinstance(value, Tensor):
        return value if value.is_floating_point() else value.to(torch.get_default_dtype())
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"bounds must be numbers or tensors; got {type(value).__name__}")


def _check_bounds(lower: Bound, upper: Bound, *, names=("lower", "upper")) -> None:
    """Raise ``ValueError`` for NaN, ``lower = +inf``, ``upper = -inf`` or ``lower > upper``."""
    lo, hi = torch.as_tensor(lower), torch.as_tensor(upper)
    for name, t, wrong in ((names[0], lo, math.inf), (names[1], hi, -math.inf)):
        if torch.isnan(t).any() or (t == wrong).any():
            raise ValueError(f"{name} must not be NaN or {wrong}; got {_describe(t)}")
    try:
        bad = lo > hi.to(lo.device)
    except RuntimeError:
        raise ValueError(f"{names[0]} {tuple(lo.shape)} and {names[1]} {tuple(hi.shape)} do not "
                         "broadcast together") from None
    if bad.any():
        raise ValueError(f"{names[0]} > {names[1]} at {int(bad.sum())} coordinate(s): the set is "
                         f"empty (e.g. {names[0]}={lo.broadcast_to(bad.shape)[bad][0].item():.4g}, "
                         f"{names[1]}={hi.broadcast_to(bad.shape)[bad][0].item():.4g})")


def _describe(t: Tensor) -> str:
    return f"{t.item()!r}" if t.numel() == 1 else f"a tensor of shape {tuple(t.shape)}"


def _box_call(x: Tensor, lo, hi) -> Tensor:
    violation = torch.clamp_min(lo - x, 0.0) + torch.clamp_min(x - hi, 0.0)
    return _indicator(violation, x.abs())


@attrs.define(frozen=True, eq=False)
class Box(ProxFunction):
    r"""Indicator of ``{x : lower <= x <= upper}`` (elementwise); ``prox(v, τ) = clip(v, lower, upper)``.

    Infinite bounds (``lower = -inf``, ``upper = +inf``) give half-bounded or free coordinates.
    """

    lower: Bound = attrs.field(converter=_to_bound, metadata=PER_SAMPLE, repr=param_repr)
    upper: Bound = attrs.field(converter=_to_bound, metadata=PER_SAMPLE, repr=param_repr)
    is_indicator = True
    is_separable = True

    def __attrs_post_init__(self):
        _check_bounds(self.lower, self.upper)

    def __call__(self, x: Tensor) -> Tensor:
        return _box_call(x, batch_view(self.lower, x), batch_view(self.upper, x))

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return _clip(v, batch_view(self.lower, v), batch_view(self.upper, v))


@attrs.define(frozen=True, eq=False)
class LinfBall(ProxFunction):
    r"""Indicator of ``{x : ||x||_∞ <= radius}``; ``prox(v, τ) = clip(v, −radius, radius)``.

    ``radius`` is a non-negative float or a per-sample ``(B,)`` tensor.
    """

    radius: Scalar = attrs.field(metadata=PER_SAMPLE, repr=param_repr)
    is_indicator = True
    is_separable = True

    @radius.validator
    def _check_radius(self, attribute, value):
        check_per_sample("radius", value, allow_zero=True)

    def __call__(self, x: Tensor) -> Tensor:
        r = batch_view(self.radius, x)
        return _indicator(torch.clamp_min(x.abs() - r, 0.0), x.abs())

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        r = batch_view(self.radius, v)
        return _clip(v, -r, r)


@attrs.define(frozen=True, eq=False)
class BoxLinf(ProxFunction):
    r"""Indicator of ``[lower, upper] ∩ {||x||_∞ <= radius}`` (paper eq. 11, with
    ``lower = −x0``, ``upper = 1 − x0``, ``radius = ε``).

    The intersection is the box ``[max(lower, −radius), min(upper, radius)]``, so
    ``prox(v, τ) = clip(v, max(lower, −radius), min(upper, radius))``. An empty intersection is
    a ``ValueError`` at construction. A per-sample ``(B,)`` ``radius`` is aligned with the
    leading (batch) dimension of tensor bounds.
    """

    lower: Bound = attrs.field(converter=_to_bound, metadata=PER_SAMPLE, repr=param_repr)
    upper: Bound = attrs.field(converter=_to_bound, metadata=PER_SAMPLE, repr=param_repr)
    radius: Scalar = attrs.field(metadata=PER_SAMPLE, repr=param_repr)
    #: The equivalent :class:`Box` (derived).
    box: Box = attrs.field(init=False, repr=False)
    is_indicator = True
    is_separable = True

    @radius.validator
    def _check_radius(self, attribute, value):
        check_per_sample("radius", value, allow_zero=True)

    def __attrs_post_init__(self):
        _check_bounds(self.lower, self.upper)
        r = self.radius
        rank = max([b.dim() for b in (self.lower, self.upper) if isinstance(b, Tensor)] + [1])
        if isinstance(r, Tensor) and r.dim() == 1:
            r = r.reshape(-1, *([1] * (rank - 1)))
        lo, hi = _elementwise(torch.maximum, self.lower, -r), _elementwise(torch.minimum, self.upper, r)
        try:
            _check_bounds(lo, hi, names=("max(lower, -radius)", "min(upper, radius)"))
        except ValueError as err:
            raise ValueError(f"BoxLinf(lower, upper, radius) is empty: {err}") from None
        object.__setattr__(self, "box", Box(lo, hi))

    def __call__(self, x: Tensor) -> Tensor:
        return self.box(x)

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        return self.box.prox(v, tau)


def _elementwise(op, a: Bound, b: Bound) -> Bound:
    """``op`` (``torch.maximum`` / ``torch.minimum``) on floats or tensors, on a tensor's device."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return float(op(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
    if not isinstance(a, Tensor):
        a, b = b, a
    return op(a, torch.as_tensor(b, dtype=a.dtype, device=a.device))


def _to_mask(value) -> Tensor:
    if not isinstance(value, Tensor) or value.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor; got "
                        f"{value.dtype if isinstance(value, Tensor) else type(value).__name__}")
    return value


@attrs.define(frozen=True, eq=False)
class FixedSupport(ProxFunction):
    r"""Indicator of ``{x : x = 0 outside mask}`` (the refined attack's fixed support, eq. 21);
    ``prox(v, τ) = v · mask``.

    ``mask`` is a bool tensor broadcastable to ``x`` with ``x``'s rank, possibly per sample
    ``(B, ...)``. ``f(x)`` accepts ``|x| <= FEASIBILITY_RTOL`` outside the mask.
    """

    mask: Tensor = attrs.field(converter=_to_mask, metadata=PER_SAMPLE, repr=param_repr)
    is_indicator = True
    is_separable = True

    def _mask(self, x: Tensor) -> Tensor:
        return self.mask.to(x.device)

    def __call__(self, x: Tensor) -> Tensor:
        return _indicator(torch.where(self._mask(x), torch.zeros_like(x), x.abs()), 0.0)

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return torch.where(self._mask(v), v, torch.zeros_like(v))
