"""The lagrangian search (the default, ``[search.lagrangian]``): one solve of the augmented
Lagrangian of the constraint ``margin + κ ≤ 0``; ``c`` is each sample's multiplier, updated at
every check by the method of multipliers ``c ← max(0, c + μ·(margin + κ))``. Samples that
succeeded stop after ``search.iterations``, or ``grace`` iterations after their first success
if that came later (past the boundary, the multiplier goes back down and the distortion with
it); the others go on for up to ``rescue_iterations`` more, where a stalled violation grows
their penalty μ."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from attacks.search.base import Best, FixedC, Solves, Start, Strategy, register_strategy
from attacks.search_spec import LagrangianSearch
from attacks.targets import Targets
from attacks.verify import Evaluations

PENALTY_WINDOW = 5  # checks between the tests of progress of the penalty growth


class Multiplier(FixedC):
    """``c`` as the multiplier of ``margin + κ ≤ 0`` with the penalty ``mu``, both (B,) and
    updated in place at every check (the smooth term reads them:
    :func:`attacks.losses.lagrangian_margin_loss`).

    State: ``c``, ``mu`` (the penalty per sample, grown in the rescue and the refine where the
    violation stalls) and ``stalled_from`` (the violation at the start of the current window).
    """

    def __init__(self, c: Tensor, settings: LagrangianSearch, stop_after: Optional[int],
                 mu_unit: Optional[Tensor] = None):
        super().__init__(c)
        self.settings, self.stop_after = settings, stop_after
        self.grace = settings.grace  # the multiplier of a late success comes back down
        unit = torch.ones_like(c) if mu_unit is None else mu_unit.to(c.dtype)
        self.mu = settings.mu * unit  # per sample; search.scale gives the unit
        self.mu_max = self.mu * settings.mu_growth_limit  # how far the penalty may grow
        self.stalled_from = torch.full_like(c, math.inf)

    def update(self, excess: Tensor, hit: Tensor, checks: Tensor, iterations: Tensor) -> None:
        """The method of multipliers (rows not evaluated: excess 0), then the penalty growth."""
        s, c, mu = self.settings, self.c, self.mu
        c.copy_(torch.clamp(c + mu * excess, min=0))
        # not adversarial yet, in the rescue (after stop_after) or the refine: every
        # PENALTY_WINDOW checks a violation that did not shrink by half grows μ (Bertsekas'
        # rule; μ adapts to the model's scale of logits)
        window = (checks % PENALTY_WINDOW == 0) & (excess > 0) & ~hit
        if self.stop_after is not None:
            window = window & (iterations > self.stop_after)
        slow = window & (excess > 0.5 * self.stalled_from)
        grown = torch.minimum(mu * s.mu_growth, self.mu_max)
        mu.copy_(torch.where(slow, grown, mu))  # larger: unstable steps
        self.stalled_from.copy_(torch.where(window, excess, self.stalled_from))


@register_strategy
class Lagrangian(Strategy):
    """One solve with ``c`` the multiplier; samples without success go on into the rescue."""

    name = LagrangianSearch.name

    def rule(self, c: Tensor, stop_after: Optional[int],
             mu_unit: Optional[Tensor] = None) -> Multiplier:
        return Multiplier(c, self.settings, stop_after, mu_unit)

    def run(self, engine: Solves, x0: Tensor, tg: Targets, evals: Evaluations,
            limit: int, start: Start) -> Best:
        s, best = self.search, start.best
        cap = torch.clamp(evals.left(until=limit), max=s.iterations + s.rescue_iterations)
        idx = (cap > 0).nonzero().squeeze(1)
        if idx.numel():
            part = best.select(idx)
            engine.solve(idx, x0, tg, engine.c0(x0).index_select(0, idx), part,
                         start.z0.index_select(0, idx), cap.index_select(0, idx), evals,
                         stop_after=s.iterations)
            best.put(idx, part)
        return best

    def refine_c(self, part: Best, support: Tensor, refined: list, dropped: list) -> Tensor:
        """The refine's starting ``c``: the search's, rescaled to the refine problem by KKT.
        Where the search stopped, c·∇m ≈ −g (g a subgradient of all its terms); the refine
        keeps only the terms r, so its multiplier is c·⟨g_r, g⟩/‖g‖² on the support (least
        squares) — without the dropped group term, far below c for a spread-out δ (a start at
        the search's c overshoots the boundary and the refine spends its iterations coming
        back). No model evaluation: ∇m's direction is the search's own −g."""
        if not refined:
            return part.c.clone()

        def sub(blocks):
            return (sum(b.subgradient(part.delta) for b in blocks) * support).flatten(1)
        g_r = sub(refined)
        g = g_r + sub(dropped)
        dot, norm2 = (g_r * g).sum(1), (g * g).sum(1)
        ok = (dot > 0) & (norm2 > 0)  # else (nothing to go by) the search's c
        ratio = dot / norm2.clamp(min=torch.finfo(norm2.dtype).tiny)
        return part.c * torch.where(ok, ratio.clamp(max=1.0), 1.0)
