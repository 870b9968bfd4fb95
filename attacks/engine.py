"""The attack engine: per-sample search over ``c`` around the ADMM solver, the refine stage,
honest verification, and a hard per-example budget of gradient evaluations. Shared by every
ADMM attack; no attack writes its own loop.

The search over ``c`` is a strategy picked by ``spec.search.mode`` (:mod:`attacks.search`):
the lagrangian search (the default, :mod:`attacks.search.lagrangian`) and the paper's binary
search (:mod:`attacks.search.binary`); the engine runs their solves (:meth:`Engine.solve`, with
the per-check bookkeeping of :class:`attacks.search.tracker.Tracker`).

With ``search.start = "pgd"`` (the default of ε-bounded specs) the search starts from a PGD
example (:meth:`Engine.start`): the attack succeeds wherever that PGD does, and the structured
solve sparsifies what PGD found.

The refine stage re-solves on the support of each success with the same handling of ``c``
and keeps its answer where it is adversarial with a lower distortion. The finish verifies,
snaps to the 8-bit grid and, with ``search.shrink_steps``, moves each success to the boundary
along its own ray (:mod:`attacks.shrink`).

Only the samples still solving are evaluated: index_select between solves, and inside one the
solver's batch compaction (``ADMMSettings.compact_below``, ``solver.compact_below`` of the
spec): at a check where few rows are still running, the model and the solver go on with those
alone, so finished samples cost nothing. The best
successful candidate is tracked every ``track_every`` iterations by the spec's decision rule.
Every gradient evaluation is counted in :class:`Evaluations` and no stage spends beyond
``search.budget`` (module :mod:`attacks.verify`).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
from torch import Tensor

from admmkit import batch_where
from admmkit.solver import LinearizedADMM
from attacks.base import GRID_ROUNDS, failed_nan, settle
from attacks.indicators import SolveWatch
from attacks.losses import fooled, linearised_boundary
from attacks.pgd import pgd, random_start
from attacks.problems import (at_rows, attack_problem, candidate, loss_term, projection,
                              refine_problem, refine_terms, scaled_blocks, support_mask,
                              term_blocks)
from attacks.search import binary, lagrangian  # noqa: F401  (the built-in strategies register)
from attacks.search.base import Best, Start, strategy_for
from attacks.search.tracker import Tracker
from attacks.spec import AttackSpec, default_c, valid_box
from attacks.targets import Targets
from attacks.verify import Evaluations, Outcome, verify

__all__ = ["Best", "Engine", "Evaluations", "Outcome", "Targets", "decision_score", "verify"]



def objective_score(terms, delta: Tensor) -> Tensor:
    """The sum of the ``terms`` (blocks) at δ, (B,); ℓ2 of δ when there are none."""
    if not terms:
        return delta.flatten(1).norm(dim=1)
    return sum(b.fn(b.coupling.gather(delta)) for b in terms)


def decision_score(spec: AttackSpec, terms, delta: Tensor) -> Tensor:
    """The spec's ranking of successful candidates, (B,): the sum of its distortion and
    regularizer ``terms`` (blocks) at δ (default), or an ℓp norm of δ."""
    flat = delta.flatten(1)
    if spec.decision == "objective":
        return objective_score(terms, delta)
    if spec.decision == "l0":
        return (flat.abs() > 1e-7).sum(1).to(delta.dtype)
    return flat.norm(p={"l1": 1, "l2": 2, "linf": math.inf}[spec.decision], dim=1)


class Engine:
    """The attack of one spec on a model; :meth:`run` attacks one batch. Its ``terms`` are the
    spec's term blocks, built once; with a term of ``scale = "boundary"`` each batch runs on
    its own engine (:meth:`for_batch`) whose blocks carry the batch's per-example weights."""

    def __init__(self, model: Callable[[Tensor], Tensor], spec: AttackSpec, shape,
                 grid: bool = False, seed: int = 0):
        self.model = model
        self.spec = spec
        self.seed = seed  # the random start of search.start = "pgd"
        self.grid = grid  # snap the final examples onto the 8-bit grid (attacks.grid)
        self.strategy = strategy_for(spec.search)  # the search over c
        self.terms = term_blocks(spec, tuple(shape))  # x0-independent: built once
        self.scaled = (spec.search.scale != "none"
                       or any(t.scale != "none" for t in spec.terms))
        # with search.scale = "boundary": each example's multiplier scale c* and 2/n² (for_batch)
        self.c_unit: Optional[Tensor] = None
        self.mu_unit: Optional[Tensor] = None

    def for_batch(self, x0: Tensor, tg: Targets, evals: Evaluations) -> "Engine":
        """This engine for the batch ``x0``: itself, or where the spec scales by the boundary
        a copy that knows each example's linearised boundary
        (:func:`attacks.losses.linearised_boundary`, one gradient evaluation counted): its
        term blocks weighted per example (a term's ``scale``) and its multiplier's units
        (``search.scale``: c* = 2s/n, 1 where n cannot be measured)."""
        if not self.scaled:
            return self
        s, n = linearised_boundary(self.model, x0, tg, self.spec.loss.kappa)
        evals.add_gradients(None, 1)
        batch = copy.copy(self)
        batch.terms = scaled_blocks(self.spec, self.terms, s)
        if self.spec.search.scale == "boundary":
            measured = torch.isfinite(n)
            batch.c_unit = torch.where(measured, 2 * s / n, torch.ones_like(s))
            batch.mu_unit = torch.where(measured, 2 / n ** 2, torch.ones_like(s))
        return batch

    # -- how a budget is split ---------------------------------------------------------------
    def stage_limits(self):
        """Cumulative gradient evaluations per example after which the search (with its PGD
        start) and the refine stop: their planned iterations, shrunk in proportion when
        ``search.budget`` is below the whole plan (start + search + refine + grid repair).
        Each stage also gets what the earlier ones left unspent; the grid repair may spend up
        to the budget."""
        s = self.spec.search
        search = s.planned + (s.start_steps if s.starts_with_pgd(self.spec.eps) else 0) \
            + (1 if self.scaled else 0)  # the boundary distance (for_batch)
        refine = self.spec.refine.iterations if self.spec.refine is not None else 0
        plan = search + refine + (GRID_ROUNDS if self.grid else 0)
        if s.budget is None or s.budget >= plan:
            return search, search + refine
        return s.budget * search // plan, s.budget * (search + refine) // plan

    # -- one ADMM solve with success tracking --------------------------------------------
    def solve(self, idx: Tensor, x0: Tensor, tg: Targets, c: Tensor, best: Best, z0: Tensor,
              cap: Tensor, evals: Evaluations, support: Optional[Tensor] = None,
              stop_after: Optional[int] = None):
        """One ADMM solve for the samples ``idx`` — the attack problem, or with ``support`` the
        refine problem — of at most ``cap`` (per sample, (B_idx,) long) iterations, offering
        every tracked success to ``best`` (already restricted to ``idx``) and counting the
        evaluations in ``evals``. ``c`` follows the search's rule (the lagrangian search's
        multiplier is updated in place at every check). ``stop_after``: samples that have
        succeeded stop after this many iterations. Returns the solver's result and which
        samples succeeded at any check."""
        spec = self.spec
        x, t = x0.index_select(0, idx), tg.select(idx)
        terms, n = at_rows(self.terms, idx, x0.shape[0]), idx.shape[0]
        rule = self.strategy.rule(c, stop_after, None if self.mu_unit is None
                                  else self.mu_unit.index_select(0, idx))
        box = valid_box(x, spec.eps)  # validated once; the tracker projects with it
        project = projection(box, x.shape[0])
        smooth = loss_term(self.model, x, t, rule.c, spec.loss.kappa, rule.mu,
                           project if spec.loss.project else None)
        if support is None:
            problem, out = attack_problem(spec, terms, box, smooth), spec.output_term
            def score(cand, rows):  # the spec's decision rule
                return decision_score(spec, at_rows(terms, rows, n), cand)
        else:  # the block that carries the fixed support is the last one
            problem = refine_problem(spec, terms, box, smooth, support)
            refined, out = refine_terms(spec, terms), len(problem.blocks) - 1
            def score(cand, rows):  # what the refine minimises on its support
                return objective_score(at_rows(refined, rows, n), cand)
        tracker = Tracker(self.model, x, t, spec.loss.kappa,
                          lambda state, rows: candidate(problem, state, out, project, rows),
                          score, best, rule, cap, spec.search.track_every, stop_after)
        settings = spec.solver.settings(int(cap.max()))
        watch = SolveWatch(evals.evidence, idx)  # the indicators of failure (attacks.indicators)
        result = LinearizedADMM(settings).solve(problem, z0, callback=watch.around(tracker),
                                                caps=cap)
        tracker.count(evals, idx, result.iterations)
        watch.report(result, cap)
        return result, tracker.hit

    # -- where the search starts -------------------------------------------------------------
    def start(self, x0: Tensor, tg: Targets, evals: Evaluations) -> Start:
        """Where the search starts. ``search.start = "zero"`` (the default without ε): nothing
        found, δ = 0. ``"pgd"`` (the default with ε): ``start_steps`` steps of ℓ∞ PGD on the
        cross-entropy (step 2.5ε/start_steps) from a random start drawn from the engine's seed
        (:func:`attacks.pgd.pgd`, within the search's share of the budget); its adversarial
        iterate, or its last one if that is adversarial (one forward check), is offered to the
        best-so-far with the spec's score, so the attack succeeds wherever this PGD does; the
        search starts from PGD's δ."""
        s, eps = self.spec.search, self.spec.eps
        steps = 0
        if s.starts_with_pgd(eps):  # everyone has spent the same so far: one share for all
            steps = min(s.start_steps, int(evals.left(until=self.stage_limits()[0]).max()))
        start = Start.zero(x0)
        if steps == 0:
            return start
        run = pgd(self.model, x0, tg, eps, steps, 2.5 * eps / s.start_steps,
                  start=random_start(x0, eps, self.seed), evidence=evals.evidence)
        evals.add_gradients(torch.arange(x0.shape[0], device=x0.device), run.gradient_evals)
        success = run.found | fooled(self.model, x0 + run.delta, tg)
        evals.add_forwards(None, 1)
        start.best.offer(run.delta, success, decision_score(self.spec, self.terms, run.delta),
                         self.c0(x0))
        return Start(start.best, run.delta)

    # -- the search over c -----------------------------------------------------------------
    def search(self, x0: Tensor, tg: Targets, evals: Evaluations,
               start: Optional[Start] = None) -> Best:
        """The strategy's search from ``start`` (default: :meth:`Start.zero`), within the
        search's share of the budget."""
        start = Start.zero(x0) if start is None else start
        return self.strategy.run(self, x0, tg, evals, self.stage_limits()[0], start)

    def c0(self, x0: Tensor) -> Tensor:
        """The first ``c`` of each sample: ``loss.c``, else the dataset's default; with
        ``search.scale = "boundary"`` in units of the example's c* (absent: 0.5·c*)."""
        c0 = self.spec.loss.c or default_c(tuple(x0.shape[1:]), self.spec.search.scale)
        c0 = torch.full((x0.shape[0],), c0, dtype=x0.dtype, device=x0.device)
        return c0 if self.c_unit is None else c0 * self.c_unit.to(x0.dtype)

    # -- refine (Sec. 4.2) -------------------------------------------------------------------
    def refine(self, x0: Tensor, tg: Targets, best: Best, evals: Evaluations,
               from_search: bool = True) -> Tensor:
        """Re-solve on the support of each success (from its δ and, after this engine's search,
        its ``c`` as the strategy starts the refine (:meth:`refine_c`); with ``from_search``
        False, ``best.c`` as given); keep the refined answer where it succeeds with a lower
        distortion (the refine's terms at δ)."""
        spec = self.spec
        refined = torch.zeros_like(best.found)
        if spec.refine is None:
            return refined
        cap = torch.clamp(evals.left(until=self.stage_limits()[1]), max=spec.refine.iterations)
        idx = (best.found & (cap > 0)).nonzero().squeeze(1)
        if idx.numel() == 0:
            return refined
        part = best.select(idx)
        terms = at_rows(self.terms, idx, x0.shape[0])
        support = support_mask(part.delta, spec.refine.quantile)
        fresh = Best.empty(part.delta)
        c = self.refine_c(part, support, terms) if from_search else part.c.clone()
        self.solve(idx, x0, tg, c, fresh, part.delta * support,
                    cap.index_select(0, idx), evals, support=support)
        better = fresh.found & (fresh.score < objective_score(refine_terms(spec, terms),
                                                              part.delta))
        part.delta = batch_where(better, fresh.delta, part.delta)
        best.put(idx, part)
        refined.index_copy_(0, idx, better)
        return refined

    def refine_c(self, part: Best, support: Tensor, terms=None) -> Tensor:
        """The refine's starting ``c`` after this engine's search: the strategy's rule
        (:meth:`attacks.search.base.Strategy.refine_c`) with the refine's distortion terms and
        the group terms it drops; ``terms``: the blocks of ``part``'s rows (default: all)."""
        terms = self.terms if terms is None else terms
        return self.strategy.refine_c(part, support, refine_terms(self.spec, terms),
                                      refine_terms(self.spec, terms, kept=False))

    # -- everything, verified ----------------------------------------------------------------
    def finish(self, x0: Tensor, tg: Targets, best: Best, evals: Evaluations):
        """The attacks' one finish (:func:`attacks.base.settle`) on the best examples; returns
        (adversarial, success) with every evaluation counted in ``evals``."""
        return settle(self.model, x0, tg, best.delta, best.found, evals, grid=self.grid,
                      eps=self.spec.eps, shrink_steps=self.spec.search.shrink_steps,
                      kappa=self.spec.loss.kappa)

    def run(self, x0: Tensor, tg: Targets) -> Outcome:
        evals = Evaluations.zeros(x0.shape[0], x0.device, self.spec.search.budget)
        engine = self.for_batch(x0, tg, evals)
        best = engine.search(x0, tg, evals, engine.start(x0, tg, evals))
        refined = engine.refine(x0, tg, best, evals)
        adv, success = engine.finish(x0, tg, best, evals)
        return Outcome(adversarial=adv, success=success, c=failed_nan(best.c, success),
                       gradient_evals=evals.gradient, forward_evals=evals.forward,
                       refined=refined & success,
                       flags=evals.evidence.verdict(success))
