"""Adversarial examples on the 8-bit grid survive a real PNG round trip (attacks.grid)."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from attacks import StrAttack
from attacks.data import load_dataset
from attacks.engine import Targets
from attacks.grid import on_grid, round_to_grid, snap_to_grid
from attacks.models import load_model
from attacks.spec import RefineSpec, SearchSpec


def test_png_round_trip_keeps_every_reported_success(tmp_path):
    model = load_model("mnist-cw")
    x, y = load_dataset("mnist-test20", n=3)
    attack = StrAttack(model, grid=True, search=SearchSpec(steps=3, iterations=60),
                       refine=True)
    res = attack(x, y, targets="random")
    assert res.grid and res.success.any()
    assert on_grid(res.adversarial)
    reloaded = []
    for i, img in enumerate(res.adversarial):
        path = tmp_path / f"adv_{i}.png"
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(path)
        reloaded.append(torch.from_numpy(np.array(Image.open(path))).float() / 255)
    reloaded = torch.stack(reloaded).unsqueeze(1)
    assert torch.equal(reloaded, res.adversarial)  # lossless: the PNG is the example
    with torch.no_grad():
        pred = model(reloaded).argmax(1)
    assert (pred[res.success] == res.targets[res.success]).all()


def test_rounding_keeps_zeros_of_delta_zero():
    torch.manual_seed(0)
    x0 = torch.randint(0, 256, (2, 1, 6, 6)).float() / 255
    delta = torch.randn(2, 1, 6, 6) * 0.05
    delta[:, :, :3] = 0
    for rounding in ("nearest", "away"):
        adv = round_to_grid(x0, delta, rounding)
        assert on_grid(adv)
        assert torch.equal(adv[:, :, :3], x0[:, :, :3])
        assert (adv >= 0).all() and (adv <= 1).all()
    away = round_to_grid(x0, delta, "away") - x0
    assert ((away * delta) >= 0).all()  # never rounds towards the clean image's other side


def test_unrepairable_sample_is_flagged_failed():
    x0 = torch.full((1, 1, 1, 1), 100 / 255)
    goal = x0 + 0.3 / 255  # the target wins only within ±0.01/255 of an off-grid value

    class Picky(nn.Module):
        def forward(self, x):
            score = 1 - 1e9 * (x.flatten(1)[:, :1] - goal.flatten(1)).pow(2)
            return torch.cat([torch.zeros_like(score), score], 1)
    tg = Targets(torch.tensor([0]), torch.tensor([1]), torch.tensor([True]))
    adv, ok = snap_to_grid(Picky(), x0, goal - x0, torch.tensor([True]), tg)
    assert not ok.any() and torch.equal(adv, x0)  # returned clean, flagged failed


def test_grid_needs_8bit_clean_images():
    tg = Targets(torch.tensor([0]), torch.tensor([1]), torch.tensor([True]))
    with pytest.raises(ValueError, match="8-bit grid"):
        snap_to_grid(nn.Flatten(), torch.full((1, 1, 2, 2), 0.1234), torch.zeros(1, 1, 2, 2),
                     torch.tensor([True]), tg)


def test_rounding_respects_the_linf_bound():
    torch.manual_seed(1)
    x0 = torch.randint(0, 256, (3, 1, 5, 5)).float() / 255
    eps = 0.1
    delta = (torch.rand(3, 1, 5, 5) * 2 - 1) * eps
    for rounding, scale in (("nearest", 1.0), ("away", 1.0), ("away", 2.0)):
        adv = round_to_grid(x0, delta, rounding, scale, eps=eps)
        assert on_grid(adv) and ((adv - x0).abs() <= eps + 1e-6).all()
