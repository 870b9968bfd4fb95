"""Exact compositions of prox functions: ``Scaled``, ``Constrained``, ``SeparableSum``.

Only compositions whose prox is *exactly* computable from the parts' proxes are offered.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import attrs
import torch
from torch import Tensor

from admmkit.prox.base import (PER_SAMPLE, ProxFunction, Scalar, batch_view, check_per_sample,
                               param_repr)


def _check_function(name: str, value) -> None:
    if not isinstance(value, ProxFunction):
        raise TypeError(f"{name} must be a ProxFunction; got {type(value).__name__}")


@attrs.define(frozen=True, eq=False)
class Scaled(ProxFunction):
    r"""``α · f`` for ``α > 0`` (a float or per-sample ``(B,)`` tensor):
    ``prox_{αf}(v, τ) = prox_f(v, ατ)``."""

    f: ProxFunction = attrs.field()
    alpha: Scalar = attrs.field(metadata=PER_SAMPLE, repr=param_repr)

    @f.validator
    def _check_f(self, attribute, value):
        _check_function("f", value)

    @alpha.validator
    def _check_alpha(self, attribute, value):
        check_per_sample("alpha", value)

    @property
    def is_indicator(self) -> bool:
        return self.f.is_indicator

    @property
    def is_separable(self) -> bool:
        return self.f.is_separable

    def __call__(self, x: Tensor) -> Tensor:
        value = self.f(x)  # α > 0, so α · (+inf) = +inf: indicators stay indicators
        return batch_view(self.alpha, value) * value

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        if isinstance(self.alpha, Tensor) or isinstance(tau, Tensor):
            return self.f.prox(v, torch.as_tensor(self.alpha, dtype=v.dtype, device=v.device)
                               * torch.as_tensor(tau, dtype=v.dtype, device=v.device))
        return self.f.prox(v, float(self.alpha) * float(tau))


@attrs.define(frozen=True, eq=False)
class Constrained(ProxFunction):
    r"""``f + ι_{C₁} + ... + ι_{Cₖ}`` for a separable ``f`` and coordinate-wise sets ``Cᵢ``
    (:class:`Box`, :class:`LinfBall`, :class:`BoxLinf`, :class:`FixedSupport`, or any indicator
    with ``is_indicator and is_separable``):

        ``prox(v, τ) = P_{Cₖ}(... P_{C₁}(prox_f(v, τ)))``

    Exact: per coordinate, ``f``'s term is a convex 1-D function and each ``Cᵢ`` an interval; the
    prox of a 1-D convex function plus an interval is the clipped prox, and clipping onto
    intervals one after another projects onto their (non-empty) intersection.
    """

    f: ProxFunction = attrs.field()
    indicators: Tuple[ProxFunction, ...] = attrs.field()

    def __init__(self, f: ProxFunction, *indicators: ProxFunction):
        self.__attrs_init__(f, tuple(indicators))

    @f.validator
    def _check_f(self, attribute, value):
        _check_function("f", value)
        if not value.is_separable:
            raise TypeError(f"Constrained needs a separable f (f.is_separable); got "
                            f"{type(value).__name__}, whose clipped prox would not be exact")

    @indicators.validator
    def _check_indicators(self, attribute, value):
        for i, g in enumerate(value):
            _check_function(f"indicators[{i}]", g)
            if not (g.is_indicator and g.is_separable):
                raise TypeError(f"indicators[{i}] must be the indicator of a coordinate-wise set "
                                f"(is_indicator and is_separable); got {type(g).__name__}")

    is_separable = True

    @property
    def is_indicator(self) -> bool:
        return self.f.is_indicator

    def __call__(self, x: Tensor) -> Tensor:
        value = self.f(x)
        for g in self.indicators:
            value = value + g(x)
        return value

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        x = self.f.prox(v, tau)
        for g in self.indicators:
            x = g.prox(x, tau)
        return x


def _parts_repr(parts) -> str:
    return "(" + ", ".join(f"({param_repr(m)}, {f!r})" for m, f in parts) + ")"


def _to_parts(parts) -> Tuple[Tuple[Tensor, ProxFunction], ...]:
    return tuple((mask, f) for mask, f in parts)


@attrs.define(frozen=True, eq=False)
class SeparableSum(ProxFunction):
    r"""``f(x) = Σₖ fₖ(x[:, maskₖ])`` over disjoint parts of the coordinates.

    ``parts`` is a sequence of ``(mask, fₖ)``: bool masks of the per-sample shape ``x.shape[1:]``
    (shared by the whole batch) that partition the coordinates. Each ``fₖ`` sees the flat
    ``(B, nₖ)`` tensor of its coordinates (so tensor parameters of ``fₖ`` must be given in that
    layout, or per sample). The prox acts part by part, which is exact:

        ``prox(v, τ)[:, maskₖ] = prox_{fₖ}(v[:, maskₖ], τ)``
    """

    parts: Tuple[Tuple[Tensor, ProxFunction], ...] = attrs.field(converter=_to_parts,
                                                                 repr=_parts_repr)

    @parts.validator
    def _check_parts(self, attribute, value: Sequence):
        if not value:
            raise ValueError("parts must hold at least one (mask, function) pair")
        shape = None
        for i, (mask, f) in enumerate(value):
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                raise TypeError(f"parts[{i}] mask must be a bool tensor")
            _check_function(f"parts[{i}] function", f)
            if shape is None:
                shape = mask.shape
            elif mask.shape != shape:
                raise ValueError(f"parts masks must share one shape; parts[{i}] has "
                                 f"{tuple(mask.shape)}, parts[0] has {tuple(shape)}")
        count = sum(mask.to(value[0][0].device, torch.int64) for mask, _ in value)
        if (count != 1).any():
            raise ValueError("parts masks must partition the coordinates: "
                             f"{int((count == 0).sum())} coordinate(s) are in no part, "
                             f"{int((count > 1).sum())} in several")

    @property
    def is_indicator(self) -> bool:
        return all(f.is_indicator for _, f in self.parts)

    @property
    def is_separable(self) -> bool:
        return all(f.is_separable for _, f in self.parts)

    def _masks(self, x: Tensor):
        shape = self.parts[0][0].shape
        if tuple(x.shape[1:]) != tuple(shape):
            raise ValueError(f"expected x of shape (B, {', '.join(map(str, shape))}); "
                             f"got {tuple(x.shape)}")
        return [(mask.to(x.device), f) for mask, f in self.parts]

    def __call__(self, x: Tensor) -> Tensor:
        return sum(f(x[:, mask]) for mask, f in self._masks(x))

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        out = torch.empty_like(v)
        for mask, f in self._masks(v):
            out[:, mask] = f.prox(v[:, mask], tau)
        return out
