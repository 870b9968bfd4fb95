"""The attack engine: per-sample search over ``c`` around the ADMM solver, the refine stage,
honest verification, and a hard per-example budget of gradient evaluations. Shared by every
ADMM attack; no attack writes its own loop.

Two searches (``spec.search.mode``):

* **lagrangian** (default): one solve of the augmented Lagrangian of the constraint
  ``margin + κ ≤ 0``; ``c`` is each sample's multiplier, updated at every check by the method
  of multipliers ``c ← max(0, c + μ·(margin + κ))``. Samples that succeeded stop after
  ``search.iterations``; the others go on for up to ``rescue_iterations`` more.
* **binary** (the paper's): per sample and fully batched, ``c`` grows by ``growth`` until a
  success bounds it, then is bisected, one restarted solve per step; a sample leaves the
  search once a step succeeds without improving its best distortion, and samples that never
  succeeded get one cold rescue solve.

With ``search.start = "pgd"`` (the default of ε-bounded specs) the search starts from a PGD
example (:meth:`Engine.start`): the attack succeeds wherever that PGD does, and the structured
solve sparsifies what PGD found.

The refine stage re-solves on the support of each success with the same handling of ``c``
and keeps its answer where it is adversarial with a lower distortion.

Only the samples still solving are evaluated (index_select between solves, :class:`LiveRows`
inside one), so finished samples cost nothing. The best successful candidate is tracked every
``track_every`` iterations by the spec's decision rule. Every gradient evaluation is counted in
:class:`Evaluations` and no stage spends beyond ``search.budget`` (module :mod:`attacks.verify`).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import attrs
import torch
from torch import Tensor

from admmkit.solver import LinearizedADMM
from admmkit.solver.state import batch_where
from attacks.grid import snap_to_grid
from attacks.losses import is_adversarial, margin
from attacks.pgd import pgd, random_start
from attacks.problems import (LiveRows, attack_problem, candidate, loss_term, refine_problem,
                              refine_terms, support_mask, term_blocks)
from attacks.spec import AttackSpec, default_c, valid_box
from attacks.targets import Targets
from attacks.verify import Evaluations, Outcome, verify

__all__ = ["Best", "Engine", "Evaluations", "Outcome", "Targets", "decision_score", "verify"]

GRID_ROUNDS = 10  # repair rounds of attacks.grid.snap_to_grid (one gradient evaluation each)
PENALTY_WINDOW = 5  # checks between the lagrangian search's tests of progress
RESCUE_SYNC = 50  # iterations between updates of the running rows in the rescue


@attrs.define
class Best:
    """Best-so-far per sample: candidate, its score (lower is better), success and its ``c``."""

    delta: Tensor
    score: Tensor
    found: Tensor
    c: Tensor

    @classmethod
    def empty(cls, like: Tensor) -> "Best":
        b = like.shape[0]
        return cls(delta=torch.zeros_like(like),
                   score=torch.full((b,), math.inf, dtype=like.dtype, device=like.device),
                   found=torch.zeros(b, dtype=torch.bool, device=like.device),
                   c=torch.zeros(b, dtype=like.dtype, device=like.device))

    def offer(self, delta: Tensor, success: Tensor, score: Tensor, c: Tensor) -> None:
        better = success & (score < self.score)
        self.delta = batch_where(better, delta, self.delta)
        self.score = torch.where(better, score, self.score)
        self.found = self.found | better
        self.c = torch.where(better, c, self.c)

    def select(self, idx: Tensor) -> "Best":
        return Best(*(t.index_select(0, idx) for t in attrs.astuple(self, recurse=False)))

    def put(self, idx: Tensor, part: "Best") -> None:
        for f in attrs.fields(Best):
            getattr(self, f.name).index_copy_(0, idx, getattr(part, f.name))


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
    def __init__(self, model: Callable[[Tensor], Tensor], spec: AttackSpec, shape,
                 grid: bool = False, seed: int = 0):
        self.model = model
        self.spec = spec
        self.seed = seed  # the random start of search.start = "pgd"
        self.grid = grid  # snap the final examples onto the 8-bit grid (attacks.grid)
        self.terms = term_blocks(spec, tuple(shape))  # x0-independent: built once
        self.refined_terms = refine_terms(spec, self.terms)
        self.dropped_terms = [b for b in self.terms  # by the refine: the group terms
                              if not any(b is r for r in self.refined_terms)]

    # -- how a budget is split ---------------------------------------------------------------
    def stage_limits(self):
        """Cumulative gradient evaluations per example after which the search (with its PGD
        start) and the refine stop: their planned iterations, shrunk in proportion when
        ``search.budget`` is below the whole plan (start + search + refine + grid repair).
        Each stage also gets what the earlier ones left unspent; the grid repair may spend up
        to the budget."""
        s = self.spec.search
        search = s.planned + (s.start_steps if s.starts_with_pgd(self.spec.eps) else 0)
        refine = self.spec.refine.iterations if self.spec.refine is not None else 0
        plan = search + refine + (GRID_ROUNDS if self.grid else 0)
        if s.budget is None or s.budget >= plan:
            return search, search + refine
        return s.budget * search // plan, s.budget * (search + refine) // plan

    # -- one ADMM solve with success tracking --------------------------------------------
    def _solve(self, idx: Tensor, x0: Tensor, tg: Targets, c: Tensor, best: Best, z0: Tensor,
               cap: Tensor, evals: Evaluations, support: Optional[Tensor] = None,
               stop_after: Optional[int] = None):
        """One ADMM solve for the samples ``idx`` — the attack problem, or with ``support`` the
        refine problem — of at most ``cap`` (per sample, (B_idx,) long) iterations, offering
        every tracked success to ``best`` (already restricted to ``idx``) and counting the
        evaluations in ``evals``. In the lagrangian search ``c`` is the multiplier, updated in
        place at every check. ``stop_after``: samples that have succeeded stop after this many
        iterations. Returns the solver's result and which samples succeeded at any check."""
        spec, s = self.spec, self.spec.search
        x, t = x0.index_select(0, idx), tg.select(idx)
        # lagrangian: the penalty μ per sample, grown in the rescue where the violation stalls
        mu = torch.full_like(c, s.mu) if s.mode == "lagrangian" else None
        stalled_from = torch.full_like(c, math.inf)  # violation at the last window's start
        live = LiveRows(x, t)
        box = valid_box(x, spec.eps)  # validated once; the tracker projects with it
        project = lambda v: box.prox(v, 1.0)
        smooth = loss_term(self.model, live, c, spec.loss.kappa, mu,
                           project if spec.loss.project else None)
        if support is None:
            problem, out = attack_problem(spec, self.terms, box, smooth), spec.output_term
            score = self._score
        else:  # the block that carries the fixed support is the last one
            problem = refine_problem(spec, self.terms, box, smooth, support)
            out, score = len(problem.blocks) - 1, self._distortion
        iterations = int(cap.max())
        # iterations after which the set of running samples may change: the caps, and from
        # stop_after on every RESCUE_SYNC iterations (rescued samples stop when they succeed)
        ends = set(cap.unique().tolist())
        if stop_after:
            ends |= set(range(stop_after, iterations, RESCUE_SYNC))
        n = idx.shape[0]
        hit = torch.zeros(n, dtype=torch.bool, device=x.device)
        checks = torch.zeros(n, dtype=torch.long, device=x.device)
        broken = torch.zeros(n, dtype=torch.bool, device=x.device)  # NaN/inf logits seen

        def track(info):
            k, state = info.k, info.state
            stop = state.iterations >= cap  # the cap (and the budget) is honoured exactly
            if k % s.track_every == 0 or k in ends:
                cand = candidate(problem, state, out, project)
                success, excess = torch.zeros_like(hit), torch.zeros_like(c)
                if live.rows is None or live.rows.numel():
                    rows = live.rows
                    xr = x if rows is None else live.x_rows
                    cr = cand if rows is None else cand.index_select(0, rows)
                    with torch.no_grad():  # the check: one forward evaluation per live row
                        logits = self.model(xr + cr)
                    tr = live.tg_rows
                    ok = is_adversarial(logits, tr.labels, tr.targets, tr.targeted,
                                        spec.loss.kappa)
                    g = margin(logits, tr.labels, tr.targets, tr.targeted) + spec.loss.kappa
                    bad = ~torch.isfinite(logits).all(dim=1)
                    g = torch.where(bad, torch.zeros_like(g), g)  # a broken row moves no c
                    if rows is None:
                        success, excess = ok, g
                        checks.add_(1)
                        broken.logical_or_(bad)
                    else:
                        success.index_copy_(0, rows, ok)
                        excess.index_copy_(0, rows, g)
                        checks.index_add_(0, rows, torch.ones_like(rows))
                        broken.index_copy_(0, rows, broken.index_select(0, rows) | bad)
                hit.logical_or_(success)
                best.offer(cand, success, score(cand), c)
                if mu is not None:  # method of multipliers (rows not evaluated: excess 0)
                    c.copy_(torch.clamp(c + mu * excess, min=0))
                    # not adversarial yet, in the rescue (after stop_after) or the refine:
                    # every PENALTY_WINDOW checks a violation that did not shrink by half
                    # grows μ (Bertsekas' rule; μ adapts to the model's scale of logits)
                    window = (checks % PENALTY_WINDOW == 0) & (excess > 0) & ~hit
                    if stop_after is not None:
                        window = window & (state.iterations > stop_after)
                    slow = window & (excess > 0.5 * stalled_from)
                    grown = torch.clamp(mu * s.mu_growth, max=s.mu * s.mu_growth_limit)
                    mu.copy_(torch.where(slow, grown, mu))  # larger: unstable steps
                    stalled_from.copy_(torch.where(window, excess, stalled_from))
            if stop_after is not None:
                stop = stop | (hit & (state.iterations >= stop_after))
            if k in ends:
                live.keep(state.active & ~stop)  # the only points where samples stop
            return stop

        result = LinearizedADMM(spec.solver.settings(iterations)).solve(problem, z0,
                                                                       callback=track)
        evals.add_gradients(idx, result.iterations)
        evals.add_forwards(idx, checks)
        evals.flag_nonfinite(idx, broken)
        return result, hit

    def _score(self, cand: Tensor) -> Tensor:
        return decision_score(self.spec, self.terms, cand)

    def _distortion(self, cand: Tensor) -> Tensor:
        """The refine's ranking: what it minimises on its fixed support (its terms at δ; ℓ2
        when the spec has none)."""
        return objective_score(self.refined_terms, cand)

    # -- where the search starts -------------------------------------------------------------
    def start(self, x0: Tensor, tg: Targets, evals: Evaluations):
        """``(best, z0)``: the best-so-far and the δ the search starts from. ``search.start =
        "zero"`` (the default without ε): nothing found, δ = 0. ``"pgd"`` (the default with
        ε): ``start_steps`` steps of ℓ∞ PGD on the cross-entropy (step 2.5ε/start_steps) from a
        random start drawn from the engine's seed (:func:`attacks.pgd.pgd`, within the search's
        share of the budget); every adversarial iterate, and the last one if adversarial (one
        forward check), is offered to ``best`` with the spec's score, so the attack succeeds
        wherever this PGD does; the search starts from PGD's δ."""
        s, eps, best = self.spec.search, self.spec.eps, Best.empty(x0)
        steps = 0
        if s.starts_with_pgd(eps):  # everyone has spent the same so far: one share for all
            steps = min(s.start_steps, int(evals.left(until=self.stage_limits()[0]).max()))
        if steps == 0:
            return best, torch.zeros_like(x0)
        run = pgd(self.model, x0, tg, eps, steps, 2.5 * eps / s.start_steps,
                  start=random_start(x0, eps, self.seed))
        evals.add_gradients(torch.arange(x0.shape[0], device=x0.device), run.gradient_evals)
        with torch.no_grad():
            logits = self.model(x0 + run.delta)
        evals.add_forwards(None, 1)
        success = run.found | is_adversarial(logits, tg.labels, tg.targets, tg.targeted)
        best.offer(run.delta, success, self._score(run.delta), self._c0(x0))
        return best, run.delta

    # -- the search over c -----------------------------------------------------------------
    def search(self, x0: Tensor, tg: Targets, evals: Evaluations, best: Optional[Best] = None,
               z0: Optional[Tensor] = None) -> Best:
        """The search over ``c`` from ``best`` and ``z0`` (:meth:`start`; default: nothing
        found, δ = 0)."""
        limit = self.stage_limits()[0]
        best = Best.empty(x0) if best is None else best
        z0 = torch.zeros_like(x0) if z0 is None else z0
        if self.spec.search.mode == "lagrangian":
            return self._search_lagrangian(x0, tg, evals, limit, best, z0)
        return self._search_binary(x0, tg, evals, limit, best, z0)

    def _c0(self, x0: Tensor) -> Tensor:
        c0 = self.spec.loss.c or default_c(tuple(x0.shape[1:]))
        return torch.full((x0.shape[0],), c0, dtype=x0.dtype, device=x0.device)

    def _search_lagrangian(self, x0: Tensor, tg: Targets, evals: Evaluations,
                           limit: int, best: Best, z0: Tensor) -> Best:
        s = self.spec.search
        cap = torch.clamp(evals.left(until=limit), max=s.iterations + s.rescue_iterations)
        idx = (cap > 0).nonzero().squeeze(1)
        if idx.numel():
            part = best.select(idx)
            self._solve(idx, x0, tg, self._c0(x0).index_select(0, idx), part,
                        z0.index_select(0, idx), cap.index_select(0, idx), evals,
                        stop_after=s.iterations)
            best.put(idx, part)
        return best

    def _search_binary(self, x0: Tensor, tg: Targets, evals: Evaluations, limit: int,
                       best: Best, z0: Tensor) -> Best:
        s = self.spec.search
        b = x0.shape[0]
        c = self._c0(x0)
        c0 = c.clone()
        lo, hi = torch.zeros_like(c), torch.full_like(c, math.inf)
        last_z = z0.clone()
        running = torch.ones(b, dtype=torch.bool, device=x0.device)
        for _ in range(s.steps):
            cap = torch.clamp(evals.left(until=limit), max=s.iterations)
            idx = (running & (cap > 0)).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            cc, part = c.index_select(0, idx), best.select(idx)
            before = part.score.clone()
            if s.warm_start:  # from the best success so far, else from where the last step ended
                z_start = batch_where(part.found, part.delta, last_z.index_select(0, idx))
            else:
                z_start = torch.zeros_like(part.delta)
            result, hit = self._solve(idx, x0, tg, cc, part, z_start, cap.index_select(0, idx),
                                      evals)
            best.put(idx, part)
            last_z.index_copy_(0, idx, result.z)
            # per-sample binary search on c
            lo_i, hi_i = lo.index_select(0, idx), hi.index_select(0, idx)
            hi_i = torch.where(hit, torch.minimum(hi_i, cc), hi_i)
            lo_i = torch.where(hit, lo_i, torch.maximum(lo_i, cc))
            c_i = torch.where(torch.isfinite(hi_i), (lo_i + hi_i) / 2, cc * s.growth)
            lo.index_copy_(0, idx, lo_i)
            hi.index_copy_(0, idx, hi_i)
            c.index_copy_(0, idx, c_i)
            stalled = hit & torch.isfinite(before) & (part.score > before * (1 - s.patience_tol))
            running.index_copy_(0, idx, ~stalled)
        # Samples that never succeeded get one cold restart at c0·growth²: a warm start from a
        # failed large-c step can sit far outside the valid box, where linearizing is useless.
        cap = torch.clamp(evals.left(until=limit), max=s.rescue_iterations)
        idx = (~best.found & (cap > 0)).nonzero().squeeze(1)
        if s.rescue_iterations and idx.numel():
            part = best.select(idx)
            cc = c0.index_select(0, idx) * s.growth ** 2
            self._solve(idx, x0, tg, cc, part, torch.zeros_like(part.delta),
                        cap.index_select(0, idx), evals)
            best.put(idx, part)
        return best

    # -- refine (Sec. 4.2) -------------------------------------------------------------------
    def refine(self, x0: Tensor, tg: Targets, best: Best, evals: Evaluations,
               from_search: bool = True) -> Tensor:
        """Re-solve on the support of each success (from its δ and, after this engine's search,
        its ``c`` rescaled to the refine problem (:meth:`_refine_c`); with ``from_search``
        False, ``best.c`` as given); keep the refined answer where it succeeds with a lower
        distortion (:meth:`_distortion`)."""
        spec = self.spec
        refined = torch.zeros_like(best.found)
        if spec.refine is None:
            return refined
        cap = torch.clamp(evals.left(until=self.stage_limits()[1]), max=spec.refine.iterations)
        idx = (best.found & (cap > 0)).nonzero().squeeze(1)
        if idx.numel() == 0:
            return refined
        part = best.select(idx)
        support = support_mask(part.delta, spec.refine.quantile)
        fresh = Best.empty(part.delta)
        c = self._refine_c(part, support) if from_search else part.c.clone()
        self._solve(idx, x0, tg, c, fresh, part.delta * support,
                    cap.index_select(0, idx), evals, support=support)
        better = fresh.found & (fresh.score < self._distortion(part.delta))
        part.delta = batch_where(better, fresh.delta, part.delta)
        best.put(idx, part)
        refined.index_copy_(0, idx, better)
        return refined

    def _refine_c(self, part: Best, support: Tensor) -> Tensor:
        """The refine's starting ``c``: the search's, rescaled to the refine problem by KKT.
        Where the search stopped, c·∇m ≈ −g (g a subgradient of all its terms); the refine
        keeps only the terms r, so its multiplier is c·⟨g_r, g⟩/‖g‖² on the support (least
        squares) — without the dropped group term, far below c for a spread-out δ (a start at
        the search's c overshoots the boundary and the refine spends its iterations coming
        back). No model evaluation: ∇m's direction is the search's own −g. The binary
        (paper's) search refines at its own fixed c, as published."""
        if self.spec.search.mode != "lagrangian" or not self.refined_terms:
            return part.c.clone()
        def sub(blocks):
            return (sum(b.subgradient(part.delta) for b in blocks) * support).flatten(1)
        g_r = sub(self.refined_terms)
        g = g_r + sub(self.dropped_terms)
        dot, norm2 = (g_r * g).sum(1), (g * g).sum(1)
        ok = (dot > 0) & (norm2 > 0)  # else (nothing to go by) the search's c
        ratio = dot / norm2.clamp(min=torch.finfo(norm2.dtype).tiny)
        return part.c * torch.where(ok, ratio.clamp(max=1.0), 1.0)

    # -- everything, verified ----------------------------------------------------------------
    def finish(self, x0: Tensor, tg: Targets, best: Best, evals: Evaluations):
        """Verify the best examples by a fresh forward pass and, with ``grid``, round, re-verify
        and repair them on the 8-bit grid within what is left of the budget; returns
        (adversarial, success) with every evaluation counted in ``evals``."""
        adv, success = verify(self.model, x0, best.delta, best.found, tg, evals)
        if self.grid:
            left = evals.left() if evals.budget is not None else None
            snap = snap_to_grid(self.model, x0, adv - x0, success, tg, self.spec.eps,
                                rounds=GRID_ROUNDS, max_repairs=left)
            adv, success = snap.adversarial, snap.success
            evals.gradient += snap.gradient_evals
            evals.forward += snap.forward_evals
        return adv, success

    def run(self, x0: Tensor, tg: Targets) -> Outcome:
        evals = Evaluations.zeros(x0.shape[0], x0.device, self.spec.search.budget)
        best = self.search(x0, tg, evals, *self.start(x0, tg, evals))
        refined = self.refine(x0, tg, best, evals)
        adv, success = self.finish(x0, tg, best, evals)
        return Outcome(adversarial=adv, success=success, c=torch.where(success, best.c,
                       torch.full_like(best.c, math.nan)), gradient_evals=evals.gradient,
                       forward_evals=evals.forward, refined=refined & success,
                       nonfinite=evals.nonfinite)
