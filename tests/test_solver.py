"""Known answers for the linearized ADMM solver and the paper's update formulas."""

import math

import numpy as np
import pytest
import torch

from admmkit.groups import SlidingGroups
from admmkit.problem import Block, Problem
from admmkit.prox import Box, BoxLinf, Constrained, FixedSupport, GroupL2, SquaredL2
from admmkit.smooth import Smooth, quadratic
from admmkit.solver import ADMMSettings, ConstantSchedule, LinearizedADMM, SqrtSchedule

D = torch.float64


def least_squares(A, y):
    def f(z):
        r = torch.einsum("bmn,bn->bm", A, z.flatten(1)) - y
        return 0.5 * r.pow(2).sum(1)
    return Smooth(f)


def prox_group_box(v, t, lo, hi):
    """argmin_x t||x_g|| + ||x - v||²/2 + 1{lo <= x <= hi} per group row of v (0 inside the box),
    written independently of admmkit: x = clip(v·r/(r + t)) with r = ||x|| found by bisection."""
    norms = np.linalg.norm(v, axis=1)
    a, b = np.zeros_like(norms), norms.copy()
    for _ in range(100):  # f(r) = ||clip(v r/(r+t))|| - r is positive below the root
        r = (a + b) / 2
        pos = np.linalg.norm(np.clip(v * (r / (r + t))[:, None], lo, hi), axis=1) > r
        a, b = np.where(pos, r, a), np.where(pos, b, r)
    x = np.clip(v * ((a + b) / 2 / ((a + b) / 2 + t))[:, None], lo, hi)
    return np.where((norms <= t)[:, None], 0.0, x)


def group_lasso_reference(A, y, index, tau, lo, hi, iters=3000):
    """An independent solution: accelerated proximal gradient (FISTA with restarts)."""
    n = A.shape[1]
    L = np.linalg.norm(A, 2) ** 2
    F = lambda x: 0.5 * np.sum((A @ x - y) ** 2) + tau * np.linalg.norm(x[index], axis=1).sum()
    x = z = np.zeros(n)
    t = 1.0
    for _ in range(iters):
        v = z - A.T @ (A @ z - y) / L
        x_new = np.zeros(n)
        x_new[index] = prox_group_box(v[index], tau / L, lo, hi)
        if F(x_new) > F(x):  # adaptive restart keeps it monotone
            t, z = 1.0, x
            continue
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
    return x, F(x)


def kkt_violation(A, y, x, index, tau, lo, hi):
    """Largest violation of 0 ∈ ∇f(x) + τ∂Σ||x_g|| + N_box(x), written out coordinate-wise."""
    grad = A.T @ (A @ x - y)
    worst = 0.0
    for g in index:
        xg, gg = x[g], grad[g]
        norm = np.linalg.norm(xg)
        if norm < 1e-9:  # zero group (0 is inside the box): ||∇_g f|| <= τ
            worst = max(worst, np.linalg.norm(gg) - tau)
            continue
        r = gg + tau * xg / norm
        at_hi, at_lo = xg >= hi - 1e-9, xg <= lo + 1e-9
        worst = max(worst, np.abs(r[~at_hi & ~at_lo]).max(initial=0),
                    r[at_hi].max(initial=-1), (-r[at_lo]).max(initial=-1))
    return worst


def test_least_squares_group_lasso_box_matches_an_independent_solver():
    torch.manual_seed(0)
    B, shape, n, m = 3, (1, 4, 4), 16, 20
    groups = SlidingGroups(shape, 2, 2)
    A = torch.randn(B, m, n, dtype=D)
    y = torch.randn(B, m, dtype=D)
    tau, lo, hi = 5.0, -0.3, 0.5
    L = max(torch.linalg.matrix_norm(A[i], 2).item() ** 2 for i in range(B))
    problem = Problem([Block(GroupL2(tau), groups, name="y"), Block(Box(lo, hi), name="w")],
                      smooth=least_squares(A, y))
    solver = LinearizedADMM(ADMMSettings(rho=2.0, eta=ConstantSchedule(L), max_iter=20000,
                                         tol_abs=1e-11, tol_rel=1e-11, check_every=50))
    res = solver.solve(problem, torch.zeros(B, *shape, dtype=D))
    assert res.converged.all() and not res.diverged.any()
    index = groups.gather(torch.arange(n, dtype=D).reshape(1, *shape))[0].long().numpy()
    objective = lambda b, x: (0.5 * np.sum((A[b].numpy() @ x - y[b].numpy()) ** 2)
                              + tau * np.linalg.norm(x[index], axis=1).sum())
    zero_groups = 0
    for b in range(B):
        x = res.z[b].flatten().numpy()
        # an independent optimality certificate (strictly convex: the minimiser is unique) ...
        assert kkt_violation(A[b].numpy(), y[b].numpy(), x, index, tau, lo, hi) < 1e-7
        assert x.min() >= lo - 1e-12 and x.max() <= hi + 1e-12
        # ... and an independent solver (long accelerated proximal-gradient run)
        x_ref, f_ref = group_lasso_reference(A[b].numpy(), y[b].numpy(), index, tau, lo, hi)
        assert abs(objective(b, x) - f_ref) < 1e-9
        np.testing.assert_allclose(x, x_ref, atol=1e-6)
        zero_groups += int((res.xs[0][b].norm(dim=-1) == 0).sum())  # exact zeros in y
    assert zero_groups > 0  # the problem exercises the group-sparsity (shrink-to-zero) branch


def strattack_by_the_paper(grad_f, x0, z, iters, rho, gamma, tau, eps, alpha, groups):
    """Eqs. (10), (11), (12), (15), (9) written out directly (non-overlapping groups)."""
    u = torch.zeros_like(z)
    s = torch.zeros_like(z)
    v = torch.zeros_like(z)
    lo = torch.maximum(-x0, torch.full_like(x0, -eps))
    hi = torch.minimum(1 - x0, torch.full_like(x0, eps))
    for k in range(1, iters + 1):
        a, b, c = z - u, z - s, z - v
        delta = rho / (rho + 2 * gamma) * a                                        # (10)
        w = torch.minimum(torch.maximum(b, lo), hi)                                # (11)
        cg = groups.gather(c)
        norm = cg.norm(dim=-1, keepdim=True)
        y = groups.scatter(torch.clamp(1 - tau / (rho * norm), min=0) * cg)        # (12)
        eta = alpha * math.sqrt(k)
        z_new = (eta * z + rho * (delta + u) + rho * (w + s) + rho * (y + v)
                 - grad_f(z)) / (eta + 3 * rho)                                    # (15)
        u, s, v = u + delta - z_new, s + w - z_new, v + y - z_new                  # (9), scaled
        z = z_new
    return z, delta, w, y


def _toy_smooth(B, shape):
    torch.manual_seed(1)
    W = torch.randn(B, int(np.prod(shape)), dtype=D)
    f = lambda z: torch.sin((W * z.flatten(1)).sum(1)) + 0.3 * z.flatten(1).pow(2).sum(1)
    smooth = Smooth(f)
    return smooth, (lambda z: smooth.value_and_grad(z)[1])


def test_generic_solver_reproduces_paper_updates_exactly():
    B, shape = 2, (1, 6, 6)
    groups = SlidingGroups(shape, 2, 2)
    x0 = torch.rand(B, *shape, dtype=D)
    smooth, grad_f = _toy_smooth(B, shape)
    rho, gamma, tau, eps, alpha = 1.0, 1.0, 0.2, 0.3, 5.0
    problem = Problem([Block(SquaredL2(gamma), name="delta"),
                       Block(BoxLinf(-x0, 1 - x0, eps), name="w"),
                       Block(GroupL2(tau), groups, name="y")], smooth=smooth)
    z0 = 0.1 * torch.randn(B, *shape, dtype=D)
    solver = LinearizedADMM(ADMMSettings(rho=rho, eta=SqrtSchedule(alpha), max_iter=30,
                                         tol_abs=0, tol_rel=0))
    res = solver.solve(problem, z0)
    z, delta, w, y = strattack_by_the_paper(grad_f, x0, z0, 30, rho, gamma, tau, eps, alpha,
                                            groups)
    torch.testing.assert_close(res.z, z, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.xs[0], delta, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.xs[1], w, rtol=0, atol=1e-12)
    torch.testing.assert_close(groups.scatter(res.xs[2]), y, rtol=0, atol=1e-12)


def test_full_copies_reproduce_paper_overlapping_updates():
    """copies="full" matches eqs. (17)-(18) with PQ copies each spanning all coordinates."""
    B, shape = 2, (1, 5, 5)
    groups = SlidingGroups(shape, 3, 2)  # 4 overlapping groups
    G = groups.num_groups
    smooth, grad_f = _toy_smooth(B, shape)
    rho, tau, alpha, iters = 1.0, 0.3, 5.0, 25
    z0 = 0.2 * torch.randn(B, *shape, dtype=D)
    # direct: one full-size copy y_i per group
    masks = [groups.scatter(torch.nn.functional.one_hot(torch.tensor(i), G).to(D)
                            .view(1, G, 1).expand(1, G, groups.group_dim).contiguous()) > 0
             for i in range(G)]
    z, vs = z0.clone(), [torch.zeros_like(z0) for _ in range(G)]
    for k in range(1, iters + 1):
        cs = [z - v for v in vs]
        ys = []
        for c, mask in zip(cs, masks):
            nrm = (c * mask).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            ys.append(torch.where(mask, torch.clamp(1 - tau / (rho * nrm), min=0) * c, c))  # (17)
        eta = alpha * math.sqrt(k)
        z_new = (eta * z + rho * sum(y + v for y, v in zip(ys, vs)) - grad_f(z)) / (eta + G * rho)
        vs = [v + y - z_new for y, v in zip(ys, vs)]
        z = z_new
    problem = Problem([Block(GroupL2(tau), groups, copies="full")], smooth=smooth)
    res = LinearizedADMM(ADMMSettings(rho=rho, eta=SqrtSchedule(alpha), max_iter=iters,
                                      tol_abs=0, tol_rel=0)).solve(problem, z0)
    torch.testing.assert_close(res.z, z, rtol=0, atol=1e-12)


def _batch_problem(B, weights=None):
    torch.manual_seed(3)
    target = torch.randn(B, 1, 4, 4, dtype=D)
    weights = torch.ones(B, dtype=D) if weights is None else weights
    groups = SlidingGroups((1, 4, 4), 3, 1)
    smooth = Smooth(lambda z: weights * (z - target).pow(2).flatten(1).sum(1))
    return Problem([Block(GroupL2(0.5), groups), Block(Box(-1.0, 1.0))], smooth=smooth), target


def test_batch_equals_per_sample_solves_and_samples_stop_independently():
    weights = torch.tensor([0.5, 1.0, 8.0, 30.0], dtype=D)  # different conditioning per sample
    problem, target = _batch_problem(4, weights)
    settings = ADMMSettings(rho=1.0, eta=ConstantSchedule(4.0), max_iter=5000, tol_abs=1e-9,
                            tol_rel=1e-9)
    z0 = torch.zeros(4, 1, 4, 4, dtype=D)
    batch = LinearizedADMM(settings).solve(problem, z0)
    assert batch.converged.all()
    assert len(set(batch.iterations.tolist())) > 1  # per-sample stopping
    for b in range(4):
        t, w = target[b:b + 1], weights[b]
        single = Problem(problem.blocks, smooth=Smooth(
            lambda z, t=t, w=w: w * (z - t).pow(2).flatten(1).sum(1)))
        one = LinearizedADMM(settings).solve(single, z0[b:b + 1])
        torch.testing.assert_close(one.z[0], batch.z[b], atol=1e-12, rtol=0)
        assert one.iterations[0] == batch.iterations[b]


def test_non_finite_sample_is_flagged_and_does_not_poison_the_batch():
    target = torch.randn(3, 1, 4, 4, dtype=D)

    def f(z):
        val = (z - target).pow(2).flatten(1).sum(1)
        return val * torch.tensor([1.0, math.nan, 1.0], dtype=D)  # NaN for sample 1 only
    problem = Problem([Block(Box(-1.0, 1.0))], smooth=Smooth(f))
    res = LinearizedADMM(max_iter=200, tol_abs=1e-8, tol_rel=1e-8,
                         eta=ConstantSchedule(2.0)).solve(problem, torch.zeros_like(target))
    assert res.diverged.tolist() == [False, True, False]
    assert torch.isfinite(res.z).all()
    assert res.iterations[1] == 1
    expected = target.clamp(-1, 1)
    torch.testing.assert_close(res.z[[0, 2]], expected[[0, 2]], atol=1e-5, rtol=0)


def test_support_keeps_z_zero_and_callback_can_stop_samples():
    target = torch.ones(2, 1, 3, 3, dtype=D)
    support = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    support[:, :, 1, 1] = True
    problem = Problem([Block(Box(-2.0, 2.0))], smooth=quadratic(target), support=support)
    seen = []

    def cb(info):
        seen.append(info.k)
        return torch.tensor([info.k >= 5, False])
    res = LinearizedADMM(max_iter=50, tol_abs=0, tol_rel=0, eta=ConstantSchedule(1.0)).solve(
        problem, torch.full_like(target, 0.5), callback=cb)
    assert (res.z[~support] == 0).all()
    assert res.iterations.tolist() == [5, 50]
    assert seen == list(range(1, 51))


def test_adaptive_rho_reaches_the_same_answer():
    problem, _ = _batch_problem(2)
    z0 = torch.zeros(2, 1, 4, 4, dtype=D)
    base = dict(eta=ConstantSchedule(4.0), max_iter=5000, tol_abs=1e-10, tol_rel=1e-10)
    fixed = LinearizedADMM(rho=0.05, **base).solve(problem, z0)
    adapt = LinearizedADMM(rho=0.05, adaptive_rho=True, mu=2.0, **base).solve(problem, z0)
    assert not torch.equal(adapt.state.rho, fixed.state.rho)
    torch.testing.assert_close(adapt.z, fixed.z, atol=1e-6, rtol=0)


def test_warm_start_continues_from_state():
    problem, _ = _batch_problem(2)
    z0 = torch.zeros(2, 1, 4, 4, dtype=D)
    solver = LinearizedADMM(eta=ConstantSchedule(4.0), max_iter=40, tol_abs=0, tol_rel=0)
    first = solver.solve(problem, z0)
    second = solver.solve(problem, state=first.state)
    assert second.iterations.tolist() == [80, 80]
    assert first.state.z is not second.state.z  # the given state is not mutated


def test_history_has_residuals_and_objective():
    problem, _ = _batch_problem(2)
    res = LinearizedADMM(max_iter=30, check_every=10, tol_abs=0, tol_rel=0).solve(
        problem, torch.zeros(2, 1, 4, 4, dtype=D))
    assert [h.k for h in res.history] == [10, 20, 30]
    h = res.history[-1]
    assert h.primal_residual.shape == (2,) and h.objective.shape == (2,)
    assert h.eta == pytest.approx(5 * math.sqrt(30))


@pytest.mark.parametrize("kw, match", [
    (dict(rho=-1.0), "rho"), (dict(rho=0.0), "rho"), (dict(max_iter=0), "max_iter"),
    (dict(check_every=-2), "check_every"), (dict(tol_abs=-1e-3), "tol_abs"),
    (dict(eta=3.0), "eta"), (dict(mu=0.5), "mu"),
])
def test_bad_settings_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        ADMMSettings(**kw)


def test_bad_problems_give_clear_errors():
    groups = SlidingGroups((1, 4, 4), 2, 2)
    problem = Problem([Block(GroupL2(1.0), groups, name="y")], smooth=quadratic(torch.zeros(1)))
    with pytest.raises(ValueError, match="block y: coupling does not fit"):
        LinearizedADMM().solve(problem, torch.zeros(2, 1, 5, 5))
    with pytest.raises(ValueError, match="exactly one of z0"):
        LinearizedADMM().solve(problem)
    with pytest.raises(TypeError, match="ProxFunction"):
        Block(lambda x: x)
    with pytest.raises(ValueError, match="at least one block"):
        Problem([])
    with pytest.raises(ValueError, match='copies="full"'):
        Block(SquaredL2(), copies="full")
    with pytest.raises(ValueError, match="z0 must be finite"):
        LinearizedADMM().solve(problem, torch.full((1, 1, 4, 4), math.nan))
    bad = Problem([Block(SquaredL2())], smooth=Smooth(lambda z: z.sum()))
    with pytest.raises(ValueError, match="per-sample values"):
        LinearizedADMM().solve(bad, torch.zeros(2, 3))


# -- compaction: the loop goes on with the active rows only --------------------------------------
def _rows_stopping_at_different_times(B=12, refine=False):
    """A StrAttack-shaped problem (or, with ``refine``, the fixed-support one) whose rows stop
    at different iterations: per-row caps (a callback stops them), per-row convergence, per-sample
    box bounds, ℓ∞ radius, group weight and (adaptive) ρ, a per-row smooth term."""
    gen = torch.Generator().manual_seed(11)
    x0 = torch.rand(B, 1, 6, 6, generator=gen, dtype=D)
    w = torch.randn(B, 1, 6, 6, generator=gen, dtype=D)
    radius = 0.1 + torch.rand(B, generator=gen, dtype=D)
    box = BoxLinf(-x0, 1 - x0, radius)

    def f(z, rows):
        ww = w if rows is None else w.index_select(0, rows)
        return torch.nn.functional.softplus((ww * z).flatten(1).sum(1)) + z.pow(2).flatten(1).sum(1)
    smooth = Smooth(f, indexed=True)
    if refine:
        support = torch.rand(B, 1, 6, 6, generator=gen) > 0.5
        blocks = [Block(Constrained(SquaredL2(0.5 + radius), box, FixedSupport(support)))]
        problem = Problem(blocks, smooth=smooth, support=support)
    else:
        groups = SlidingGroups((1, 6, 6), 3, 2)
        blocks = [Block(SquaredL2(1.0)), Block(GroupL2(0.2 + radius), groups, name="groups"),
                  Block(box, name="valid")]
        problem = Problem(blocks, smooth=smooth)
    caps = torch.randint(5, 40, (B,), generator=gen)
    caps[[2, B - 1]] = 300  # two rows run long
    return problem, torch.zeros_like(x0), caps


@pytest.mark.parametrize("refine", [False, True], ids=["strattack", "refine"])
def test_compaction_gives_the_results_of_the_whole_batch(refine):
    """Equal: each row does the same arithmetic on a smaller batch (its iteration k, and so η_k
    and the checks, are kept). Counts and flags exactly; iterates to 1e-12 in float64, not
    bitwise: torch evaluates transcendental functions (here the smooth term's softplus) on
    SIMD lanes or on a scalar tail depending on a row's position in the batch, which may differ
    in the last bit (bitwise equal on this machine; a float32 batch of 180 differed by 1 ulp)."""
    problem, z0, caps = _rows_stopping_at_different_times(refine=refine)
    settings = ADMMSettings(max_iter=300, check_every=5, adaptive_rho=True, mu=3.0,
                            tol_abs=1e-6, tol_rel=1e-5)
    sizes = []

    def cap(info):
        rows = torch.arange(z0.shape[0]) if info.rows is None else info.rows
        sizes.append(info.state.batch_size)
        return info.state.iterations >= caps.index_select(0, rows)

    whole = LinearizedADMM(settings).solve(problem, z0, callback=cap)
    assert sizes == [12] * len(sizes)
    sizes.clear()
    compact = LinearizedADMM(settings, compact_below=0.5).solve(problem, z0, callback=cap)
    assert sizes[0] == 12 and sizes[-1] <= 3  # it did compact, down to the long rows
    assert len(set(whole.iterations.tolist())) > 5  # rows stopped at different times
    assert (whole.iterations == 300).sum() <= 2 and not torch.equal(whole.state.rho,
                                                                    torch.ones(12, dtype=D))
    for name in ("active", "converged", "diverged", "iterations", "rho"):
        assert torch.equal(getattr(compact.state, name), getattr(whole.state, name)), name
    for a, b in zip([compact.z] + compact.state.xs + compact.state.us,
                    [whole.z] + whole.state.xs + whole.state.us):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    last = compact.history[-1]
    assert last.rows is not None and last.primal_residual.shape == last.rows.shape


def test_compaction_needs_a_smooth_term_that_takes_rows():
    problem, z0 = _batch_problem(2)[0], torch.zeros(2, 1, 4, 4, dtype=D)
    with pytest.raises(ValueError, match=r"compact_below needs .*indexed=True"):
        LinearizedADMM(compact_below=0.5).solve(problem, z0)
    with pytest.raises(ValueError, match="compact_below must be a fraction"):
        ADMMSettings(compact_below=1.5)


def test_problem_select_reindexes_per_sample_data_only():
    problem, z0, _ = _rows_stopping_at_different_times(B=5, refine=True)
    idx = torch.tensor([3, 1])
    part = problem.select(idx, 5)
    fn, sub = problem.blocks[0].fn, part.blocks[0].fn
    v = torch.randn(5, 1, 6, 6, dtype=D)
    assert torch.equal(sub.prox(v[idx], 0.7), fn.prox(v, 0.7)[idx])
    assert torch.equal(part.support, problem.support[idx])
    assert torch.equal(part.smooth(v[idx]), problem.smooth(v)[idx])
    assert torch.equal(part.select(torch.tensor([1]), 2).smooth(v[[1]]), problem.smooth(v)[[1]])
    shared = Block(Box(-1.0, 1.0))
    assert shared.select(idx, 5) is shared  # nothing per sample: the same block
