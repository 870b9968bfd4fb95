"""The attack engine: per-sample search over ``c`` around the ADMM solver, the refine stage,
and honest verification. Shared by every ADMM attack; no attack writes its own loop.

Per sample and fully batched: ``c`` grows by ``growth`` until a success bounds it, then is
bisected; a sample leaves the search once a step succeeds without improving its best
distortion. Only the samples still searching are solved (index_select), so finished samples
cost nothing. The best successful candidate is tracked every ``track_every`` iterations by
the spec's decision rule.
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
from attacks.losses import is_adversarial
from attacks.problems import (attack_problem, candidate, loss_term, refine_problem,
                              support_mask, term_blocks)
from attacks.spec import AttackSpec, default_c, valid_box


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


def decision_score(spec: AttackSpec, terms, delta: Tensor) -> Tensor:
    """The spec's ranking of successful candidates, (B,): the sum of its distortion and
    regularizer ``terms`` (blocks) at δ (default), or an ℓp norm of δ."""
    flat = delta.flatten(1)
    if spec.decision == "objective":
        if not terms:
            return flat.norm(dim=1)
        return sum(b.fn(b.coupling.gather(delta)) for b in terms)
    if spec.decision == "l0":
        return (flat.abs() > 1e-7).sum(1).to(delta.dtype)
    return flat.norm(p={"l1": 1, "l2": 2, "linf": math.inf}[spec.decision], dim=1)


@attrs.define
class Targets:
    """Per-example labels, targets and whether each example is targeted, (B,) each."""

    labels: Tensor
    targets: Tensor
    targeted: Tensor

    def select(self, idx: Tensor) -> "Targets":
        return Targets(*(t.index_select(0, idx) for t in attrs.astuple(self, recurse=False)))


@attrs.define
class Outcome:
    """What the engine returns, per example: the verified image (exactly the one the model saw;
    the clean image on failure) and the accounting."""

    adversarial: Tensor
    success: Tensor
    c: Tensor
    gradient_evals: Tensor
    forward_evals: Tensor
    refined: Tensor


class Engine:
    def __init__(self, model: Callable[[Tensor], Tensor], spec: AttackSpec, shape,
                 grid: bool = False):
        self.model = model
        self.spec = spec
        self.grid = grid  # snap the final examples onto the 8-bit grid (attacks.grid)
        self.terms = term_blocks(spec, tuple(shape))  # x0-independent: built once

    # -- one ADMM solve with success tracking --------------------------------------------
    def _solve(self, idx: Tensor, x0: Tensor, tg: Targets, c: Tensor, best: Best, z0: Tensor,
               iterations: int, grads: Tensor, fwd: Tensor, support: Optional[Tensor] = None):
        """One ADMM solve for the samples ``idx`` — the attack problem, or with ``support`` the
        refine problem — offering every tracked success to ``best`` (already restricted to
        ``idx``) and adding the evaluations spent to ``grads``/``fwd``. Returns the solver's
        result and which samples succeeded at any check."""
        spec = self.spec
        x, t = x0.index_select(0, idx), tg.select(idx)
        smooth = loss_term(self.model, x, t.labels, t.targets, t.targeted, c, spec.loss.kappa)
        if support is None:
            problem, out = attack_problem(spec, x, smooth), spec.output_term
        else:  # the block that carries the fixed support is the last one
            problem = refine_problem(spec, x, smooth, support)
            out = len(problem.blocks) - 1
        project = lambda v: valid_box(x, spec.eps).prox(v, 1.0)
        every = spec.search.track_every
        hit = torch.zeros_like(best.found)
        checks = torch.zeros_like(idx)

        def track(info):
            if info.k % every and info.k != iterations:
                return None
            cand = candidate(problem, info.state, out, project)
            with torch.no_grad():
                logits = self.model(x + cand)
            success = is_adversarial(logits, t.labels, t.targets, t.targeted, spec.loss.kappa)
            hit.logical_or_(success)
            checks.add_(1)
            best.offer(cand, success, decision_score(spec, self.terms, cand), c)
            return None

        result = LinearizedADMM(spec.solver.settings(iterations)).solve(problem, z0,
                                                                       callback=track)
        grads.index_add_(0, idx, result.iterations)
        fwd.index_add_(0, idx, checks)
        return result, hit

    # -- the search over c -----------------------------------------------------------------
    def search(self, x0: Tensor, tg: Targets, grads: Tensor, fwd: Tensor) -> Best:
        spec, s = self.spec, self.spec.search
        b = x0.shape[0]
        c0 = spec.loss.c or default_c(tuple(x0.shape[1:]))
        c = torch.full((b,), c0, dtype=x0.dtype, device=x0.device)
        lo, hi = torch.zeros_like(c), torch.full_like(c, math.inf)
        best = Best.empty(x0)
        last_z = torch.zeros_like(x0)
        running = torch.ones(b, dtype=torch.bool, device=x0.device)
        for _ in range(s.steps):
            idx = running.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            cc, part = c.index_select(0, idx), best.select(idx)
            before = part.score.clone()
            if s.warm_start:  # from the best success so far, else from where the last step ended
                z0 = batch_where(part.found, part.delta, last_z.index_select(0, idx))
            else:
                z0 = torch.zeros_like(part.delta)
            result, hit = self._solve(idx, x0, tg, cc, part, z0, s.iterations, grads, fwd)
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
        idx = (~best.found).nonzero().squeeze(1)
        if s.rescue_iterations and idx.numel():
            part = best.select(idx)
            cc = torch.full_like(part.score, c0 * s.growth ** 2)
            self._solve(idx, x0, tg, cc, part, torch.zeros_like(part.delta),
                        s.rescue_iterations, grads, fwd)
            best.put(idx, part)
        return best

    # -- refine (Sec. 4.2) -------------------------------------------------------------------
    def refine(self, x0: Tensor, tg: Targets, best: Best, grads: Tensor, fwd: Tensor) -> Tensor:
        """Re-solve on the support of each success; keep the refined answer when it succeeds."""
        spec = self.spec
        refined = torch.zeros_like(best.found)
        idx = best.found.nonzero().squeeze(1)
        if spec.refine is None or idx.numel() == 0:
            return refined
        part = best.select(idx)
        support = support_mask(part.delta, spec.refine.quantile)
        fresh = Best.empty(part.delta)
        self._solve(idx, x0, tg, part.c, fresh, part.delta * support, spec.refine.iterations,
                    grads, fwd, support=support)
        part.delta = batch_where(fresh.found, fresh.delta, part.delta)
        best.put(idx, part)
        refined.index_copy_(0, idx, fresh.found)
        return refined

    # -- everything, verified ----------------------------------------------------------------
    def finish(self, x0: Tensor, tg: Targets, best: Best, grads: Tensor, fwd: Tensor):
        """Verify the best examples by a fresh forward pass and, with ``grid``, round, re-verify
        and repair them on the 8-bit grid; returns (adversarial, success, grads, fwd) with the
        grid's evaluations counted."""
        adv, success = verify(self.model, x0, best.delta, best.found, tg)
        if self.grid:
            snap = snap_to_grid(self.model, x0, adv - x0, success, tg, self.spec.eps)
            adv, success = snap.adversarial, snap.success
            grads, fwd = grads + snap.gradient_evals, fwd + snap.forward_evals
        return adv, success, grads, fwd

    def run(self, x0: Tensor, tg: Targets) -> Outcome:
        b = x0.shape[0]
        grads = torch.zeros(b, dtype=torch.long, device=x0.device)
        fwd = torch.zeros_like(grads)
        best = self.search(x0, tg, grads, fwd)
        refined = self.refine(x0, tg, best, grads, fwd)
        adv, success, grads, fwd = self.finish(x0, tg, best, grads, fwd)
        return Outcome(adversarial=adv, success=success, c=torch.where(success, best.c,
                       torch.full_like(best.c, math.nan)), gradient_evals=grads,
                       forward_evals=fwd + 1, refined=refined & success)


def verify(model, x0: Tensor, delta: Tensor, found: Tensor, tg: Targets):
    """Fresh forward pass on the final image ``clip(x0 + δ, 0, 1)``: returns the images that
    were checked (the clean image where the attack failed) and the success mask."""
    adv = (x0 + delta).clamp(0, 1)
    with torch.no_grad():
        logits = model(adv)
    success = found & is_adversarial(logits, tg.labels, tg.targets, tg.targeted)
    return batch_where(success, adv, x0), success
