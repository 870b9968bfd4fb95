"""The bookkeeping of one tracked ADMM solve, run by the solver at every iteration (its
callback): which samples stop, and every ``track_every`` iterations a check of the current
candidate — one forward pass on the live rows, the success test, the offer to the best so far,
and the update of ``c`` by the search's rule (:class:`attacks.search.base.FixedC` or the
lagrangian's multiplier)."""

from __future__ import annotations

from typing import Callable, Set

import torch
from torch import Tensor

from attacks.losses import is_adversarial, margin
from attacks.problems import LiveRows
from attacks.search.base import Best, FixedC
from attacks.verify import Evaluations

#: iterations between updates of the running rows once ``stop_after`` has passed (the rescue)
RESCUE_SYNC = 50


class Tracker:
    """The success tracker of one solve over the samples ``idx`` of the batch.

    State, (n,) per sample of the solve: ``hit`` (succeeded at some check), ``checks`` (forward
    evaluations spent on checks) and ``broken`` (NaN/inf logits seen). It owns the solve's
    :class:`LiveRows`: it alone narrows them, at the iterations where the set of running
    samples may change (``ends``: the caps, and after ``stop_after`` every
    :data:`RESCUE_SYNC`); the loss term only reads them.
    """

    def __init__(self, model: Callable[[Tensor], Tensor], live: LiveRows, kappa: float,
                 candidate: Callable, score: Callable[[Tensor], Tensor], best: Best,
                 rule: FixedC, cap: Tensor, track_every: int, stop_after=None):
        self.model, self.live, self.kappa = model, live, kappa
        self.candidate, self.score, self.best, self.rule = candidate, score, best, rule
        self.cap, self.track_every, self.stop_after = cap, track_every, stop_after
        n, device = cap.shape[0], cap.device
        self.hit = torch.zeros(n, dtype=torch.bool, device=device)
        self.checks = torch.zeros(n, dtype=torch.long, device=device)
        self.broken = torch.zeros(n, dtype=torch.bool, device=device)
        self.ends: Set[int] = set(cap.unique().tolist())
        if stop_after:
            self.ends |= set(range(stop_after, int(cap.max()), RESCUE_SYNC))

    def __call__(self, info) -> Tensor:
        """The solver's callback: the samples to stop after iteration ``info.k``."""
        k, state = info.k, info.state
        stop = state.iterations >= self.cap  # the cap (and the budget) is honoured exactly
        if k % self.track_every == 0 or k in self.ends:
            cand = self.candidate(state)
            success, excess = self.check(cand)
            self.hit.logical_or_(success)
            self.best.offer(cand, success, self.score(cand), self.rule.c)
            self.rule.update(excess, self.hit, self.checks, state.iterations)
        if self.stop_after is not None:
            stop = stop | (self.hit & (state.iterations >= self.stop_after))
        if k in self.ends:
            self.live.keep(state.active & ~stop)  # the only points where samples stop
        return stop

    def check(self, cand: Tensor):
        """(success, excess) per sample for the candidate ``cand``: one forward evaluation per
        live row; ``excess`` = margin + κ, 0 on rows not evaluated and on broken rows (a
        broken row moves no ``c``)."""
        live = self.live
        success = torch.zeros_like(self.hit)
        excess = torch.zeros_like(self.rule.c)
        if live.rows is not None and not live.rows.numel():
            return success, excess
        rows = live.rows
        xr = live.x0 if rows is None else live.x_rows
        cr = cand if rows is None else cand.index_select(0, rows)
        with torch.no_grad():
            logits = self.model(xr + cr)
        tr = live.tg_rows
        ok = is_adversarial(logits, tr.labels, tr.targets, tr.targeted, self.kappa)
        g = margin(logits, tr.labels, tr.targets, tr.targeted) + self.kappa
        bad = ~torch.isfinite(logits).all(dim=1)
        g = torch.where(bad, torch.zeros_like(g), g)
        if rows is None:
            self.checks.add_(1)
            self.broken.logical_or_(bad)
            return ok, g
        success.index_copy_(0, rows, ok)
        excess.index_copy_(0, rows, g)
        self.checks.index_add_(0, rows, torch.ones_like(rows))
        self.broken.index_copy_(0, rows, self.broken.index_select(0, rows) | bad)
        return success, excess

    def count(self, evals: Evaluations, idx: Tensor, iterations: Tensor) -> None:
        """Hand the solve's costs to ``evals``: ``iterations`` gradient evaluations, the checks'
        forward evaluations, and the samples whose logits were not finite."""
        evals.add_gradients(idx, iterations)
        evals.add_forwards(idx, self.checks)
        evals.flag_nonfinite(idx, self.broken)
