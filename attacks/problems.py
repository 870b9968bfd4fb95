"""From an :class:`AttackSpec` to admmkit problems: the structured attack (eq. 4 / 16) and the
refined, fixed-support attack (eq. 20)."""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
from torch import Tensor

from admmkit.problem import Block, Identity, Problem
from admmkit.prox import Constrained, FixedSupport, ProxFunction, Zero
from admmkit.smooth import Smooth
from attacks.losses import lagrangian_margin_loss, margin, margin_loss
from attacks.spec import AttackSpec
from attacks.targets import Targets


class LiveRows:
    """The rows of one solve's batch that are still being solved: the model runs on these
    only, so a sample that has stopped (budget spent, search done) costs no evaluation while
    the others go on. ``rows`` is None for all rows; :meth:`keep` sets it from a (B,) mask
    (one host sync, done only where the set of running samples can change). One writer: the
    solve's tracker (:class:`attacks.search.tracker.Tracker`) calls :meth:`keep`; the loss term
    (:func:`loss_term`) and the tracker's check read it."""

    def __init__(self, x0: Tensor, tg: Targets):
        self.x0, self.tg = x0, tg
        self.rows: Optional[Tensor] = None
        self.x_rows, self.tg_rows = x0, tg

    def keep(self, running: Tensor) -> None:
        self.rows = running.nonzero().squeeze(1)
        self.x_rows, self.tg_rows = self.x0.index_select(0, self.rows), self.tg.select(self.rows)


def loss_term(model: Callable[[Tensor], Tensor], live: LiveRows, c: Tensor, kappa: float,
              mu: Optional[Tensor] = None,
              project: Optional[Callable[[Tensor], Tensor]] = None) -> Smooth:
    """``f(z) = c · max(margin(Z(x0 + z)), −κ)`` per sample (eq. 3), or with ``mu`` (B,) its
    augmented Lagrangian with multiplier ``c`` (:func:`attacks.losses.lagrangian_margin_loss`),
    evaluated on the live rows; the other rows get f = 0 and ∇f = 0 (the solver keeps them
    frozen). ``c`` (B,) is read at every call, so an attack may change it between iterations.

    ``project`` (the projection onto the valid set): the model is evaluated at
    ``x0 + project(z)`` — f ∘ P equals f wherever the constraint holds, so the problem is the
    same, but the model never sees an invalid image and no gradient pushes a coordinate
    further outside its box.

    Its ``aux`` is the violation ``margin + κ`` per sample (0 on the other rows): where it is
    positive the loss is not flat (the indicators, :class:`attacks.indicators.SolveWatch`)."""
    def loss(logits, t, cc, mm):
        excess = margin(logits, t.labels, t.targets, t.targeted).detach() + kappa
        if mu is None:
            return margin_loss(logits, t.labels, t.targets, t.targeted, cc, kappa), excess
        return (lagrangian_margin_loss(logits, t.labels, t.targets, t.targeted, cc, mm, kappa),
                excess)

    def f(z: Tensor) -> Tensor:
        t = live.tg_rows
        if live.rows is None:
            return loss(model(live.x0 + (z if project is None else project(z))), t, c, mu)
        if live.rows.numel() == 0:  # nothing left to solve: no model call, a zero graph
            return z.flatten(1).sum(1) * 0
        zr = (z if project is None else project(z)).index_select(0, live.rows)
        rows = live.rows
        value, excess = loss(model(live.x_rows + zr), t, c.index_select(0, rows),
                             None if mu is None else mu.index_select(0, rows))
        return (z.new_zeros(z.shape[0]).index_copy(0, live.rows, value),
                excess.new_zeros(z.shape[0]).index_copy(0, live.rows, excess))
    return Smooth(f, name="margin" if mu is None else "margin-lagrangian")


def term_blocks(spec: AttackSpec, shape) -> List[Block]:
    """One block per term of the spec, group terms coupled through their sliding groups."""
    blocks = []
    for i, t in enumerate(spec.terms):
        coupling = Identity() if t.groups is None else t.groups.resolve(shape)
        copies = "local" if t.groups is None else t.groups.copies
        blocks.append(Block(t.function(), coupling, name=t.name or f"{t.kind}_{i}",
                            copies=copies))
    return blocks


def attack_problem(spec: AttackSpec, terms: List[Block], box: ProxFunction,
                   smooth: Smooth) -> Problem:
    """Problem (4)/(16): the spec's term ``blocks`` plus the validity constraint ``h``
    (``box``, :func:`attacks.spec.valid_box`) as block "valid"."""
    return Problem(list(terms) + [Block(box, name="valid")], smooth=smooth)


def refine_terms(spec: AttackSpec, terms: List[Block]) -> List[Block]:
    """The blocks the refine minimises on its fixed support: the pixel-wise distortion terms
    (regularizers and group terms are dropped, the support being fixed)."""
    return [b for b, t in zip(terms, spec.terms) if t.role == "distortion" and t.groups is None]


def refine_problem(spec: AttackSpec, terms: List[Block], box: ProxFunction, smooth: Smooth,
                   support: Tensor) -> Problem:
    """Problem (20): loss + distortion terms on a fixed support, with the validity constraint.

    With one pixel-wise distortion term D this is the paper's single block
    ``D + 1{valid} + 1{support}`` (prox = clip ∘ prox_D, eq. 21) and the z-step is restricted to
    the support (eq. 59). Regularizers (the group penalty) are dropped: the support is fixed.
    """
    keep = FixedSupport(support)
    distortions = refine_terms(spec, terms)
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
