"""Adversarial examples that stay adversarial as ordinary 8-bit images.

An attack that stops at the decision boundary can lose its effect when ``x0 + δ`` is rounded
to multiples of 1/255. :func:`snap_to_grid` rounds every perturbed entry onto the grid, keeps
the zeros of δ exactly zero (ℓ0 and the group structure never grow), re-verifies with a fresh
forward pass and repairs what rounding broke: per sample, it tries — in order of growing
distortion — nearest rounding, rounding away from ``x0``, and then slightly amplified
perturbations ``(1 + s)·δ`` rounded away from ``x0``, keeping the first that succeeds. A sample
that no candidate repairs is reported as failed, never as a success.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from admmkit.solver.state import batch_where
from attacks.losses import is_adversarial

LEVELS = 255
#: (rounding, amplification) candidates, tried in this order
REPAIRS = (("nearest", 1.0), ("away", 1.0), ("away", 1.02), ("away", 1.05), ("away", 1.1),
           ("away", 1.2), ("away", 1.5), ("away", 2.0))


def on_grid(x: Tensor, levels: int = LEVELS) -> bool:
    """Whether every entry of ``x`` is a multiple of ``1/levels`` (to float precision)."""
    q = x * levels
    return bool(((q - q.round()).abs() <= 1e-4).all())


def round_to_grid(x0: Tensor, delta: Tensor, rounding: str = "nearest", scale: float = 1.0,
                  eps: Optional[float] = None, levels: int = LEVELS) -> Tensor:
    """``x0 + scale·δ`` clipped to [0, 1] and rounded onto the grid where ``δ ≠ 0``; ``x0``
    (itself on the grid) where ``δ = 0``. ``rounding="away"`` rounds away from ``x0``. With
    ``eps`` the result stays in the ℓ∞ ball: at most ``floor(levels·ε)`` steps from ``x0``."""
    q = (x0 + scale * delta).clamp(0, 1) * levels
    if rounding == "nearest":
        q = q.round()
    else:
        q = torch.where(delta > 0, q.ceil(), q.floor())
    if eps is not None:
        q0 = (x0 * levels).round()
        k = math.floor(levels * eps + 1e-6)
        q = torch.minimum(torch.maximum(q, q0 - k), q0 + k)
    return torch.where(delta != 0, (q / levels).clamp(0, 1), x0)


def snap_to_grid(model: Callable[[Tensor], Tensor], x0: Tensor, delta: Tensor, success: Tensor,
                 tg, eps: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """Grid-valued adversarial images (the clean image where none succeeds) and their
    re-verified success mask, (B, ...) and (B,)."""
    if not on_grid(x0):
        raise ValueError("grid output needs clean images on the 8-bit grid (multiples of 1/255); "
                         "these are not — load 8-bit images or turn grid output off")
    out = x0.clone()
    done = torch.zeros_like(success)
    for rounding, scale in REPAIRS:
        adv = round_to_grid(x0, delta, rounding, scale, eps)
        with torch.no_grad():
            ok = success & ~done & is_adversarial(model(adv), tg.labels, tg.targets, tg.targeted)
        out = batch_where(ok, adv, out)
        done = done | ok
        if bool((done == success).all()):  # outside any inner loop: one check per candidate
            break
    return out, done
