"""The last step of a minimum-distortion attack: the shortest perturbation along its own ray.

A search stops near the decision boundary, rarely on it. For each success δ,
:func:`shrink_to_boundary` bisects on the scale α ∈ (0, 1] for the smallest one at which
``x0 + αδ`` is still adversarial (margin + κ ≤ 0), ``steps`` forward evaluations per success
and no gradient:

    lo, hi = 0, 1;  repeat: α = (lo + hi)/2;  hi = α if x0 + αδ is adversarial else lo = α

and keeps ``hi·δ``. Every ℓp norm and group norm of δ shrinks by the factor α, the support
never grows, and the box and an ℓ∞ bound still hold (x0 and x0 + δ both satisfy them). On the
8-bit grid each candidate is ``x0 + αδ`` rounded to the grid (:func:`attacks.grid.round_to_grid`):
δ is a whole number of grid steps per entry, so rounding αδ never makes an entry larger.
Each kept candidate is the point a forward pass found adversarial, so nothing is claimed that
was not checked.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from attacks.grid import round_to_grid
from attacks.losses import fooled


def shrink_to_boundary(model, x0: Tensor, adversarial: Tensor, success: Tensor, tg, steps: int,
                       *, kappa: float = 0.0, grid: bool = False, eps: Optional[float] = None
                       ) -> Tuple[Tensor, Tensor]:
    """The adversarial images ``adversarial`` of the successes ``success`` (B,) moved to the
    boundary along δ = adversarial − x0 (module docstring): returns the images (unchanged
    where nothing shorter was adversarial and where the sample failed) and the forward
    evaluations spent per sample, (B,) long. ``tg`` holds the (B,) ``labels``, ``targets``
    and ``targeted``; ``grid``: candidates on the 8-bit grid (``eps``: its ℓ∞ bound)."""
    spent = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
    idx = success.nonzero().squeeze(1)
    if steps <= 0 or idx.numel() == 0:
        return adversarial, spent
    x, adv, t = x0.index_select(0, idx), adversarial.index_select(0, idx), tg.select(idx)
    d = adv - x
    ray = (-1,) + (1,) * (d.dim() - 1)

    def point(alpha: Tensor) -> Tensor:
        step = alpha.view(ray) * d
        return round_to_grid(x, step, eps) if grid else (x + step).clamp(0, 1)

    lo, hi = torch.zeros_like(idx, dtype=d.dtype), torch.ones_like(idx, dtype=d.dtype)
    for _ in range(steps):
        alpha = (lo + hi) / 2
        hit = fooled(model, point(alpha), t, kappa)
        hi, lo = torch.where(hit, alpha, hi), torch.where(hit, lo, alpha)
    shorter = torch.where((hi < 1).view(ray), point(hi), adv)
    spent.index_fill_(0, idx, steps)
    return adversarial.index_copy(0, idx, shorter), spent
