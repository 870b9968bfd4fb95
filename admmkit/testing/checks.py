"""Reusable checks of prox operators: plain functions that raise ``AssertionError``.

Each check takes an operator ``f``, a batch ``v`` of shape ``(B, ...)`` and a step ``tau`` (float or
``(B,)`` tensor); random probes come from a seeded generator, so a check is deterministic.
Objectives and inner products are evaluated in float64; tolerances scale with the machine
epsilon of ``v``'s dtype and with the size of the quantities compared.

:func:`check_prox` runs every check that applies; the others can be used one by one.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from admmkit.prox import (L1, Box, ElasticNet, FixedSupport, GroupL2, LinfBall, ProxFunction,
                          Scaled, SquaredL2, Zero)

#: Tolerances are ``FACTOR · eps(dtype) · scale``.
FACTOR = 64.0

ConjugateProx = Callable[[Tensor, Tensor], Tensor]


# -- small helpers ------------------------------------------------------------------------------
def _eps(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(like: Tensor, gen: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=gen, dtype=torch.float64).to(like.device, like.dtype)


def _col(t, like: Tensor):
    """A float or ``(B,)`` tensor as float64 broadcasting against ``like`` ``(B, ...)``."""
    if not isinstance(t, Tensor):
        return float(t)
    t = t.to(device=like.device, dtype=torch.float64)
    return t.reshape(-1, *([1] * (like.dim() - 1))) if t.dim() == 1 else t


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).to(torch.float64)


def _sqnorm(x: Tensor) -> Tensor:
    return (_flat(x) ** 2).sum(dim=1)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (_flat(a) * _flat(b)).sum(dim=1)


def _per_sample_tau(tau, b: int) -> Tensor:
    return torch.as_tensor(tau, dtype=torch.float64).cpu().expand(b)


def _scaled_tau(tau, factor):
    """``tau · factor`` for a float or ``(B,)`` ``factor``; tensors stay on ``tau``'s device."""
    if isinstance(tau, Tensor) or isinstance(factor, Tensor):
        factor = torch.as_tensor(factor)
        dev = tau.device if isinstance(tau, Tensor) else factor.device
        return torch.as_tensor(tau, device=dev) * factor.to(dev)
    return tau * factor


def objective(f: ProxFunction, q: Tensor, v: Tensor, tau) -> Tensor:
    """``f(q) + ||q − v||² / (2 tau)`` per sample, in float64."""
    q64, v64 = q.to(torch.float64), v.to(torch.float64)
    tau = torch.as_tensor(tau, dtype=torch.float64, device=v.device)
    return f(q64).to(torch.float64) + _sqnorm(q64 - v64) / (2.0 * tau)


def _where(bad: Tensor) -> str:
    idx = torch.nonzero(bad).flatten().tolist()
    return f"sample(s) {idx}"


def _assert_close(actual: Tensor, expected: Tensor, dtype: torch.dtype, what: str,
                  factor: float = FACTOR) -> None:
    """Elementwise ``|a − e| <= factor · eps · (1 + max|e|)`` per sample (infinities must match)."""
    a, e = _flat(actual), _flat(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shapes differ, {tuple(actual.shape)} vs {tuple(expected.shape)}")
    if not e.numel():
        return
    scale = 1.0 + torch.where(torch.isinf(e), 0.0, e.abs()).amax(dim=1, keepdim=True)
    err = torch.nan_to_num(torch.where(a == e, 0.0, (a - e).abs()), nan=math.inf)
    bad = (err > factor * _eps(dtype) * scale).any(dim=1)
    if bad.any():
        raise AssertionError(f"{what}: mismatch at {_where(bad)} ({dtype}); max abs error "
                             f"{err.max().item():.3g}, tolerance {factor * _eps(dtype):.3g} × "
                             f"(1 + max|expected|)")


# -- purity -------------------------------------------------------------------------------------
def check_purity(f: ProxFunction, v: Tensor, tau) -> None:
    """``prox`` leaves ``v`` and ``tau`` untouched, returns a new tensor of ``v``'s shape, dtype
    and device; ``f(x)`` returns ``(B,)`` values on ``x``'s device."""
    v0 = v.clone()
    tau0 = tau.clone() if isinstance(tau, Tensor) else tau
    p = f.prox(v, tau)
    name = type(f).__name__
    if not torch.equal(v, v0):
        raise AssertionError(f"{name}.prox mutated its input v")
    if isinstance(tau, Tensor) and not torch.equal(tau, tau0):
        raise AssertionError(f"{name}.prox mutated tau")
    if not isinstance(p, Tensor):
        raise AssertionError(f"{name}.prox returned {type(p).__name__}, not a tensor")
    for attr in ("shape", "dtype", "device"):
        if getattr(p, attr) != getattr(v, attr):
            raise AssertionError(f"{name}.prox changed the {attr}: {getattr(v, attr)} -> "
                                 f"{getattr(p, attr)}")
    if v.numel() and p.untyped_storage().data_ptr() == v.untyped_storage().data_ptr():
        raise AssertionError(f"{name}.prox returned its input (or a view of it); return a new "
                             "tensor so callers may write into the result")
    for x, label in ((v, "v"), (p, "prox(v)")):
        val = f(x)
        if not isinstance(val, Tensor) or tuple(val.shape) != (v.shape[0],):
            raise AssertionError(f"{name}({label}) must return per-sample values of shape "
                                 f"({v.shape[0]},); got {getattr(val, 'shape', type(val))}")
        if val.device != v.device or not val.is_floating_point() or torch.isnan(val).any():
            raise AssertionError(f"{name}({label}) returned {val} (expected finite or +inf "
                                 f"floats on {v.device})")
    if not torch.equal(v, v0):
        raise AssertionError(f"{name}.__call__ mutated its input")


# -- optimality ---------------------------------------------------------------------------------
def _candidates(f: ProxFunction, v: Tensor, tau, p: Tensor, n_random: int,
                gen: torch.Generator) -> Iterator[Tuple[str, Tensor]]:
    """Points to compare the prox against: on the segment to ``v``, proxes with other steps or of
    other points (which lie in ``dom f``) and mixtures with ``p``, small dense and
    single-coordinate perturbations of ``p``."""
    p64, v64 = p.to(torch.float64), v.to(torch.float64)
    b = v.shape[0]
    scale = 1.0 + v64.abs().max().item() if v.numel() else 1.0
    for s in (1e-4, 1e-2, 0.1, 0.5, 1.0):
        yield f"p + {s}·(v − p)", p64 + s * (v64 - p64)
    for c in (0.5, 0.9, 1.1, 2.0):
        q = f.prox(v, _scaled_tau(tau, c)).to(torch.float64)
        yield f"prox(v, {c}·tau)", q
        yield f"0.99·p + 0.01·prox(v, {c}·tau)", 0.99 * p64 + 0.01 * q
    for k in range(n_random):
        w = v + _randn(v, gen) * (scale * 10.0 ** (k % 3 - 1))
        steps = torch.exp(torch.randn(b, generator=gen, dtype=torch.float64)).to(v.device)
        q = f.prox(w, _scaled_tau(tau, steps)).to(torch.float64)
        s = 10.0 ** -(k % 4)
        yield f"random point in dom f (#{k})", q
        yield f"(1 − {s})·p + {s}·(random point in dom f #{k})", (1 - s) * p64 + s * q
        d = _randn(p64, gen)
        yield f"p + small dense perturbation (#{k})", p64 + 1e-3 * 10.0 ** (k % 3) * scale * d
    flat = p64.reshape(b, -1)
    for j in torch.randperm(flat.shape[1], generator=gen)[:4].tolist():
        for s in (1e-3, -1e-3, 0.1, -0.1):
            q = flat.clone()
            q[:, j] += s * scale
            yield f"p with coordinate {j} moved by {s * scale:.3g}", q.reshape(p.shape)


def check_optimality(f: ProxFunction, v: Tensor, tau, *, n_random: int = 6,
                     seed: int = 0) -> None:
    """``p = prox(v, tau)`` minimises ``f(x) + ||x − v||²/(2 tau)``: its objective is at most that
    of many candidate points ``q`` (near ``p`` and far), up to rounding.

    Each candidate is first moved into ``dom f`` by ``prox(q, 1e-6·tau)`` (a projection for
    indicators): indicators accept points within a small feasibility tolerance, and a barely
    infeasible candidate could otherwise beat the true minimiser.
    """
    p = f.prox(v, tau)
    obj_p = objective(f, p, v, tau)
    if not torch.isfinite(obj_p).all():
        raise AssertionError(f"{type(f).__name__}.prox returned a point outside dom f "
                             f"(f(p) = {f(p.to(torch.float64)).tolist()})")
    t = _per_sample_tau(tau, v.shape[0]).to(v.device)
    size = (_sqnorm(p) + _sqnorm(v)) / t + f(p.to(torch.float64)).abs().to(torch.float64)
    tol = FACTOR * _eps(v.dtype) * (1.0 + size)
    tiny = _scaled_tau(tau, 1e-6)
    for label, q in _candidates(f, v, tau, p, n_random, _gen(seed)):
        q = f.prox(q.to(v.dtype), tiny)
        obj_q = objective(f, q, v, tau)
        bad = obj_p > obj_q + tol
        if bad.any():
            i = int(torch.nonzero(bad)[0])
            raise AssertionError(
                f"{f!r}.prox is not optimal at {_where(bad)} ({v.dtype}): objective "
                f"f(x) + ||x − v||²/(2 tau) is {obj_p[i].item():.10g} at p but "
                f"{obj_q[i].item():.10g} at q = {label} (tolerance {tol[i].item():.3g})")


# -- projections --------------------------------------------------------------------------------
def check_projection(f: ProxFunction, v: Tensor, tau, *, n_random: int = 6, seed: int = 0,
                     feasibility_rtol: float = 1e-6) -> None:
    """For an indicator: ``p = prox(v)`` is feasible, idempotent, independent of ``tau``, leaves
    feasible ``v`` in place (up to the indicator's relative feasibility tolerance), and satisfies
    ``<v − p, q − p> <= 0`` for feasible ``q`` (the projection's variational inequality), with ``q``
    projections of random points far from and near ``p``."""
    name = type(f).__name__
    if not f.is_indicator:
        raise AssertionError(f"{name} is not an indicator (is_indicator is False)")
    p = f.prox(v, tau)
    fp = f(p)
    if not (fp == 0).all():
        raise AssertionError(f"{name}.prox(v) is infeasible at {_where(fp != 0)}: f(p) = {fp.tolist()}")
    _assert_close(f.prox(p, tau), p, v.dtype, f"{name}: projection not idempotent, prox(prox(v)) != prox(v)")
    _assert_close(f.prox(v, _scaled_tau(tau, 3.7)), p, v.dtype,
                  f"{name}: projection depends on tau")
    gen = _gen(seed)
    scale = 1.0 + v.abs().max().item() if v.numel() else 1.0
    inside = (f(v) == 0).to(v.device).reshape(-1, *([1] * (v.dim() - 1)))
    moved = (p.to(torch.float64) - v.to(torch.float64)).abs()
    allowed = 2 * feasibility_rtol * (1 + v.abs().to(torch.float64)) + FACTOR * _eps(v.dtype)
    bad = (inside & (moved > allowed)).reshape(v.shape[0], -1).any(dim=1)
    if bad.any():
        raise AssertionError(f"{name}.prox moved the feasible point v at {_where(bad)}")
    points = []
    for k in range(n_random):
        q = f.prox(v + _randn(v, gen) * scale * 10.0 ** (k % 3 - 1), tau)
        points.append((f"projection of a random point (#{k})", q))
        q = f.prox(p + _randn(p, gen) * scale * 10.0 ** -(k % 3 + 1), tau)
        points.append((f"projection of a random point near p (#{k})", q))
    flat = p.reshape(p.shape[0], -1)
    for j in torch.randperm(flat.shape[1], generator=gen)[:8].tolist():
        for step in (0.1 * scale, -0.1 * scale):
            w = flat.clone()
            w[:, j] += step
            points.append((f"projection of p with coordinate {j} moved by {step:.3g}",
                           f.prox(w.reshape(p.shape), tau)))
    p64, v64 = p.to(torch.float64), v.to(torch.float64)
    for label, q in points:
        feasible = f(q) == 0
        q64 = q.to(torch.float64)
        for s in (1.0, 1e-2):
            qs = p64 + s * (q64 - p64)
            inner = _dot(v64 - p64, qs - p64)
            size = (_sqnorm(p64) + _sqnorm(qs) + _sqnorm(v64)).sqrt() + 1.0
            tol = FACTOR * _eps(v.dtype) * size * (size + 1.0)
            bad = feasible & (inner > tol)
            if bad.any():
                i = int(torch.nonzero(bad)[0])
                raise AssertionError(
                    f"{f!r}.prox is not the projection at {_where(bad)} ({v.dtype}): "
                    f"<v − p, q − p> = {inner[i].item():.4g} > {tol[i].item():.3g} for the "
                    f"feasible q = p + {s}·({label} − p)")


# -- firm non-expansiveness ---------------------------------------------------------------------
def check_firm_nonexpansive(f: ProxFunction, v1: Tensor, v2: Tensor, tau) -> None:
    """``||p1 − p2||² <= <p1 − p2, v1 − v2>`` for ``pi = prox(vi, tau)`` (true of every prox of
    a convex function)."""
    p1, p2 = f.prox(v1, tau), f.prox(v2, tau)
    lhs, rhs = _sqnorm(p1 - p2), _dot(p1 - p2, v1 - v2)
    size = 1.0 + (_sqnorm(p1) + _sqnorm(p2) + _sqnorm(v1) + _sqnorm(v2)).sqrt()
    tol = FACTOR * _eps(v1.dtype) * size * size
    bad = lhs > rhs + tol
    if bad.any():
        i = int(torch.nonzero(bad)[0])
        raise AssertionError(f"{f!r}.prox is not firmly non-expansive at {_where(bad)} "
                             f"({v1.dtype}): ||p1 − p2||² = {lhs[i].item():.6g} > "
                             f"<p1 − p2, v1 − v2> = {rhs[i].item():.6g}")


# -- batch independence -------------------------------------------------------------------------
def select_sample(f: ProxFunction, i: int, batch: int) -> ProxFunction:
    """The operator for sample ``i`` alone: :meth:`~admmkit.prox.ProxFunction.select` of row
    ``i`` (per-sample fields whose leading dimension is ``batch`` are sliced)."""
    return f.select(torch.tensor([i]), batch)


def check_batch_independence(f: ProxFunction, v: Tensor, tau, *, seed: int = 0) -> None:
    """Sample ``i`` of ``prox(v, tau)`` depends only on ``v[i]`` and ``tau[i]``: it equals the prox
    of ``v[i:i+1]`` alone (with :func:`select_sample`'s operator), and is unchanged when the
    other samples and their steps are replaced by random ones."""
    b, name = v.shape[0], type(f).__name__
    p, vals = f.prox(v, tau), f(v)
    for i in range(b):
        fi = select_sample(f, i, b)
        ti = tau[i:i + 1] if isinstance(tau, Tensor) and tau.dim() == 1 else tau
        _assert_close(fi.prox(v[i:i + 1], ti), p[i:i + 1], v.dtype,
                      f"{name}: prox of sample {i} alone differs from sample {i} of the batch")
        _assert_close(fi(v[i:i + 1]), vals[i:i + 1], v.dtype,
                      f"{name}: f of sample {i} alone differs from sample {i} of the batch")
    if b < 2:
        return
    gen = _gen(seed)
    t = _per_sample_tau(tau, b)
    for i in range(b):
        others = torch.arange(b) != i
        v2 = torch.where(others.to(v.device).reshape(-1, *([1] * (v.dim() - 1))),
                         _randn(v, gen) * 3.0, v)
        t2 = torch.where(others, torch.exp(torch.randn(b, generator=gen, dtype=torch.float64)), t)
        t2 = t2.to(device=v.device, dtype=v.dtype)
        _assert_close(f.prox(v2, t2)[i:i + 1], p[i:i + 1], v.dtype,
                      f"{name}: sample {i} of the prox changed when the other samples (and their "
                      "tau) changed")


# -- Moreau decomposition -----------------------------------------------------------------------
# Proxes of the convex conjugates f*, written independently of the operators under test:
# ``conj(u, s) = argmin_y f*(y) + ||y − u||² / (2 s)``.
def _w(t, like: Tensor):
    return _col(t, like)


def _ball_projection(u: Tensor, r) -> Tensor:
    """Projection on ``{||y||_∞ <= r}`` (``r`` broadcast against ``u``)."""
    return torch.sign(u) * torch.minimum(u.abs(), torch.as_tensor(r, dtype=u.dtype, device=u.device))


def _conj_l1(weight) -> ConjugateProx:
    """``(w||·||₁)* = ι{||y||_∞ <= w}``: clip to the ℓ∞ ball."""
    return lambda u, s: _ball_projection(u, _w(weight, u))


def _conj_group_l2(weight) -> ConjugateProx:
    """``(w Σ_g ||·||₂)* = ι{||y_g||₂ <= w ∀g}``: project each group on its ℓ2 ball."""
    def proj(u, s):
        w = _w(weight, u)
        n = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        return torch.where(n > w, u * (w / torch.where(n > 0, n, torch.ones_like(n))), u)
    return proj


def _conj_elastic_net(l1, l2) -> ConjugateProx:
    """``(l1|x| + l2 x²)*(y) = (|y| − l1)₊² / (4 l2)``; its prox keeps ``|u| <= l1`` and maps
    larger ``|u|`` to ``(l1 s + 2 l2 |u|) / (s + 2 l2)`` (``l2 = 0``: the ℓ∞ ball)."""
    def prox(u, s):
        a, b = _w(l1, u), _w(l2, u)
        big = (a * s + 2.0 * b * u.abs()) / (s + 2.0 * b)
        return torch.where(u.abs() > a, torch.sign(u) * big, u)
    return prox


def _conj_linf_ball(radius) -> ConjugateProx:
    """``ι{||x||_∞ <= r}* = r||y||₁``: soft threshold at ``r s``."""
    def prox(u, s):
        t = _w(radius, u) * s
        return torch.sign(u) * torch.clamp_min(u.abs() - t, 0.0)
    return prox


def _conj_box(lower, upper) -> ConjugateProx:
    """``ι[l, u]*(y) = Σ max(l y, u y)``; by Moreau, ``prox_{s σ}(u) = u − s P_[l,u](u / s)`` with
    the projection written as nested ``where``."""
    def prox(u, s):
        lo, hi = _w(lower, u), _w(upper, u)
        x = u / s
        lo, hi = torch.as_tensor(lo, dtype=x.dtype).expand_as(x), torch.as_tensor(hi, dtype=x.dtype).expand_as(x)
        proj = torch.where(x < lo, lo, torch.where(x > hi, hi, x))
        return u - s * proj
    return prox


def _conj_fixed_support(mask: Tensor) -> ConjugateProx:
    """``ι{x = 0 off M}* = ι{y = 0 on M}``: zero the masked coordinates."""
    return lambda u, s: u * (~mask.to(u.device)).to(u.dtype)


def conjugate_prox_of(f: ProxFunction) -> Optional[ConjugateProx]:
    """An independently written ``prox`` of ``f*`` for the built-in operators (``None`` if
    unknown). ``Scaled``: ``prox_{s (αf)*}(u) = α prox_{(s/α) f*}(u / α)``."""
    if isinstance(f, L1):
        return _conj_l1(f.weight)
    if isinstance(f, GroupL2):
        return _conj_group_l2(f.weight)
    if isinstance(f, SquaredL2):
        return _conj_elastic_net(0.0, f.weight)
    if isinstance(f, ElasticNet):
        return _conj_elastic_net(f.l1, f.l2)
    if isinstance(f, LinfBall):
        return _conj_linf_ball(f.radius)
    if isinstance(f, Box):
        return _conj_box(f.lower, f.upper)
    if isinstance(f, FixedSupport):
        return _conj_fixed_support(f.mask)
    if isinstance(f, Zero):
        return lambda u, s: torch.zeros_like(u)
    if isinstance(f, Scaled):
        inner = conjugate_prox_of(f.f)
        if inner is None:
            return None
        return lambda u, s: _w(f.alpha, u) * inner(u / _w(f.alpha, u), s / _w(f.alpha, u))
    return None


def check_moreau(f: ProxFunction, v: Tensor, tau,
                 conjugate_prox: Optional[ConjugateProx] = None) -> None:
    """Moreau decomposition ``v = prox_{τf}(v) + τ · prox_{f*/τ}(v / τ)``, with ``prox`` of
    ``f*`` given as ``conjugate_prox(u, s)`` (step ``s``) or taken from :func:`conjugate_prox_of`."""
    conj = conjugate_prox or conjugate_prox_of(f)
    if conj is None:
        raise AssertionError(f"no conjugate prox known for {type(f).__name__}; pass conjugate_prox")
    v64 = v.to(torch.float64)
    t = _col(tau, v64)
    total = f.prox(v, tau).to(torch.float64) + t * conj(v64 / t, 1.0 / t)
    _assert_close(total, v64, v.dtype, f"{f!r}: Moreau decomposition v = prox_τf(v) + "
                  "τ·prox_{f*/τ}(v/τ) fails")


# -- reductions and brute force -------------------------------------------------------------------
def check_same_operator(f: ProxFunction, g: ProxFunction, v: Tensor, tau, *,
                        factor: float = FACTOR) -> None:
    """``f`` and ``g`` agree at ``v``: same prox and same values at ``v`` and at ``prox(v)``."""
    p = f.prox(v, tau)
    _assert_close(g.prox(v, tau), p, v.dtype, f"prox of {f!r} and {g!r} differ", factor)
    for x, label in ((v, "v"), (p, "prox(v)")):
        _assert_close(g(x), f(x), v.dtype, f"values of {f!r} and {g!r} at {label} differ", factor)


def brute_force_prox(f: ProxFunction, v: Tensor, tau, *, lower=None, upper=None,
                     tol: float = 1e-14) -> Tensor:
    """``argmin_x f(x) + ||x − v||²/(2 tau)`` s.t. ``lower <= x <= upper`` by scipy's L-BFGS-B, one
    sample at a time, in float64 (``f`` must be differentiable by autograd within the bounds)."""
    from scipy.optimize import minimize

    b, out = v.shape[0], []
    t = _per_sample_tau(tau, b)

    def _bound(x, i, default):
        if x is None:
            return np.full(v[0].numel(), default)
        full = torch.as_tensor(x, dtype=torch.float64)
        full = _col(full, v.double()) if full.dim() == 1 and full.shape[0] == b else full
        return full.expand(v.shape)[i].reshape(-1).cpu().numpy()

    for i in range(b):
        fi = select_sample(f, i, b)
        vi = v[i:i + 1].detach().to(torch.float64).cpu()

        def fun(x):
            xt = torch.tensor(x, dtype=torch.float64).reshape(vi.shape).requires_grad_(True)
            val = fi(xt).sum() + ((xt - vi) ** 2).sum() / (2.0 * t[i].item())
            val.backward()
            return val.item(), xt.grad.reshape(-1).numpy()

        lo, hi = _bound(lower, i, -np.inf), _bound(upper, i, np.inf)
        x0 = np.clip(vi.reshape(-1).numpy(), lo, hi)
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                       options={"ftol": tol, "gtol": 1e-12, "maxiter": 10_000})
        out.append(torch.tensor(res.x).reshape(vi.shape))
    return torch.cat(out).to(device=v.device, dtype=v.dtype)


# -- everything ---------------------------------------------------------------------------------
def check_prox(f: ProxFunction, v: Tensor, tau, *, v2: Optional[Tensor] = None,
               conjugate_prox: Optional[ConjugateProx] = None, seed: int = 0) -> None:
    """Run every applicable check: purity, batch independence, optimality, firm
    non-expansiveness (against ``v2``, random if omitted), projection properties for
    indicators, and Moreau decomposition when a conjugate prox is given or known."""
    check_purity(f, v, tau)
    check_batch_independence(f, v, tau, seed=seed)
    check_optimality(f, v, tau, seed=seed)
    if v2 is None:
        v2 = v + _randn(v, _gen(seed + 1))
    check_firm_nonexpansive(f, v, v2, tau)
    if f.is_indicator:
        check_projection(f, v, tau, seed=seed)
    if conjugate_prox is not None or conjugate_prox_of(f) is not None:
        check_moreau(f, v, tau, conjugate_prox)
