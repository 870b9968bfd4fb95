"""attacks.models.defences: distillation, PGD (training), adversarial augmentation, on tiny models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attacks.data import load_dataset
from attacks import training
from attacks.models import defences, list_models, load_model, model_info
from attacks.models.defences import (
    PGD,
    AdversarialAugmentation,
    Distillation,
    PGDTraining,
    augmented_dataset,
    craft_examples,
    distillation_loss,
    robust_accuracy,
    soft_labels,
)
from attacks.training import DEFENDED, CraftingAttack


def _linear(classes: int = 3, side: int = 4, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(side * side, classes)).eval()


# ----------------------------------------------------------------------------- distillation


def test_soft_labels_and_loss_scale_the_logits_by_the_temperature():
    z = torch.tensor([[2.0, 0.0, -1.0], [10.0, 20.0, 0.0]])
    for t in (1.0, 10.0, 100.0):
        p = soft_labels(z, t)
        e = torch.exp(z / t)
        assert torch.allclose(p, e / e.sum(1, keepdim=True))
        y = torch.tensor([0, 2])
        hard = -torch.log(p[torch.arange(2), y]).mean()
        assert torch.allclose(distillation_loss(z, y, t), hard)
        q = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
        assert torch.allclose(distillation_loss(z, q, t), -(q * torch.log(p)).sum(1).mean())
    # high temperature: soft labels tend to uniform, and z -> T z leaves softmax(z / T) unchanged
    assert (soft_labels(z, 1e4) - 1 / 3).abs().max() < 1e-3
    assert torch.allclose(soft_labels(50 * z, 50.0), soft_labels(z, 1.0))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        soft_labels(z, 0.0)


def test_distillation_recipe_teacher_then_student_at_the_same_temperature():
    calls = []
    x, y = torch.rand(6, 1, 4, 4), torch.arange(6) % 3

    def fake_train(images, labels, **kw):
        calls.append(kw)
        return _linear(seed=len(calls))

    student = Distillation(50.0).fit(fake_train, x, y, seed=7, log=None)
    teacher_kw, student_kw = calls
    assert teacher_kw == dict(temperature=50.0, seed=7, log=None)
    assert student_kw["temperature"] == 50.0 and student_kw["seed"] == 8
    assert isinstance(student_kw["teacher"], nn.Module) and student_kw["teacher"] is not student
    # deployed as returned: the student's own logits, no temperature applied
    assert isinstance(student, nn.Sequential)


def test_train_classifier_distils_from_the_teachers_soft_labels(monkeypatch):
    """The student's loss is CE(softmax(z / T), softmax(z_teacher / T)) on the very batch the
    teacher saw, and the returned model outputs z itself."""
    x, y = load_dataset("mnist-train4k", n=16)
    seen, losses = [], []

    class Teacher(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _linear(10, 28)

        def forward(self, b):
            seen.append(b.clone())
            return self.net(b)

    def spy(logits, target, temperature):
        losses.append((logits.detach(), target, temperature))
        return distillation_loss(logits, target, temperature)

    monkeypatch.setattr(training, "distillation_loss", spy)
    teacher = Teacher()
    model = training.train_classifier("mnist-mlp", x, y, epochs=1, batch_size=8, lr=1e-3,
                                      max_steps=2, augment=False, log=None, temperature=20.0,
                                      teacher=teacher)
    assert len(seen) == len(losses) == 2
    for batch, (_, target, t) in zip(seen, losses):
        assert t == 20.0 and target.shape == (8, 10)
        assert torch.allclose(target, soft_labels(teacher.net(batch), 20.0))
    assert torch.allclose(model(x[:3]), model.net(model.normalize(x[:3])))


# ----------------------------------------------------------------------------- PGD


def test_pgd_one_step_known_answer():
    """Linear model, no random start, one step of size ε from x = 0.5: the step is ε·sign of
    ∇_x CE = ε·sign(Σ_c p_c w_c − w_y), inside [0, 1] so nothing is clipped."""
    model = _linear()
    w = model[1].weight
    x = torch.full((2, 1, 4, 4), 0.5)
    y = torch.tensor([0, 2])
    out = PGD(eps=0.1, alpha=0.1, steps=1, random_start=False)(model, x, y)
    p = torch.softmax(model(x), 1)
    grad = p @ w - w[y]
    assert torch.allclose(out, x + 0.1 * grad.sign().view_as(x))


def test_pgd_stays_in_the_ball_and_the_box_and_increases_the_loss():
    model = _linear(seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 4, 4, generator=g)
    x[:, :, 0] = 0.0  # pixels on the box boundary
    x[:, :, 1] = 1.0
    y = torch.randint(0, 3, (32,), generator=g)
    for pgd in (PGD(eps=0.3, alpha=0.1, steps=5), PGD(eps=0.05, alpha=0.2, steps=3, random_start=False)):
        out = pgd(model, x, y, generator=torch.Generator().manual_seed(1))
        assert ((out - x).abs() <= pgd.eps + 1e-6).all()
        assert (out >= 0).all() and (out <= 1).all()
        assert out.shape == x.shape and not out.requires_grad
    # CE of a linear model is convex in x, so a projected signed-gradient step never lowers it
    out = PGD(eps=0.3, alpha=0.1, steps=3, random_start=False)(model, x, y)
    before = F.cross_entropy(model(x), y, reduction="none")
    after = F.cross_entropy(model(out), y, reduction="none")
    assert (after >= before - 1e-6).all() and (after > before + 1e-3).float().mean() > 0.9
    # deterministic given the generator; eps=0 returns the images
    a = PGD()(model, x, y, generator=torch.Generator().manual_seed(3))
    b = PGD()(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(PGD()(model, x, y, eps=0.0), x)


def test_pgd_rejects_bad_parameters():
    for kw, field in ((dict(eps=-0.1), "eps"), (dict(alpha=0.0), "alpha"), (dict(steps=-1), "steps")):
        with pytest.raises(ValueError, match=field):
            PGD(**kw)


def test_pgd_training_ramps_eps_and_trains_on_adversarial_batches():
    model = _linear()
    x, y = torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    seen = {}

    def fake_train(images, labels, *, adversary, seed, log):
        for progress in (0.0, 0.1, 0.5, 0.9):
            seen[progress] = (adversary(model, x, y, progress) - x).abs().max().item()
        return model

    PGDTraining(PGD(eps=0.3, alpha=0.1, steps=3), warmup=0.2).fit(fake_train, x, y, seed=0, log=None)
    assert seen[0.0] == 0.0
    assert 0 < seen[0.1] <= 0.15 + 1e-6  # half-way through the warm-up: ε = 0.15
    assert 0.15 < seen[0.5] <= 0.3 + 1e-6 and 0.15 < seen[0.9] <= 0.3 + 1e-6


def test_train_classifier_attacks_each_batch_in_eval_mode():
    x, y = load_dataset("mnist-train4k", n=16)
    modes = []

    def adversary(model, b, t, progress):
        modes.append((model.training, progress))
        return PGD(eps=0.3, alpha=0.1, steps=1)(model, b, t)

    model = training.train_classifier("mnist-mlp", x, y, epochs=1, batch_size=8, lr=1e-3,
                                      max_steps=2, log=None, adversary=adversary)
    assert modes == [(False, 0.0), (False, 0.5)] and not model.training


def test_robust_accuracy_on_a_tiny_model():
    model = _linear(seed=2)
    x = torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    y[:5] = (y[:5] + 1) % 3  # five wrong labels: never robustly correct
    assert robust_accuracy(model, x, y, PGD(eps=0.0)) == 0.75
    assert robust_accuracy(model, x, y, PGD(eps=1.0, alpha=0.5, steps=4)) == 0.0  # whole box
    with pytest.raises(ValueError, match="non-empty and of one length"):
        robust_accuracy(model, x, y[:3])


# ----------------------------------------------------------------------------- augmentation


def test_augmented_dataset_appends_only_successful_examples_with_true_labels():
    x, y = torch.zeros(3, 1, 4, 4), torch.tensor([0, 1, 2])
    adv = torch.arange(2, dtype=torch.float32).view(2, 1, 1, 1).expand(2, 1, 4, 4) + 5
    xa, ya = augmented_dataset(x, y, adv, torch.tensor([2, 1]), torch.tensor([False, True]))
    assert xa.shape == (4, 1, 4, 4) and torch.equal(xa[:3], x) and (xa[3] == 6).all()
    assert ya.tolist() == [0, 1, 2, 1]
    with pytest.raises(ValueError, match="images' shape"):
        augmented_dataset(x, y, torch.zeros(2, 1, 5, 5), torch.tensor([0, 1]), torch.tensor([True, True]))
    with pytest.raises(ValueError, match="bool mask"):
        augmented_dataset(x, y, adv, torch.tensor([0, 1]), torch.tensor([1, 0]))


@pytest.mark.parametrize("attack", ["cw-l2", "strattack"])
def test_craft_examples_targets_the_source_and_keeps_true_labels(attack):
    model = _linear(10, 28, seed=3)
    x, _ = load_dataset("mnist-train4k", n=4)
    y = model(x).argmax(1)
    r = craft_examples(CraftingAttack(attack, steps=4, iterations=30, refine_iterations=10)(model),
                       x, y)
    assert r.success.any() and torch.equal(r.labels, y) and (r.targets != y).all()
    pred = model(r.adversarial).argmax(1)
    assert torch.equal(pred[r.success], r.targets[r.success])
    assert torch.equal(r.adversarial[~r.success], x[~r.success])
    with pytest.raises(ValueError, match="attack must be"):
        CraftingAttack("fgsm", steps=1, iterations=1)


def test_adversarial_augmentation_recipe_trains_on_clean_plus_adversarial():
    x, y = load_dataset("mnist-train4k", n=8)
    got = {}

    def fake_train(images, labels, *, seed, log):
        got.update(images=images, labels=labels, seed=seed)
        return _linear()

    handed = []

    def factory(model, seed):  # the defence is handed its attack
        handed.append((model, seed))
        return CraftingAttack("cw-l2", steps=3, iterations=30)(model, seed)

    AdversarialAugmentation(factory, 3).fit(fake_train, x, y, seed=4, log=None)
    assert [seed for _, seed in handed] == [4]
    assert torch.equal(handed[0][0](x), load_model("mnist-lenet")(x))  # the source model
    n = len(got["labels"])
    assert 8 < n <= 11 and got["seed"] == 4
    assert torch.equal(got["images"][:8], x) and torch.equal(got["labels"][:8], y)
    assert torch.equal(got["labels"][8:], y[: n - 8])  # true labels of the attacked digits
    assert not torch.equal(got["images"][8:], x[: n - 8])


# ----------------------------------------------------------------------------- zoo


def test_every_defended_recipe_is_a_zoo_model_of_a_trainable_architecture():
    names = {i.name for i in list_models()}
    for name, (arch, defence) in DEFENDED.items():
        assert name in names and arch in training.ARCHITECTURES
        assert model_info(name).accuracy["mnist-heldout"] >= 0.9
        assert isinstance(defence, (Distillation, PGDTraining, AdversarialAugmentation))


@pytest.fixture(scope="module")
def heldout100():
    return load_dataset("mnist-heldout", n=100)


def test_pgd_model_is_robust_and_its_twin_is_not(heldout100):
    """The recorded robust accuracies re-measured on the first 100 of their 500 digits (±0.1);
    the undefended twin falls to the same attacks."""
    recorded = model_info("mnist-pgd").robust_accuracy
    model = load_model("mnist-pgd")
    for key in ("pgd-ce", "pgd-margin"):
        robust = robust_accuracy(model, *heldout100, defences.EVAL_PGD[key])
        assert robust == pytest.approx(recorded[key], abs=0.1) and robust > 0.6
    assert robust_accuracy(load_model("mnist-lenet"), *heldout100) == 0.0
    assert defences.EVAL_PGD["pgd-ce"] == PGD(eps=0.3, alpha=0.01, steps=40)


def test_distillation_masks_cross_entropy_gradients_only(heldout100):
    """At T = 100 the student's softmax saturates: cross-entropy PGD barely moves it, the
    margin loss (logits, like the C&W and ADMM attacks) breaks it."""
    model = load_model("mnist-distill-t100")
    ce = robust_accuracy(model, *heldout100, defences.EVAL_PGD["pgd-ce"])
    margin = robust_accuracy(model, *heldout100, defences.EVAL_PGD["pgd-margin"])
    assert ce > 0.8 and margin < 0.05


def test_train_command_trains_a_defended_recipe(tmp_path):
    out = tmp_path / "d.pt"
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        summary = training.main(["mnist-distill-t10", "--out", str(out), "--epochs", "1",
                                 "--limit", "32", "--batch-size", "32", "--threads", "1"])
    finally:  # main() sets both for the whole process
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    assert summary["model"] == "mnist-distill-t10" and summary["arch"] == "mnist-lenet"
    assert summary["defence"] == "Distillation(temperature=10.0)" and summary["epochs"] == 1
    assert load_model("mnist-distill-t10", weights=out)(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_pgd_margin_loss_known_answer_and_validation():
    """Margin loss: one step moves along sign(w_j − w_y), j the best other class."""
    model = _linear()
    w = model[1].weight
    x = torch.full((2, 1, 4, 4), 0.5)
    y = torch.tensor([0, 2])
    z = model(x)
    j = z.masked_fill(F.one_hot(y, 3).bool(), float("-inf")).argmax(1)
    out = PGD(eps=0.1, alpha=0.1, steps=1, random_start=False, loss="margin")(model, x, y)
    assert torch.allclose(out, x + 0.1 * (w[j] - w[y]).sign().view_as(x))
    pgd = PGD(loss="margin")
    assert torch.allclose(pgd.objective(z, y), (z[torch.arange(2), j] - z[torch.arange(2), y]).sum())
    with pytest.raises(ValueError, match="loss must be"):
        PGD(loss="l2")
