"""Norm-like penalties: ``L1``, ``SquaredL2``, ``ElasticNet``, ``GroupL2``, ``Zero`` and the
non-convex counts ``L0`` and ``GroupL0``.

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


def _check_grouped(f: ProxFunction, x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"{type(f).__name__} expects grouped copies of shape (B, G, m) (see "
                         f"SlidingGroups.gather); got shape {tuple(x.shape)}")


@attrs.define(frozen=True, eq=False)
class GroupL2(ProxFunction):
    r"""Group lasso on group copies ``x`` of shape ``(B, G, m)``: ``f(x) = w · Σ_g ||x[:, g, :]||₂``.

    ``prox(v, τ)_g = max(1 − wτ / ||v_g||₂, 0) · v_g`` (block soft threshold, paper eq. 12),
    exactly 0 where ``v_g = 0``. Use :meth:`admmkit.groups.SlidingGroups.gather` to build
    ``(B, G, m)`` copies of an image.
    """

    weight: Scalar = _weight("weight")

    def __call__(self, x: Tensor) -> Tensor:
        _check_grouped(self, x)
        s = x.norm(dim=-1).sum(dim=-1)
        return batch_view(self.weight, s) * s

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        _check_grouped(self, v)
        check_tau(tau, v)
        t = batch_view(self.weight, v) * batch_view(tau, v)
        norms = v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
        return torch.clamp_min(1.0 - t / norms, 0.0) * v


def hard_threshold(v: Tensor, sq: Tensor, t) -> Tensor:
    """``v`` where ``sq > 2t``, else 0 (``sq`` broadcasts against ``v``): the prox of
    ``t·[x ≠ 0]`` on the pieces (coordinates or groups) whose squared norms are ``sq``."""
    return torch.where(sq > 2.0 * t, v, torch.zeros_like(v))


@attrs.define(frozen=True, eq=False)
class L0(ProxFunction):
    r"""``f(x) = w · ||x||₀ = w · #{i : x_i ≠ 0}`` (non-convex);
    ``prox(v, τ)_i = v_i if v_i² > 2wτ else 0`` (hard threshold).

    The prox is exact: the problem is separable and each coordinate either keeps ``v_i`` (cost
    ``w``) or is zero (cost ``v_i²/(2τ)``); at a tie ``v_i² = 2wτ`` both are minimisers and 0 is
    returned. The function is not convex, so ADMM with this term is a heuristic with no
    convergence guarantee, and the clipped prox is not the prox of ``f`` plus a box (so
    ``is_separable`` is False: :class:`Constrained` refuses it).
    """

    weight: Scalar = _weight("weight")

    def __call__(self, x: Tensor) -> Tensor:
        s = per_sample_sum((x != 0).to(x.dtype))
        return batch_view(self.weight, s) * s

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return hard_threshold(v, v * v, batch_view(self.weight, v) * batch_view(tau, v))


@attrs.define(frozen=True, eq=False)
class GroupL0(ProxFunction):
    r"""Group ℓ0 on group copies ``x`` of shape ``(B, G, m)``:
    ``f(x) = w · #{g : x[:, g, :] ≠ 0}`` (non-convex), the number of groups touched;
    ``prox(v, τ)_g = v_g if ||v_g||₂² > 2wτ else 0`` (block hard threshold).

    Exact, as :class:`L0` (groups are disjoint in ``x``: each keeps ``v_g`` at cost ``w`` or is
    zero at cost ``||v_g||²/(2τ)``); ADMM with this term is a heuristic with no convergence
    guarantee. Use :meth:`admmkit.groups.SlidingGroups.gather` to build ``(B, G, m)`` copies.
    """

    weight: Scalar = _weight("weight")

    def __call__(self, x: Tensor) -> Tensor:
        _check_grouped(self, x)
        s = (x != 0).any(dim=-1).to(x.dtype).sum(dim=-1)
        return batch_view(self.weight, s) * s

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        _check_grouped(self, v)
        check_tau(tau, v)
        sq = (v * v).sum(dim=-1, keepdim=True)
        return hard_threshold(v, sq, batch_view(self.weight, v) * batch_view(tau, v))


@attrs.frozen
class Zero(ProxFunction):
    """``f(x) = 0``; ``prox(v, τ) = v`` (returned as a copy)."""

    is_separable = True

    def __call__(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0])

    def prox(self, v: Tensor, tau: Scalar) -> Tensor:
        check_tau(tau, v)
        return v.clone()
