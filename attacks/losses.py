"""The C&W margin loss (paper eq. 3), its augmented-Lagrangian form, and the success test.

Targeted (towards ``t``):      ``max( max_{j≠t} Z_j − Z_t , −κ )``
Untargeted (away from ``t0``): ``max( Z_{t0} − max_{j≠t0} Z_j , −κ )``

The attack is the constrained problem ``min D(δ)  s.t.  m(δ) + κ ≤ 0`` (``m`` the margin);
``c · max(m, −κ)`` is its exact penalty (the paper's loss) and :func:`lagrangian_margin_loss`
its augmented Lagrangian with multiplier ``λ`` (the role ``c`` plays) and penalty ``μ``.

"max over the other classes" masks the excluded class with ``−inf`` (multiplying by
``1 − onehot`` is wrong when logits are negative, a known bug in peer libraries).
"""

from __future__ import annotations

import torch
from torch import Tensor


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
