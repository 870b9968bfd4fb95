"""From an :class:`AttackSpec` to admmkit problems: the structured attack (eq. 4 / 16) and the
refined, fixed-support attack (eq. 20)."""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import Tensor

from admmkit.problem import Block, Identity, Problem
from admmkit.prox import Constrained, FixedSupport, Zero
from admmkit.smooth import Smooth
from attacks.losses import margin_loss
from attacks.spec import AttackSpec, valid_box


def loss_term(model: Callable[[Tensor], Tensor], x0: Tensor, labels: Tensor, targets: Tensor,
              targeted: Tensor, c: Tensor, kappa: float) -> Smooth:
    """``f(z) = c · max(margin(Z(x0 + z)), −κ)``; the logits ride along as ``aux``."""
    def f(z: Tensor):
        logits = model(x0 + z)
        return margin_loss(logits, labels, targets, targeted, c, kappa), logits
    return Smooth(f, name="margin")


def term_blocks(spec: AttackSpec, shape) -> List[Block]:
    """One block per term of the spec, group terms coupled through their sliding groups."""
    blocks = []
    for i, t in enumerate(spec.terms):
        coupling = Identity() if t.groups is None else t.groups.resolve(shape)
        copies = "local" if t.groups is None else t.groups.copies
        blocks.append(Block(t.function(), coupling, name=t.name or f"{t.kind}_{i}",
                            copies=copies))
    return blocks


def attack_problem(spec: AttackSpec, x0: Tensor, smooth: Smooth) -> Problem:
    """Problem (4)/(16): the spec's terms plus the validity constraint ``h`` as block "valid"."""
    blocks = term_blocks(spec, tuple(x0.shape[1:]))
    blocks.append(Block(valid_box(x0, spec.eps), name="valid"))
    return Problem(blocks, smooth=smooth)


def refine_problem(spec: AttackSpec, x0: Tensor, smooth: Smooth, support: Tensor) -> Problem:
    """Problem (20): loss + distortion terms on a fixed support, with the validity constraint.

    With one pixel-wise distortion term D this is the paper's single block
    ``D + 1{valid} + 1{support}`` (prox = clip ∘ prox_D, eq. 21) and the z-step is restricted to
    the support (eq. 59). Regularizers (the group penalty) are dropped: the support is fixed.
    """
    box = valid_box(x0, spec.eps)
    keep = FixedSupport(support)
    shape = tuple(x0.shape[1:])
    distortions = [b for b, t in zip(term_blocks(spec, shape), spec.terms)
                   if t.role == "distortion" and t.groups is None]
    if len(distortions) == 1:
        blocks = [Block(Constrained(distortions[0].fn, box, keep), name="refined")]
    else:
        blocks = distortions + [Block(Constrained(Zero(), box, keep), name="refined")]
    return Problem(blocks, smooth=smooth, support=support)


def candidate(problem: Problem, state, out: Optional[int], project) -> Tensor:
    """The attack's current answer: the mean copy of the output block (the sparse one, so its
    zeros are kept), projected onto the valid set (projection keeps zeros)."""
    v = state.z if out is None else problem.blocks[out].mean_copy(state.xs[out])
    return project(v)


def support_mask(delta: Tensor, quantile: float) -> Tensor:
    """Eq. (19), per sample: keep ``|δ_i| > σ``, σ the ``quantile`` of the sample's non-zero
    ``|δ|`` (lower interpolation). A sample with no non-zero entry keeps an empty support."""
    a = delta.abs().flatten(1)
    nonzero = a > 0
    count = nonzero.sum(1)
    ranked = torch.where(nonzero, a, torch.full_like(a, float("inf"))).sort(dim=1).values
    pos = ((count - 1).clamp(min=0).to(a.dtype) * quantile).floor().long()
    sigma = ranked.gather(1, pos.view(-1, 1))
    sigma = torch.where(count.view(-1, 1) > 0, sigma, torch.zeros_like(sigma))
    return (a > sigma).reshape(delta.shape)
