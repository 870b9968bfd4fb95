"""Adversarial examples that stay adversarial as ordinary 8-bit images.

An attack that stops at the decision boundary can lose its effect when ``x0 + δ`` is rounded
to multiples of 1/L (L = 255). :func:`snap_to_grid` works in integer grid steps
``k = L·(x − x0)`` on the support ``S = {δ ≠ 0}``:

1. **Round**: ``k = round(L·clip(x0 + δ)) − L·x0`` on ``S``, 0 elsewhere, clipped to the box
   ``[0, 1]`` and the ℓ∞ ball ``|k| ≤ ⌊L·ε⌋``. Nearest rounding is the closest grid point.
2. **Check** the successes of the attack with a fresh forward pass.
3. **Repair** the samples that rounding broke, in rounds ``r = 0 … rounds−1``: one gradient of
   the margin ``m`` (:func:`attacks.losses.margin`, ≤ 0 on success) at the current grid
   point, then one step ``−sign(∂m/∂x_i)`` on the fewest entries of ``S``, largest
   ``|∂m/∂x_i|`` first, whose first-order decrease ``Σ |∂m/∂x_i| / L`` covers
   ``m · growth^r`` (:func:`greedy_move`); then check again. Few entries move, so the step
   stays where the first-order model holds; ``growth`` asks for more when a round fell short.

Entries outside ``S`` never move (ℓ0 and the group structure never grow), the box and ε hold
at every step, and a sample still failing after the last round is reported failed, never as
a success. Cost: one forward evaluation per success for the check, then one gradient and one
forward evaluation per repair round of each sample still failing.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import attrs
import torch
from torch import Tensor

from admmkit import batch_where
from attacks.losses import fooled, margin_gradient

LEVELS = 255


@attrs.define
class GridOutcome:
    """Grid-valued images (the clean image where none succeeds), their re-verified success
    mask and the evaluations the snap spent, per sample: (B, ...), (B,), (B,), (B,)."""

    adversarial: Tensor
    success: Tensor
    gradient_evals: Tensor
    forward_evals: Tensor


def on_grid(x: Tensor, levels: int = LEVELS) -> bool:
    """Whether every entry of ``x`` is a multiple of ``1/levels`` (to float precision)."""
    q = x * levels
    return bool(((q - q.round()).abs() <= 1e-4).all())


def step_bounds(x0: Tensor, eps: Optional[float] = None, levels: int = LEVELS):
    """Per-entry range ``[lo, hi]`` of grid steps ``k`` that keeps ``x0 + k/levels`` in
    [0, 1] and, with ``eps``, in the ℓ∞ ball (``|k| ≤ ⌊levels·ε⌋``)."""
    q0 = (x0 * levels).round()
    lo, hi = -q0, levels - q0
    if eps is not None:
        kmax = math.floor(levels * eps + 1e-6)
        lo, hi = lo.clamp(min=-kmax), hi.clamp(max=kmax)
    return lo, hi


def nearest_steps(x0: Tensor, delta: Tensor, eps: Optional[float] = None,
                  levels: int = LEVELS) -> Tensor:
    """Grid steps of the nearest grid point to ``clip(x0 + δ, 0, 1)`` inside the bounds, 0
    wherever ``δ = 0``."""
    lo, hi = step_bounds(x0, eps, levels)
    k = ((x0 + delta).clamp(0, 1) * levels).round() - (x0 * levels).round()
    return torch.where(delta != 0, torch.minimum(torch.maximum(k, lo), hi), torch.zeros_like(k))


def grid_image(x0: Tensor, k: Tensor, levels: int = LEVELS) -> Tensor:
    """``x0 + k/levels`` as the exact values an 8-bit file stores, ``(L·x0 + k)/L``; exactly
    ``x0`` where ``k = 0``."""
    return torch.where(k != 0, ((x0 * levels).round() + k) / levels, x0)


def round_to_grid(x0: Tensor, delta: Tensor, eps: Optional[float] = None,
                  levels: int = LEVELS) -> Tensor:
    """``x0 + δ`` rounded onto the grid where ``δ ≠ 0`` (within [0, 1] and, with ``eps``,
    the ℓ∞ ball); exactly ``x0`` where ``δ = 0``."""
    return grid_image(x0, nearest_steps(x0, delta, eps, levels), levels)


def greedy_move(grad: Tensor, k: Tensor, movable: Tensor, lo: Tensor, hi: Tensor,
                need: Tensor, levels: int = LEVELS) -> Tensor:
    """One grid step per chosen entry, in {−1, 0, 1}, shaped like ``k``.

    Entry ``i`` may move by ``s_i = −sign(g_i)`` if it is ``movable`` and ``k_i + s_i`` stays in
    ``[lo_i, hi_i]``; its first-order margin decrease is ``|g_i|/levels``. Per sample, the
    entries are taken largest decrease first until their sum reaches ``need`` (B,), the one
    that crosses it included (at least one entry when ``need ≤ 0``)."""
    s = -torch.sign(grad)
    can = movable & (s != 0) & (k + s >= lo) & (k + s <= hi)
    gain = torch.where(can, grad.abs() / levels, torch.zeros_like(grad)).flatten(1)
    ranked, order = gain.sort(dim=1, descending=True)
    before = ranked.cumsum(1) - ranked
    pick = (ranked > 0) & (before <= need.clamp(min=0).unsqueeze(1))
    take = torch.zeros_like(pick).scatter(1, order, pick).view_as(k)
    return s * take


def snap_to_grid(model: Callable[[Tensor], Tensor], x0: Tensor, delta: Tensor, success: Tensor,
                 tg, eps: Optional[float] = None, rounds: int = 10, growth: float = 1.5,
                 levels: int = LEVELS, max_repairs: Optional[Tensor] = None) -> GridOutcome:
    """Grid-valued adversarial images for the successes ``success`` (B,) of ``x0 + δ``:
    rounded, re-verified, repaired on the support of δ or flagged failed (module docstring).
    ``tg`` holds the (B,) ``labels``, ``targets`` and ``targeted`` of the attack.
    ``max_repairs`` (B,): the most repair rounds (gradient evaluations) each sample may spend
    (an attack's remaining budget); a sample out of budget and still failing is failed."""
    if not on_grid(x0, levels):
        raise ValueError(f"grid output needs clean images on the 8-bit grid (multiples of "
                         f"1/{levels}); these are not — load 8-bit images or turn grid output off")
    if not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative integer; got {rounds!r}")
    if not growth >= 1:
        raise ValueError(f"growth must be at least 1; got {growth!r}")
    k = nearest_steps(x0, delta, eps, levels)
    lo, hi = step_bounds(x0, eps, levels)
    movable = delta != 0
    grads = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
    fwd = torch.zeros_like(grads)
    ok = torch.zeros_like(success)
    pending = success.clone()
    for r in range(rounds + 1):  # round 0 checks the rounding, each later one repairs
        if r and max_repairs is not None:  # a repair round costs one gradient evaluation
            pending = pending & (grads < max_repairs)
        idx = pending.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        x, ki, t = x0.index_select(0, idx), k.index_select(0, idx), tg.select(idx)
        if r:
            m, g = margin_gradient(model, grid_image(x, ki, levels), t)
            ki = ki + greedy_move(g, ki, movable.index_select(0, idx), lo.index_select(0, idx),
                                  hi.index_select(0, idx), m * growth ** (r - 1), levels)
            grads.index_add_(0, idx, torch.ones_like(idx))
        hit = fooled(model, grid_image(x, ki, levels), t)
        fwd.index_add_(0, idx, torch.ones_like(idx))
        k.index_copy_(0, idx, ki)
        ok.index_copy_(0, idx, hit)
        pending.index_copy_(0, idx, ~hit)
    adv = batch_where(ok, grid_image(x0, k, levels), x0)
    return GridOutcome(adversarial=adv, success=ok, gradient_evals=grads, forward_evals=fwd)
