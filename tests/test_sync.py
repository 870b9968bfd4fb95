"""No host-device synchronisation inside the iteration loop: at most one per ``check_every``
iterations (the solver's count of active rows at a check), none at the other iterations.

Counted on the CPU by :class:`admmkit.testing.sync.SyncCounter` (it patches the tensor methods
that force a synchronisation on a GPU); with a GPU, by torch's CUDA sync debug mode."""

import pytest
import torch

import attacks
from admmkit.groups import SlidingGroups
from admmkit.problem import Block, Problem
from admmkit.prox import BoxLinf, GroupL2, SquaredL2
from admmkit.smooth import Smooth
from admmkit.solver import ADMMSettings, LinearizedADMM
from admmkit.testing.sync import SyncCounter
from attacks.data import load_dataset
from attacks.models import load_model
from attacks.spec import SearchSpec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU"))]


def counting(device):
    """Syncs attributed to (solve, iteration): iteration 0 is a solve's set-up."""
    return SyncCounter(device, scope=(LinearizedADMM, "solve"),
                       step_on=(LinearizedADMM, "x_steps"))


def loop_violations(sync, check_every, only=None):
    """Iterations that synchronised more than the rule allows: none outside a check (every
    ``check_every``-th and each solve's last iteration), at most one at a check. ``only``:
    count only events whose caller's path contains this string."""
    events = [e for e in sync.events if e.call > 0 and e.step > 0
              and (only is None or only in e.where)]
    per_step = {}
    for e in events:
        per_step.setdefault((e.call, e.step), []).append(e)
    bad = []
    for (call, k), found in sorted(per_step.items()):
        allowed = 1 if k % check_every == 0 or k == sync.steps[call] else 0
        if len(found) > allowed:
            bad.append(f"solve {call}, iteration {k}: "
                       + ", ".join(f"{e.name} at {e.where}" for e in found))
    return bad


def strattack_shaped(device, batch=4, seed=0):
    """γ‖δ‖² + τ Σ_G ‖δ_G‖ + 1{x0 + δ ∈ [0, 1], ‖δ‖∞ ≤ ε} with a smooth loss: per-sample
    bounds, sliding groups, a non-quadratic smooth term."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.rand(batch, 1, 8, 8, generator=gen).to(device)
    w = torch.randn(batch, 1, 8, 8, generator=gen).to(device)
    groups = SlidingGroups((1, 8, 8), 2, 2)
    def f(z, rows):
        ww, xx = (w, x0) if rows is None else (w.index_select(0, rows), x0.index_select(0, rows))
        return torch.nn.functional.softplus((ww * (xx + z)).flatten(1).sum(1))
    smooth = Smooth(f, indexed=True)
    problem = Problem([Block(SquaredL2(1.0), name="l2"), Block(GroupL2(0.5), groups),
                       Block(BoxLinf(-x0, 1 - x0, 0.3), name="valid")], smooth=smooth)
    return problem, torch.zeros_like(x0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("settings", [ADMMSettings(max_iter=60, tol_abs=0.0, tol_rel=0.0),
                                      ADMMSettings(max_iter=57, check_every=7,
                                                   adaptive_rho=True)],
                         ids=["fixed", "stopping-adaptive"])
def test_admmkit_loop_synchronises_once_per_check(device, settings):
    problem, z0 = strattack_shaped(device)
    with counting(device) as sync:
        LinearizedADMM(settings).solve(problem, z0)
    bad = loop_violations(sync, settings.check_every)
    assert bad == [], "\n".join(bad + [sync.report()])
    checks = sync.steps[1] // settings.check_every + (sync.steps[1] % settings.check_every > 0)
    in_loop = sum(1 for e in sync.events if e.step > 0)
    assert in_loop <= checks, sync.report()


@pytest.mark.parametrize("device", DEVICES)
def test_compaction_adds_no_synchronisation(device):
    problem, z0 = strattack_shaped(device, batch=6)
    caps = torch.tensor([10, 10, 13, 10, 40, 10], device=device)
    sizes = []

    def capped(info):
        sizes.append(info.state.batch_size)
        rows = torch.arange(6, device=device) if info.rows is None else info.rows
        return info.state.iterations >= caps.index_select(0, rows)

    with counting(device) as sync:
        LinearizedADMM(max_iter=40, tol_abs=0.0, tol_rel=0.0, compact_below=0.6).solve(
            problem, z0, callback=capped)
    assert sizes[9] == 6 and sizes[10] == 2 and sizes[-1] == 1  # compacted at 10 and 20
    bad = loop_violations(sync, 10)
    assert bad == [], "\n".join(bad + [sync.report()])


@pytest.mark.parametrize("device", DEVICES)
def test_caps_compact_where_rows_end_without_synchronising(device):
    """Per-sample ``caps``: rows stop at their cap, and the batch compacts right there (13 and
    27 are no checks) with the same results as without compaction."""
    problem, z0 = strattack_shaped(device, batch=6)
    caps = torch.tensor([13, 13, 27, 13, 40, 13], device=device)
    sizes = []
    settings = ADMMSettings(max_iter=50, tol_abs=0.0, tol_rel=0.0)
    whole = LinearizedADMM(settings).solve(problem, z0, caps=caps)
    with counting(device) as sync:
        part = LinearizedADMM(settings, compact_below=0.9).solve(
            problem, z0, caps=caps, callback=lambda info: sizes.append(info.state.batch_size))
    assert sizes[12] == 6 and sizes[13] == 2 and sizes[27] == 1 and len(sizes) == 40
    assert torch.equal(part.iterations, caps) and torch.equal(whole.iterations, caps)
    # up to the last bits of the softplus (a vector or a scalar code path by row position)
    torch.testing.assert_close(part.z, whole.z, rtol=0, atol=1e-6)
    bad = loop_violations(sync, 10)
    assert bad == [], "\n".join(bad + [sync.report()])


@pytest.mark.parametrize("device", DEVICES)
def test_counter_sees_an_item_in_the_loop(device, monkeypatch):
    """The rule above fails on one stray ``.item()`` per iteration: the test can fail."""
    problem, z0 = strattack_shaped(device)
    dual_step = LinearizedADMM.dual_step

    def reading(self, problem, s, xs, z):
        s.rho.max().item()  # a host read inside every iteration
        return dual_step(self, problem, s, xs, z)

    monkeypatch.setattr(LinearizedADMM, "dual_step", reading)
    with counting(device) as sync:
        LinearizedADMM(max_iter=20, tol_abs=0.0, tol_rel=0.0).solve(problem, z0)
    bad = loop_violations(sync, 10)
    assert len(bad) == 20, sync.report()  # every iteration, the two checks included
    assert bad[0].startswith("solve 1, iteration 1: Tensor.item at ") and "test_sync.py" in bad[0]


def small_strattack(device):
    """StrAttack on 2 MNIST images with a short search (23 iterations, a 17-iteration rescue)
    and the default refine."""
    model = load_model("mnist-cw", device)
    images, labels = load_dataset("mnist-test20", n=2)
    search = SearchSpec(iterations=23, rescue_iterations=17, track_every=5)
    return attacks.StrAttack(model, search=search, grid=False), images.to(device), labels.to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_strattack_solver_loop_synchronises_once_per_check(device):
    """A StrAttack run (search, rescue, refine): admmkit's own synchronisations follow the
    rule."""
    attack, images, labels = small_strattack(device)
    with counting(device) as sync:
        attack(images, labels)
    assert len(sync.steps) - 1 >= 2  # the search's solve and the refine's
    bad = loop_violations(sync, 10, only="/admmkit/")
    assert bad == [], "\n".join(bad + [sync.report()])


@pytest.mark.parametrize("device", DEVICES)
def test_strattack_synchronises_once_per_check(device):
    """The whole loop — solver, loss term, the tracker's checks and bookkeeping, compaction —
    synchronises at most once per check, in the search, its rescue and the refine."""
    attack, images, labels = small_strattack(device)
    with counting(device) as sync:
        attack(images, labels)
    bad = loop_violations(sync, 10)
    assert bad == [], "\n".join(bad + [sync.report()])


# -- the counter itself ----------------------------------------------------------------------
def test_counter_counts_each_kind_once_and_restores_torch():
    t = torch.tensor([1.0, -2.0, 3.0])
    item, getitem = torch.Tensor.item, torch.Tensor.__getitem__
    with SyncCounter() as sync:
        t.sum().item()
        bool(t.any())
        float(t[0])
        t[t > 0]  # boolean mask: a data-dependent shape
        t[1:]  # a view: no synchronisation
        torch.nonzero(t)
        t.tolist()
        repr(t)  # reads every value, counted once
        (t * 2).exp()  # arithmetic: none
    names = [e.name for e in sync.events]
    assert names == ["Tensor.item", "Tensor.__bool__", "Tensor.__float__",
                     "Tensor.__getitem__[bool]", "torch.nonzero", "Tensor.tolist",
                     "Tensor.__repr__"]
    assert all(e.where.endswith(f"test_sync.py:{e.where.rsplit(':', 1)[1]}")
               for e in sync.events)
    assert torch.Tensor.item is item and torch.Tensor.__getitem__ is getitem
    assert "item" not in torch.Tensor.__dict__


def test_counter_attributes_events_to_calls_and_steps():
    class Loop:
        def run(self, n):
            for _ in range(n):
                self.iteration()
            return bool(torch.tensor(True))

        def iteration(self):
            torch.ones(2).sum().item()

    run = Loop.__dict__["run"]
    with SyncCounter(scope=(Loop, "run"), step_on=(Loop, "iteration")) as sync:
        bool(torch.tensor(True))
        Loop().run(3)
        Loop().run(1)
    assert sync.steps == [0, 3, 1]
    assert sync.per_step() == {(0, 0): 1, (1, 1): 1, (1, 2): 1, (1, 3): 2, (2, 1): 2}
    assert Loop.__dict__["run"] is run  # unpatched
