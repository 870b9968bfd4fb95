"""Norm-like penalties: ``L1``, ``SquaredL2``, ``ElasticNet``, ``GroupL2`` and ``Zero``.

Every weight is a positive float or a per-sample ``(B,)`` tensor. Convention (see
:mod:`admmkit.prox.base`): ``prox(v, tau) = argmin_x f(x) + ||x - v||² / (2 tau)``.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from admmkit.prox.base import (PER_SAMPLE, ProxFunction, Scalar, batch_view, check_per_sample,
                               check_tau, param_repr, per_sample_sum)


def _weight(name: str, *, allow_zero: bool = False, default: float = 1.0):
    def check(instance, attribute, value):
        check_per_sample(name, value, allow_zero=allow_zero)
    return attrs.field(default=default, validator=check, metadata=PER_SAMPLE, repr=param_repr)


def soft_threshold(v: Tensor, t) -> Tensor:
    """``sign(v) · max(|v| − t, 0)`` elementwise: the prox of ``t·|·|``."""
    return torch.sign(v) * torch.clamp_min(v.abs() - t, 0.0)


@attrs.define(frozen=True, eq=False)
class L1(ProxFunction):
    r"""``f(x) = w · ||x||₁``; ``prox(v, τ) = sign(v) · max(|v| − wτ, 0)`` (soft threshold)."""

    weight: Scalar = _weight("weight")
    is_separable = True

    def __call__(self, x: Tensor) -> Tensor:
        s = per_sample_sum(x.abs())
        return batch_view(self.weight, s) * s

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return soft_threshold(v, batch_view(self.weight, v) * batch_view(tau, v))


@attrs.define(frozen=True, eq=False)
class SquaredL2(ProxFunction):
    r"""``f(x) = w · ||x||₂²``; ``prox(v, τ) = v / (1 + 2wτ)`` (paper eq. 10)."""

    weight: Scalar = _weight("weight")
    is_separable = True

    def __call__(self, x: Tensor) -> Tensor:
        s = per_sample_sum(x * x)
        return batch_view(self.weight, s) * s

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return v / (1.0 + 2.0 * batch_view(self.weight, v) * batch_view(tau, v))


@attrs.define(frozen=True, eq=False)
class ElasticNet(ProxFunction):
    r"""``f(x) = l1 · ||x||₁ + l2 · ||x||₂²`` (EAD);
    ``prox(v, τ) = sign(v) · max(|v| − l1·τ, 0) / (1 + 2·l2·τ)``.

    Either weight may be zero (``l2 = 0`` is :class:`L1`, ``l1 = 0`` is :class:`SquaredL2`).
    """

    l1: Scalar = _weight("l1", allow_zero=True)
    l2: Scalar = _weight("l2", allow_zero=True)
    is_separable = True

    def __call__(self, x: Tensor) -> Tensor:
        s1, s2 = per_sample_sum(x.abs()), per_sample_sum(x * x)
        return batch_view(self.l1, s1) * s1 + batch_view(self.l2, s2) * s2

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        t = batch_view(tau, v)
        return soft_threshold(v, batch_view(self.l1, v) * t) / (1.0 + 2.0 * batch_view(self.l2, v) * t)


@attrs.define(frozen=True, eq=False)
class GroupL2(ProxFunction):
    r"""Group lasso on group copies ``x`` of shape ``(B, G, m)``: ``f(x) = w · Σ_g ||x[:, g, :]||₂``.

    ``prox(v, τ)_g = max(1 − wτ / ||v_g||₂, 0) · v_g`` (block soft threshold, paper eq. 12),
    exactly 0 where ``v_g = 0``. Use :meth:`admmkit.groups.SlidingGroups.gather` to build
    ``(B, G, m)`` copies of an image.
    """

    weight: Scalar = _weight("weight")

    @staticmethod
    def _check_grouped(x: Tensor) -> None:
        if x.dim() != 3:
            raise ValueError("GroupL2 expects grouped copies of shape (B, G, m) (see "
                             f"SlidingGroups.gather); got shape {tuple(x.shape)}")

    def __call__(self, x: Tensor) -> Tensor:
        self._check_grouped(x)
        s = x.norm(dim=-1).sum(dim=-1)
        return batch_view(self.weight, s) * s

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        self._check_grouped(v)
        check_tau(tau, v)
        t = batch_view(self.weight, v) * batch_view(tau, v)
        norms = v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        return torch.clamp_min(1.0 - t / norms, 0.0) * v


@attrs.frozen
class Zero(ProxFunction):
    """``f(x) = 0``; ``prox(v, τ) = v`` (returned as a copy)."""

    is_separable = True

    def __call__(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0])

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return v.clone()
