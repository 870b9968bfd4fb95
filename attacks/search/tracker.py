"""The bookkeeping of one tracked ADMM solve, run by the solver at every iteration (its
callback): which samples stop, and every ``track_every`` iterations a check of the current
candidate — one forward pass on the rows the solver holds, the success test, the offer to the
best so far, and the update of ``c`` by the search's rule (:class:`attacks.search.base.FixedC`
or the lagrangian's multiplier)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from attacks.losses import is_adversarial, margin
from attacks.search.base import Best, FixedC
from attacks.targets import Targets
from attacks.verify import Evaluations


class Tracker:
    """The success tracker of one solve over the samples ``idx`` of the batch (``x0``, ``tg``).

    State, (n,) per sample of the solve: ``hit`` (succeeded at some check), ``checks`` (forward
    evaluations spent on checks) and ``broken`` (NaN/inf logits seen). Once the solver has
    compacted the batch (``ADMMSettings.compact_below``) it holds the rows ``info.rows`` of
    the solve only: the tracker reads and writes its (n,) bookkeeping at those rows, and the
    rows left behind, stopped, cost nothing more. ``candidate(state, rows)`` is the answer of
    the rows held and ``score(cand, rows)`` its rank by the spec's decision rule.
    """

    def __init__(self, model: Callable[[Tensor], Tensor], x0: Tensor, tg: Targets,
                 kappa: float, candidate: Callable, score: Callable, best: Best, rule: FixedC,
                 cap: Tensor, track_every: int, stop_after=None):
        self.model, self.x0, self.tg, self.kappa = model, x0, tg, kappa
        self.candidate, self.score, self.best, self.rule = candidate, score, best, rule
        self.track_every, self.stop_after = track_every, stop_after
        n, device = cap.shape[0], cap.device
        self.hit = torch.zeros(n, dtype=torch.bool, device=device)
        self.checks = torch.zeros(n, dtype=torch.long, device=device)
        self.broken = torch.zeros(n, dtype=torch.bool, device=device)
        # with stop_after: the iteration after which each sample, once it has succeeded, stops
        self.stop_at = torch.full((n,), stop_after or 0, dtype=torch.long, device=device)
        self.caps = set(cap.unique().tolist())  # each sample is checked at its last iteration

    def __call__(self, info) -> Optional[Tensor]:
        """The solver's callback: which of the rows ``info.rows`` (None: all) that
        ``info.state`` holds stop after iteration ``info.k`` (the solver stops each sample at
        its cap itself: the solve's ``caps``)."""
        k, state, rows = info.k, info.state, info.rows
        at = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))
        if k % self.track_every == 0 or k in self.caps:
            cand = self.candidate(state, rows)
            success, excess = self.check(cand, rows, state.active)
            iterations = self._iterations(state, rows)
            if self.stop_after is not None:  # max(stop_after, first success + the rule's grace)
                late = torch.clamp(iterations + self.rule.grace, min=self.stop_after)
                self.stop_at = torch.where(success & ~self.hit, late, self.stop_at)
            self.hit.logical_or_(success)
            self.offer(cand, rows, at(success))
            self.rule.update(excess, self.hit, self.checks, iterations)
        if self.stop_after is None:
            return None
        return at(self.hit) & (state.iterations >= at(self.stop_at))

    def offer(self, cand: Tensor, rows: Optional[Tensor], success: Tensor) -> None:
        """Offer the candidates of ``rows`` to the best so far."""
        if rows is None:
            self.best.offer(cand, success, self.score(cand, None), self.rule.c)
            return
        part = self.best.select(rows)
        part.offer(cand, success, self.score(cand, rows), self.rule.c.index_select(0, rows))
        self.best.put(rows, part)

    def _iterations(self, state, rows: Optional[Tensor]) -> Tensor:
        """The iterations of every sample of the solve, (n,): those the solver no longer holds
        as 0 (they stopped; the rule leaves rows with excess 0 unchanged)."""
        if rows is None:
            return state.iterations
        return torch.zeros_like(self.checks).index_copy_(0, rows, state.iterations)

    def check(self, cand: Tensor, rows: Optional[Tensor], running: Tensor):
        """(success, excess) per sample of the solve, (n,), for the candidates ``cand`` of the
        rows ``rows`` the solver holds: one forward evaluation per row held; ``excess`` =
        margin + κ. Only the rows still ``running`` (this iteration's active ones) count: the
        others, rows not held and broken rows get no success and excess 0 (no ``c`` moves)."""
        x, tg = self.x0, self.tg
        if rows is not None:
            x, tg = x.index_select(0, rows), tg.select(rows)
        with torch.no_grad():
            logits = self.model(x + cand)
        ok = is_adversarial(logits, tg.labels, tg.targets, tg.targeted, self.kappa) & running
        g = margin(logits, tg.labels, tg.targets, tg.targeted) + self.kappa
        bad = ~torch.isfinite(logits).all(dim=1) & running
        g = torch.where(running & ~bad, g, torch.zeros_like(g))
        if rows is None:
            self.checks.add_(1)
            self.broken.logical_or_(bad)
            return ok, g
        self.checks.index_add_(0, rows, torch.ones_like(rows))
        self.broken.index_copy_(0, rows, self.broken.index_select(0, rows) | bad)
        return (torch.zeros_like(self.hit).index_copy_(0, rows, ok),
                torch.zeros_like(self.rule.c).index_copy_(0, rows, g))

    def count(self, evals: Evaluations, idx: Tensor, iterations: Tensor) -> None:
        """Hand the solve's costs to ``evals``: ``iterations`` gradient evaluations, the checks'
        forward evaluations, and the samples whose logits were not finite."""
        evals.add_gradients(idx, iterations)
        evals.add_forwards(idx, self.checks)
        evals.flag_nonfinite(idx, self.broken)
