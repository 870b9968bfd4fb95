"""Linearized ADMM for consensus problems (paper eqs. 7-9, 14-15, 17-18, 58-59).

One iteration, for ``minimize f(z) + Σ_b g_b(x_b)  s.t.  x_b = A_b z`` with scaled duals u_b:

    x_b ← prox_{g_b/ρ_b}(A_b z − u_b)                                 x-steps   (10)-(12), (17)
    z   ← (η_k z + Σ_b ρ_b Aᵀ_b(x_b + u_b) − ∇f(z)) / (η_k + Σ_b ρ_b cover_b)   z-step (15), (18)
    u_b ← u_b + x_b − A_b z                                            dual step (9)

``cover_b = diag(A_bᵀA_b)`` counts the copies of each coordinate (1 for a full copy). With
``Problem.support`` the z-step is restricted to a fixed support (eq. 59). Every per-sample
quantity is a (B,) tensor; finished samples are frozen with ``torch.where``. The only
host-device synchronisation is the count of active samples every ``check_every`` iterations
(``admmkit.testing.sync`` checks it). With ``compact_below`` the loop then continues on the
active rows alone (:meth:`LinearizedADMM.compact`): every row is independent and keeps its
iteration ``k``, so the results are those of the whole batch. Per-sample iteration ``caps``
(read once, when the solve starts) also compact at the iteration where rows reach their cap,
without a synchronisation: the host knows how many rows are left below it.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import attrs
import torch
from torch import Tensor

from admmkit.problem import Problem
from admmkit.prox.base import batch_view, check_positive, tau_checked
from admmkit.solver.settings import ADMMSettings
from admmkit.solver.state import (ADMMResult, ADMMState, IterationInfo, IterationStats,
                                  batch_where)

Callback = Callable[[IterationInfo], Optional[Tensor]]
Rows = Optional[Tensor]


def _sum(x: Tensor) -> Tensor:
    return x.flatten(1).sum(1)


def _sq_norm(x: Tensor) -> Tensor:
    return _sum(x.pow(2))


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    return batch_view(t, like)


class LinearizedADMM:
    """The ADMM loop as a template: :meth:`x_steps`, :meth:`z_step`, :meth:`dual_step`,
    :meth:`check` (residuals, stopping, ρ balancing); :meth:`solve` runs them."""

    def __init__(self, settings: Optional[ADMMSettings] = None, **overrides):
        settings = settings or ADMMSettings()
        self.settings = attrs.evolve(settings, **overrides) if overrides else settings

    # -- set-up ----------------------------------------------------------------------------
    def init_state(self, problem: Problem, z0: Tensor) -> ADMMState:
        """Start from ``z0`` (B, ...): ``x_b = A_b z0``, ``u_b = 0``, ``ρ = settings.rho``."""
        if not isinstance(z0, Tensor) or z0.dim() < 1:
            raise ValueError("z0 must be a (B, ...) tensor")
        if not torch.isfinite(z0).all():
            raise ValueError("z0 must be finite")
        problem.check_shape(z0)
        z = z0 if problem.support is None else z0 * problem.support
        xs = [b.coupling.gather(z).clone() for b in problem.blocks]
        b = z.shape[0]
        flags = lambda v: torch.full((b,), v, dtype=torch.bool, device=z.device)
        return ADMMState(z=z.clone(), xs=xs, us=[torch.zeros_like(x) for x in xs],
                         rho=torch.full((b,), float(self.settings.rho), dtype=z.dtype,
                                        device=z.device),
                         active=flags(True), converged=flags(False), diverged=flags(False),
                         iterations=torch.zeros(b, dtype=torch.long, device=z.device))

    # -- the three steps -------------------------------------------------------------------
    def x_steps(self, problem: Problem, s: ADMMState) -> List[Tensor]:
        """``x_b = prox_{g_b/ρ_b}(A_b z − u_b)`` for every block (independent, eqs. 10-12)."""
        with tau_checked():  # ρ was checked when the solve started: no value read per step
            return [b.fn.prox(b.coupling.gather(s.z) - u, 1.0 / (s.rho * b.rho_scale))
                    for b, u in zip(problem.blocks, s.us)]

    def z_step(self, problem: Problem, s: ADMMState, xs: List[Tensor], grad, eta: float,
               copies: List[Tensor], damping: List[Optional[Tensor]]) -> Tensor:
        """Minimise the linearized augmented Lagrangian in z (eqs. 14-15, 18, 59)."""
        z = s.z
        num = eta * z - grad
        den = eta
        for b, x, u, n, extra in zip(problem.blocks, xs, s.us, copies, damping):
            rho_b = _per_sample(s.rho * b.rho_scale, z)
            num = num + rho_b * b.coupling.scatter(x + u)
            if extra is not None:  # paper's full copies: damping towards z^k
                num = num + rho_b * extra * z
            den = den + rho_b * n
        z_new = num / den
        return z_new if problem.support is None else z_new * problem.support

    def dual_step(self, problem: Problem, s: ADMMState, xs: List[Tensor], z: Tensor):
        """Scaled dual ascent ``u_b ← u_b + x_b − A_b z`` (eq. 9)."""
        return [u + x - b.coupling.gather(z) for b, x, u in zip(problem.blocks, xs, s.us)]

    # -- residuals, stopping, penalty ------------------------------------------------------
    def check(self, problem: Problem, s: ADMMState, z_prev: Tensor, k: int, eta: float,
              smooth_value: Optional[Tensor], copies: List[Tensor]) -> IterationStats:
        """Primal/dual residuals with absolute+relative tolerances (OSQP/SCS style), per sample;
        marks converged samples and, if enabled, balances ρ."""
        st = self.settings
        z, dz = s.z, s.z - z_prev
        r2 = sum(_sq_norm(x - b.coupling.gather(z)) for b, x in zip(problem.blocks, s.xs))
        rho_sq = [(s.rho * b.rho_scale) ** 2 for b in problem.blocks]
        # dual residual of the linearized z-step: ρ-weighted copies of Δz plus η·Δz, the
        # part the linearization adds (without it a large η would fake convergence)
        s2 = sum(r * _sum(w * dz.pow(2)) for r, w in zip(rho_sq, copies))
        x_norm = sum(_sq_norm(x) for x in s.xs).sqrt()
        az_norm = sum(_sum(w * z.pow(2)) for w in copies).sqrt()
        y_norm = sum(r * _sq_norm(u) for r, u in zip(rho_sq, s.us)).sqrt()
        p = sum(x[0].numel() for x in s.xs)
        primal, dual = r2.sqrt(), s2.sqrt() + eta * _sq_norm(dz).sqrt()
        primal_tol = math.sqrt(p) * st.tol_abs + st.tol_rel * torch.maximum(x_norm, az_norm)
        dual_tol = math.sqrt(p) * st.tol_abs + st.tol_rel * y_norm
        if st.stops_early:
            done = s.active & (primal <= primal_tol) & (dual <= dual_tol)
            s.converged = s.converged | done
            s.active = s.active & ~done
        if st.adaptive_rho:
            grow = s.active & (primal > st.mu * dual)
            shrink = s.active & (dual > st.mu * primal)
            one = torch.ones_like(s.rho)
            factor = torch.where(grow, one * st.rho_factor,
                                 torch.where(shrink, one / st.rho_factor, one))
            s.rho = s.rho * factor
            s.us = [u / _per_sample(factor, u) for u in s.us]
        return IterationStats(k=k, eta=eta, rho=s.rho.clone(), primal_residual=primal,
                              dual_residual=dual, primal_tol=primal_tol, dual_tol=dual_tol,
                              smooth_value=smooth_value,
                              block_values=[b.fn(x) for b, x in zip(problem.blocks, s.xs)],
                              active=s.active.clone())

    # -- compaction -------------------------------------------------------------------------
    def compact(self, problem: Problem, s: ADMMState, rows: Rows, live: int, whole: ADMMState
                ) -> Tuple[Problem, ADMMState, Rows, ADMMState]:
        """Continue on ``live`` rows of ``s``, its active rows first (``live`` at least their
        number): the problem's per-sample data and the state re-indexed
        (:meth:`Problem.select`, :meth:`ADMMState.select`); ``whole`` keeps the rows left
        behind. ``rows``: the rows of the solve's batch ``s`` holds."""
        whole = s if rows is None else whole.replace_rows(rows, s)
        # the active rows first, in order: their positions without reading the mask on the host
        pick = torch.argsort((~s.active).to(torch.uint8), stable=True)[:live]
        rows = pick if rows is None else rows.index_select(0, pick)
        return problem.select(pick, s.batch_size), s.select(pick), rows, whole

    # -- the loop --------------------------------------------------------------------------
    def solve(self, problem: Problem, z0: Optional[Tensor] = None, *,
              state: Optional[ADMMState] = None, callback: Optional[Callback] = None,
              max_iter: Optional[int] = None, caps: Optional[Tensor] = None) -> ADMMResult:
        """Run up to ``max_iter`` iterations from ``z0`` or from a previous ``state``
        (warm start; its duals and ρ are kept, finished samples are re-activated).

        ``callback(info)`` runs after every iteration; it may return a (B,) bool tensor of
        samples to stop now (e.g. an attack's per-sample early abort). After a compaction
        ``info.rows`` says which rows of the batch ``info.state`` (and the mask) holds.
        ``caps`` (B,) long: sample ``b`` runs at most ``caps[b]`` iterations of this solve (the
        callback of its last one still sees it active).
        """
        if (z0 is None) == (state is None):
            raise ValueError("give exactly one of z0 (a cold start) or state (a warm start)")
        if state is None:
            s = self.init_state(problem, z0)
        else:
            problem.check_shape(state.z)
            check_positive("state.rho", state.rho)  # once: the steps 1/ρ are not checked again
            s = state.clone()
            s.active = ~s.diverged
            s.converged = torch.zeros_like(s.converged)
        st = self.settings
        if st.compact_below and problem.smooth is not None and not problem.smooth.indexed:
            raise ValueError("ADMMSettings.compact_below needs a smooth term that can be "
                             "restricted to rows: Smooth(fn, indexed=True) with fn(z, rows)")
        n_iter = st.max_iter if max_iter is None else max_iter
        # per block: copies of each coordinate (diag AᵀA, plus the paper's phantom copies for
        # copies="full") and that extra damping alone; fixed for the whole solve
        ones = torch.ones_like(s.z[:1])
        damping = [b.extra_damping(s.z) if b.copies == "full" else None for b in problem.blocks]
        copies = [ones * b.coupling.cover(s.z) + (0.0 if d is None else d)
                  for b, d in zip(problem.blocks, damping)]
        history: List[IterationStats] = []
        whole, rows = s, None  # s holds the rows ``rows`` of ``whole`` (None: all of them)
        live = s.batch_size  # at most this many rows are active (exact after a check)
        above = {}  # cap value -> how many rows have a larger cap
        if caps is not None:
            if caps.shape != (s.batch_size,) or caps.dtype != torch.long:
                raise ValueError(f"caps must be a ({s.batch_size},) long tensor; got "
                                 f"{caps.dtype} of shape {tuple(caps.shape)}")
            values, counts = caps.unique(return_counts=True)
            values, counts = values.tolist(), counts.tolist()  # once, when the solve starts
            above = {v: sum(counts[i + 1:]) for i, v in enumerate(values)}
            n_iter = min(n_iter, max(values[-1], 0))
            s.active = s.active & (caps > 0)
        for k in range(1, n_iter + 1):
            eta = float(st.eta(k))
            started = s.active
            xs = self.x_steps(problem, s)
            if problem.smooth is not None:
                value, grad, aux = problem.smooth.value_and_grad(s.z)
            else:
                value, grad, aux = None, 0.0, None
            z_new = self.z_step(problem, s, xs, grad, eta, copies, damping)
            us = self.dual_step(problem, s, xs, z_new)
            # non-finite guard: stop the affected samples, keep their last finite iterate
            finite = torch.isfinite(z_new).flatten(1).all(1)
            s.diverged = s.diverged | (started & ~finite)
            keep = started & finite
            z_prev = s.z
            s.z = batch_where(keep, z_new, s.z)
            s.xs = [batch_where(keep, x, x_old) for x, x_old in zip(xs, s.xs)]
            s.us = [batch_where(keep, u, u_old) for u, u_old in zip(us, s.us)]
            s.active = keep
            s.iterations = s.iterations + started.long()
            stats = None
            checking = k % st.check_every == 0 or k == n_iter
            if checking:
                stats = attrs.evolve(self.check(problem, s, z_prev, k, eta, value, copies),
                                     rows=rows)
                history.append(stats)
            if callback is not None:
                stop = callback(IterationInfo(k=k, eta=eta, state=s, smooth_value=value,
                                              aux=aux, stats=stats, rows=rows,
                                              grad=None if value is None else grad))
                if stop is not None:
                    s.active = s.active & ~stop
            if caps is not None:  # a row still active has run k iterations of this solve
                s.active = s.active & ((caps if rows is None else caps.index_select(0, rows)) > k)
            if checking:
                live = int(s.active.sum())  # the loop's one host-device synchronisation
            elif k in above:  # rows reached their cap: fewer left, known without reading
                live = min(live, above[k])
            else:
                continue
            if live == 0:
                break
            if live < st.compact_below * s.batch_size:
                problem, s, rows, whole = self.compact(problem, s, rows, live, whole)
        return ADMMResult(state=s if rows is None else whole.replace_rows(rows, s),
                          history=history)
