"""From an :class:`AttackSpec` to admmkit problems: the structured attack (eq. 4 / 16) and the
refined, fixed-support attack (eq. 20)."""

from __future__ import annotations

from typing import Callable, List, Optional

import attrs
import torch
from torch import Tensor

from admmkit.problem import Block, Identity, Problem
from admmkit.prox import Constrained, FixedSupport, ProxFunction, Scaled, Zero
from admmkit.smooth import Smooth
from attacks.losses import lagrangian_margin_loss, margin, margin_loss
from attacks.spec import AttackSpec
from attacks.targets import Targets


#: which rows of a solve's batch a tensor holds (a long tensor), or None for all of them
Rows = Optional[Tensor]
#: the projection onto the valid set of the given rows of a solve's batch
Projection = Callable[[Tensor, Rows], Tensor]


def projection(box: ProxFunction, batch: int) -> Projection:
    """``(v, rows) ↦ prox_box(v)`` with the per-sample bounds of ``rows`` of the ``batch``
    (the solver continues on a compacted sub-batch: ``ADMMSettings.compact_below``)."""
    return lambda v, rows: (box if rows is None else box.select(rows, batch)).prox(v, 1.0)


def loss_term(model: Callable[[Tensor], Tensor], x0: Tensor, tg: Targets, c: Tensor,
              kappa: float, mu: Optional[Tensor] = None,
              project: Optional[Projection] = None) -> Smooth:
    """``f(z) = c · max(margin(Z(x0 + z)), −κ)`` per sample (eq. 3), or with ``mu`` (B,) its
    augmented Lagrangian with multiplier ``c`` (:func:`attacks.losses.lagrangian_margin_loss`).
    ``c`` (B,) is read at every call, so an attack may change it between iterations.

    Indexed (``Smooth(fn, indexed=True)``): on the rows ``rows`` of the batch that the solver
    still holds, with their ``x0``, targets, ``c`` and ``mu``, so the model runs on those rows
    only once the solver has compacted the batch.

    ``project`` (the projection onto the valid set, :func:`projection`): the model is
    evaluated at ``x0 + project(z)`` — f ∘ P equals f wherever the constraint holds, so the
    problem is the same, but the model never sees an invalid image and no gradient pushes a
    coordinate further outside its box.

    Its ``aux`` is the violation ``margin + κ`` of the rows: where it is positive the loss is
    not flat (the indicators, :class:`attacks.indicators.SolveWatch`)."""
    def f(z: Tensor, rows: Rows):
        x, t, cc, mm = x0, tg, c, mu
        if rows is not None:
            x, t, cc = x0.index_select(0, rows), tg.select(rows), c.index_select(0, rows)
            mm = None if mu is None else mu.index_select(0, rows)
        logits = model(x + (z if project is None else project(z, rows)))
        excess = margin(logits, t.labels, t.targets, t.targeted).detach() + kappa
        if mm is None:
            return margin_loss(logits, t.labels, t.targets, t.targeted, cc, kappa), excess
        return (lagrangian_margin_loss(logits, t.labels, t.targets, t.targeted, cc, mm, kappa),
                excess)
    return Smooth(f, name="margin" if mu is None else "margin-lagrangian", indexed=True)


def term_blocks(spec: AttackSpec, shape) -> List[Block]:
    """One block per term of the spec, group terms coupled through their sliding groups."""
    blocks = []
    for i, t in enumerate(spec.terms):
        coupling = Identity() if t.groups is None else t.groups.resolve(shape)
        copies = "local" if t.groups is None else t.groups.copies
        blocks.append(Block(t.function(), coupling, name=t.name or f"{t.kind}_{i}",
                            copies=copies))
    return blocks


def scaled_blocks(spec: AttackSpec, terms: List[Block], s: Tensor) -> List[Block]:
    """The term ``blocks`` for examples at distances ``s`` (B,) from the boundary
    (:func:`attacks.losses.linearised_boundary`): a term with ``scale = "boundary"`` weighted
    by s^(2 − degree) per example (``Scaled``; a tiny positive floor where that is 0), the
    others as they are."""
    tiny = torch.finfo(s.dtype).tiny
    return [b if t.scale == "none"
            else attrs.evolve(b, fn=Scaled(b.fn, t.weight_factor(s).clamp_min(tiny)))
            for b, t in zip(terms, spec.terms)]


def at_rows(blocks: List[Block], rows: Rows, batch: int) -> List[Block]:
    """The ``blocks`` of a batch of ``batch`` examples for its rows ``rows`` (None: all)."""
    return list(blocks) if rows is None else [b.select(rows, batch) for b in blocks]


def attack_problem(spec: AttackSpec, terms: List[Block], box: ProxFunction,
                   smooth: Smooth) -> Problem:
    """Problem (4)/(16): the spec's term ``blocks`` plus the validity constraint ``h``
    (``box``, :func:`attacks.spec.valid_box`) as block "valid"."""
    return Problem(list(terms) + [Block(box, name="valid")], smooth=smooth)


def refine_terms(spec: AttackSpec, terms: List[Block], kept: bool = True) -> List[Block]:
    """The blocks the refine minimises on its fixed support: the pixel-wise distortion terms
    (regularizers and group terms are dropped, the support being fixed); with ``kept`` False
    the blocks it drops."""
    return [b for b, t in zip(terms, spec.terms)
            if (t.role == "distortion" and t.groups is None) == kept]


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


def candidate(problem: Problem, state, out: Optional[int], project: Projection,
              rows: Rows = None) -> Tensor:
    """The attack's current answer for the rows ``rows`` the solver's ``state`` holds: the mean
    copy of the output block (the sparse one, so its zeros are kept), projected onto the valid
    set (projection keeps zeros)."""
    v = state.z if out is None else problem.blocks[out].mean_copy(state.xs[out])
    return project(v, rows)


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
