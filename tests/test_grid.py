"""Adversarial examples on the 8-bit grid survive a real PNG round trip (attacks.grid)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from attacks import CWL2, Refine, StrAttack
from attacks.data import load_dataset
from attacks.targets import Targets
from attacks.grid import greedy_move, on_grid, round_to_grid, snap_to_grid
from attacks.models import load_model
from attacks.spec import SearchSpec

L = 255
TARGET_1 = Targets(torch.tensor([0]), torch.tensor([1]), torch.tensor([True]))


def png_round_trip(images, folder):
    """Each (1, H, W) image through an 8-bit PNG file and back."""
    back = []
    for i, img in enumerate(images):
        path = folder / f"adv_{i}.png"
        Image.fromarray((img[0].numpy() * L).round().astype(np.uint8)).save(path)
        back.append(torch.from_numpy(np.array(Image.open(path))).float() / L)
    return torch.stack(back).unsqueeze(1)


class Linear(nn.Module):
    """Two logits, ``[0, w·(x − x0) − T]``: class 1 wins where ``w·(x − x0) > T``."""

    def __init__(self, w, x0, threshold):
        super().__init__()
        self.w, self.x0, self.t = w.flatten(), x0.flatten(1), threshold

    def forward(self, x):
        score = (x.flatten(1) - self.x0) @ self.w - self.t
        return torch.stack([torch.zeros_like(score), score], 1)


def test_png_round_trip_keeps_every_reported_success(tmp_path):
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=3)
    attack = StrAttack(model, grid=True, search=SearchSpec(iterations=60),
                       refine=True)
    res = attack(x, y, targets="random")
    assert res.grid and res.success.any()
    assert on_grid(res.adversarial)
    reloaded = png_round_trip(res.adversarial, tmp_path)
    assert torch.equal(reloaded, res.adversarial)  # lossless: the PNG is the example
    with torch.no_grad():
        pred = model(reloaded).argmax(1)
    assert (pred[res.success] == res.targets[res.success]).all()


def test_repair_on_a_zoo_model_survives_png_and_keeps_zeros(tmp_path):
    """Boundary points of real digits (bisection towards the next digit, just past the label
    change) break when rounded; the repair restores every one on δ's support, ℓ2 ≤ +5%."""
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=7)
    x0, x1, labels = x[:6], x[1:7], y[:6]
    tg = Targets(labels, labels, torch.zeros(6, dtype=torch.bool))  # untargeted
    lo, hi = torch.zeros(6, 1, 1, 1), torch.ones(6, 1, 1, 1)
    with torch.no_grad():
        for _ in range(30):  # smallest λ with a label change along x0 + λ(x1 − x0)
            mid = (lo + hi) / 2
            flip = (model(x0 + mid * (x1 - x0)).argmax(1) != labels).view(-1, 1, 1, 1)
            hi, lo = torch.where(flip, mid, hi), torch.where(flip, lo, mid)
        delta = hi * (x1 - x0)
        success = model(x0 + delta).argmax(1) != labels
    assert success.all()
    success[5] = False  # as if the attack had failed there: stays failed, costs nothing
    snap = snap_to_grid(model, x0, delta, success, tg)
    assert torch.equal(snap.success, success)
    assert (snap.gradient_evals[:5] > 0).any() and (snap.gradient_evals[:5] == 0).any()
    assert torch.equal(snap.forward_evals, snap.gradient_evals + success.long())
    back = png_round_trip(snap.adversarial, tmp_path)
    assert torch.equal(back, snap.adversarial) and torch.equal(back[5], x0[5])
    with torch.no_grad():
        assert (model(back[:5]).argmax(1) != labels[:5]).all()
    d, ok = snap.adversarial - x0, success
    assert (d[delta == 0] == 0).all()
    assert (d.flatten(1).norm(dim=1) <= 1.05 * delta.flatten(1).norm(dim=1))[ok].all()


def test_repair_moves_few_entries_where_amplification_moves_all():
    """δ is 0.4 steps everywhere (nearest rounding drops it all) and the model listens to four
    entries. Any amplification (1+s)·δ on the grid moves all 64 entries alike — at best one
    step each, ℓ2 = 8/255; the repair moves three entries one step, ℓ2 = √3/255."""
    x0 = torch.full((1, 1, 8, 8), 128 / L)
    w = torch.full((64,), 0.05)
    w[:4] = 1.0
    delta = torch.full_like(x0, 0.4 / L)
    model = Linear(w, x0, threshold=2.799 / L)  # continuous: w·δ = 2.8/255 > T
    adversarial = lambda img: bool(model(img).argmax(1) == 1)
    assert adversarial(x0 + delta) and not adversarial(round_to_grid(x0, delta))
    snap = snap_to_grid(model, x0, delta, torch.tensor([True]), TARGET_1)
    d = (snap.adversarial - x0).flatten()
    assert snap.success.all() and on_grid(snap.adversarial)
    assert (d != 0).sum() == 3 and torch.allclose(d.norm(), torch.tensor(3 ** 0.5 / L))
    assert snap.gradient_evals.tolist() == [1] and snap.forward_evals.tolist() == [2]


def test_repair_never_moves_zeros_of_delta_and_respects_eps_and_box():
    """The steepest entries are zeros of δ (must stay x0), one already at the ℓ∞ bound and one
    at the box edge (x0 = 1, pushed up); the repair must use the flat others."""
    eps = 2 / L
    x0 = torch.full((1, 1, 8, 8), 128 / L)
    x0.view(-1)[2] = 1.0
    w = torch.ones(64)
    w[:4] = torch.tensor([10.0, 100.0, 50.0, 100.0])
    delta = torch.full_like(x0, 0.4 / L)
    delta.view(-1)[:4] = torch.tensor([eps, 0.0, -0.4 / L, 0.0])
    # continuous: 10·2 − 50·0.4 + 60·0.4 = 24 > 22.5 (in 1/255); nearest: 20 < 22.5
    model = Linear(w, x0, threshold=22.5 / L)
    snap = snap_to_grid(model, x0, delta, torch.tensor([True]), TARGET_1, eps=eps)
    d = (snap.adversarial - x0).flatten() * L
    assert snap.success.all()
    assert d[1] == 0 and d[3] == 0                          # zeros of δ stay exactly zero
    assert (d.abs() <= 2 + 1e-4).all() and torch.isclose(d[0], torch.tensor(2.0))  # ε
    assert snap.adversarial.max() <= 1 and d[2] == 0         # the box edge held
    assert (d[4:].round() == 1).sum() == 3 and torch.isclose(d.sum(), torch.tensor(5.0))


def test_greedy_move_takes_largest_gradients_until_the_need_is_covered():
    g = torch.tensor([[3.0, -5.0, 1.0, -2.0, 4.0]])
    k = torch.zeros_like(g)
    free = torch.ones_like(g, dtype=torch.bool)
    lo, hi = torch.full_like(g, -9), torch.full_like(g, 9)
    move = greedy_move(g, k, free, lo, hi, torch.tensor([9.5 / L]))
    assert move.tolist() == [[-1.0, 1.0, 0.0, 0.0, -1.0]]  # 5 + 4 < 9.5 ≤ 5 + 4 + 3
    move = greedy_move(g, k, free, lo, hi, torch.tensor([0.0]))
    assert move.tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0]]  # at least one entry


def test_rounding_keeps_zeros_of_delta_zero():
    torch.manual_seed(0)
    x0 = torch.randint(0, 256, (2, 1, 6, 6)).float() / L
    delta = torch.randn(2, 1, 6, 6) * 0.05
    delta[:, :, :3] = 0
    adv = round_to_grid(x0, delta)
    assert on_grid(adv)
    assert torch.equal(adv[:, :, :3], x0[:, :, :3])
    assert (adv >= 0).all() and (adv <= 1).all()
    assert ((adv - (x0 + delta).clamp(0, 1)).abs() <= 0.5 / L + 1e-6).all()  # nearest


def test_unrepairable_sample_is_flagged_failed():
    x0 = torch.full((1, 1, 1, 1), 100 / L)
    goal = x0 + 0.3 / L  # the target wins only within ±0.01/255 of an off-grid value

    class Picky(nn.Module):
        def forward(self, x):
            score = 1 - 1e9 * (x.flatten(1)[:, :1] - goal.flatten(1)).pow(2)
            return torch.cat([torch.zeros_like(score), score], 1)
    snap = snap_to_grid(Picky(), x0, goal - x0, torch.tensor([True]), TARGET_1, rounds=4)
    assert not snap.success.any() and torch.equal(snap.adversarial, x0)  # clean, flagged failed
    assert snap.gradient_evals.tolist() == [4] and snap.forward_evals.tolist() == [5]


def test_grid_needs_8bit_clean_images():
    with pytest.raises(ValueError, match="8-bit grid"):
        snap_to_grid(nn.Flatten(), torch.full((1, 1, 2, 2), 0.1234), torch.zeros(1, 1, 2, 2),
                     torch.tensor([True]), TARGET_1)
    with pytest.raises(ValueError, match="rounds"):
        snap_to_grid(nn.Flatten(), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2),
                     torch.tensor([True]), TARGET_1, rounds=-1)


def test_rounding_respects_the_linf_bound():
    torch.manual_seed(1)
    x0 = torch.randint(0, 256, (3, 1, 5, 5)).float() / L
    eps = 0.1
    delta = (torch.rand(3, 1, 5, 5) * 2 - 1) * eps
    adv = round_to_grid(x0, delta, eps=eps)
    assert on_grid(adv) and ((adv - x0).abs() <= eps + 1e-6).all()


def test_refine_with_grid_returns_grid_examples_that_stay_adversarial():
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=3)
    t = (y + 1) % 10
    raw = CWL2(model, search=SearchSpec(iterations=60))(x, y, t)
    assert raw.success.all()
    res = Refine(model, iterations=60, grid=True)(x, y, raw.delta, t)
    assert res.grid and on_grid(res.adversarial)
    assert res.success.all()
    with torch.no_grad():
        pred = model(res.adversarial).argmax(1)
    assert (pred[res.success] == t[res.success]).all()
    assert ((res.delta != 0) & (raw.delta == 0)).sum() == 0  # still on the given support
