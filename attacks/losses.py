"""The C&W margin loss (paper eq. 3), its augmented-Lagrangian form, and the success test.

Targeted (towards ``t``):      ``max( max_{j≠t} Z_j − Z_t , −κ )``
Untargeted (away from ``t0``): ``max( Z_{t0} − max_{j≠t0} Z_j , −κ )``

The attack is the constrained problem ``min D(δ)  s.t.  m(δ) + κ ≤ 0`` (``m`` the margin);
``c · max(m, −κ)`` is its exact penalty (the paper's loss) and :func:`lagrangian_margin_loss`
its augmented Lagrangian with multiplier ``λ`` (the role ``c`` plays) and penalty ``μ``.

:func:`linearised_boundary` is the margin linearised at x₀: the distance to the boundary and
the margin's slope, the lengths the scaled specs measure in. :func:`margin_gradient` (one
gradient evaluation) and :func:`fooled` (one forward evaluation) are what the grid repair, the
shrink to the boundary and the searches' one-off checks evaluate the model with.

"max over the other classes" masks the excluded class with ``−inf`` (multiplying by
``1 − onehot`` is wrong when logits are negative, a known bug in peer libraries).
"""

from __future__ import annotations

import math
from typing import Callable, Tuple

import torch
from torch import Tensor

from admmkit.smooth import gradient
from attacks.targets import Targets


def max_other(logits: Tensor, exclude: Tensor) -> Tensor:
    """``max_{j ≠ exclude} Z_j`` per sample, (B,)."""
    masked = logits.scatter(1, exclude.view(-1, 1), float("-inf"))
    return masked.amax(dim=1)


def margin(logits: Tensor, labels: Tensor, targets: Tensor, targeted: Tensor) -> Tensor:
    """How far the sample is from success, ``(B,)``: ≤ 0 exactly when the attack succeeds.

    ``targeted`` is a (B,) bool tensor; untargeted samples use ``labels`` as ``t0``.
    """
    cls = torch.where(targeted, targets, labels)
    z_cls = logits.gather(1, cls.view(-1, 1)).squeeze(1)
    other = max_other(logits, cls)
    return torch.where(targeted, other - z_cls, z_cls - other)


def margin_loss(logits: Tensor, labels: Tensor, targets: Tensor, targeted: Tensor,
                c: Tensor, kappa: float = 0.0) -> Tensor:
    """``c · max(margin, −κ)`` per sample (B,), the smooth term ``f`` of problem (2)."""
    return c * torch.clamp(margin(logits, labels, targets, targeted), min=-kappa)


def lagrangian_margin_loss(logits: Tensor, labels: Tensor, targets: Tensor, targeted: Tensor,
                           lam: Tensor, mu, kappa: float = 0.0) -> Tensor:
    """The augmented Lagrangian of the constraint ``g = m + κ ≤ 0`` per sample (B,)::

        ψ(g) = ( max(0, λ + μ·g)² − λ² ) / (2μ),      ∇ψ = max(0, λ + μ·g) · ∇m

    (Rockafellar's form for an inequality; Nocedal & Wright §17.4). Its slope is the
    multiplier ``λ`` corrected by ``μ`` times the violation: a constant pull of ``λ`` at the
    boundary instead of the hinge's all-or-nothing ``c``, and the method of multipliers
    ``λ ← max(0, λ + μ·g)`` (:class:`attacks.search.lagrangian.Multiplier`) drives ``λ`` to
    the constraint's multiplier, the smallest ``c`` for which the exact penalty gives the
    constrained optimum.
    ``lam`` (B,); ``mu`` a float or (B,).
    """
    g = margin(logits, labels, targets, targeted) + kappa
    return (torch.clamp(lam + mu * g, min=0) ** 2 - lam ** 2) / (2 * mu)


def is_adversarial(logits: Tensor, labels: Tensor, targets: Tensor, targeted: Tensor,
                   kappa: float = 0.0) -> Tensor:
    """Success per sample (B,) bool: the predicted class is the target (targeted) or not the
    label (untargeted), with a margin of at least ``κ``. Logits that are not all finite are
    never a success (argmax would pick a NaN's class: a broken model is not fooled)."""
    pred = logits.argmax(dim=1)
    hit = torch.where(targeted, pred == targets, pred != labels)
    hit = hit & torch.isfinite(logits).all(dim=1)
    if kappa > 0:
        hit = hit & (margin(logits, labels, targets, targeted) <= -kappa)
    return hit


def margin_gradient(model: Callable[[Tensor], Tensor], x: Tensor, tg: Targets
                    ) -> Tuple[Tensor, Tensor]:
    """``(margin(x), ∇ₓ margin(x))`` of ``model`` for ``tg``, (B,) and shaped like ``x``: one
    gradient evaluation; the gradient is zero where the model detaches its input."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        m = margin(model(x), tg.labels, tg.targets, tg.targeted)
        g = gradient(m, x)
    return m.detach(), g


def fooled(model: Callable[[Tensor], Tensor], x: Tensor, tg: Targets,
           kappa: float = 0.0) -> Tensor:
    """Whether ``model(x)`` is adversarial for ``tg`` with margin ``κ`` (:func:`is_adversarial`),
    (B,) bool: one forward evaluation, no gradient."""
    with torch.no_grad():
        return is_adversarial(model(x), tg.labels, tg.targets, tg.targeted, kappa)


def linearised_boundary(model: Callable[[Tensor], Tensor], x0: Tensor, tg: Targets,
                        kappa: float) -> Tuple[Tensor, Tensor]:
    """``(s, n)`` per example, (B,) each: ``n = ||∇ₓ margin(x₀)||₂`` and ``s = (margin(x₀) +
    κ)₊ / n``, the distance to the decision boundary of the model linearised at ``x₀``
    (DeepFool's first step) — the lengths that ``scale = "boundary"`` weighs a term and
    measures ``c`` by (:data:`attacks.spec_values.SCALES`). One gradient evaluation. ``s`` is 0
    and ``n`` NaN where they cannot be measured (a zero or non-finite gradient; the indicators
    report such a model)."""
    m, grad = margin_gradient(model, x0, tg)
    n = grad.flatten(1).norm(dim=1)
    n = torch.where(torch.isfinite(n) & (n > 0), n, torch.full_like(n, math.nan))
    s = torch.nan_to_num((m + kappa).clamp_min(0) / n, nan=0.0, posinf=0.0)
    return s, n
