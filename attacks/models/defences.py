"""The defences the paper attacks (section 5, Table 2, appendix H), as training ingredients.

* **Defensive distillation** (Papernot et al. 2016): train a teacher on the hard labels with
  the softmax at temperature T, ``p_T(x) = softmax(z(x) / T)``; train a student of the same
  architecture at the same T on the teacher's soft labels ``p_T^teacher(x)``; deploy the
  student at T = 1, i.e. its logits z as they are (:func:`soft_labels`, :func:`distillation_loss`).
* **Robust adversarial training** (Madry et al. 2017): minimise the cross-entropy on
  ℓ∞-PGD examples, ``min_θ E max_{||δ||∞ ≤ ε, x + δ ∈ [0, 1]} CE(z(x + δ), y)``, the inner
  maximum approximated by :class:`PGD` (random start, k signed-gradient steps of size α, each
  followed by the projection onto the ε-ball ∩ [0, 1]).
* **Adversarial training by data augmentation** (Tramèr et al. 2018, as in the paper's
  appendix H): pre-generate adversarial examples of training images on an undefended model
  (this project's C&W-ℓ2 or StrAttack), keep the successful ones with their *true* labels, and
  train a fresh model on clean + adversarial images (:func:`craft_examples`,
  :func:`augmented_dataset`).

The recipes (which model, how many examples, which attack and budget) are
``attacks.training.DEFENDED``, next to the training loop (``python -m attacks.training
mnist-distill-t100 ...``): this module is handed its attack and imports none. The zoo's two
measured numbers are here too: :func:`accuracy` and :func:`robust_accuracy`. See
docs/defences.md.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Tuple, Union

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attacks.models.zoo import load_model

TrainFn = Callable[..., nn.Module]  # train_classifier, architecture and hyper-parameters bound
#: what adversarial augmentation is handed: ``(source_model, seed) -> attack``, the attack a
#: callable ``(images, labels, targets) -> AttackResult`` (``attacks.training.CraftingAttack``
#: builds this project's C&W-ℓ2 or StrAttack)
AttackFactory = Callable[[nn.Module, int], Callable[..., Any]]


# ----------------------------------------------------------------------------- distillation


def soft_labels(logits: Tensor, temperature: float) -> Tensor:
    """``softmax(z / T)`` (B, K): the teacher's soft labels at temperature T."""
    _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=1)


def distillation_loss(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean cross-entropy of ``softmax(z / T)`` against ``targets``: (B,) class indices (the
    teacher's loss) or (B, K) probability rows (the student's loss, soft labels)."""
    _check_temperature(temperature)
    return F.cross_entropy(logits / temperature, targets)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")


@attrs.frozen
class Distillation:
    """Defensive distillation at ``temperature``: teacher (seed) then student (seed + 1)."""

    temperature: float

    def fit(self, train: TrainFn, images: Tensor, labels: Tensor, *, seed: int,
            log=print) -> nn.Module:
        if log is not None:
            log(f"teacher at T = {self.temperature}")
        teacher = train(images, labels, temperature=self.temperature, seed=seed, log=log)
        if log is not None:
            log(f"student at T = {self.temperature} on the teacher's soft labels")
        return train(images, labels, temperature=self.temperature, teacher=teacher,
                     seed=seed + 1, log=log)


# ----------------------------------------------------------------------------- PGD


@attrs.frozen
class PGD:
    """Untargeted ℓ∞ projected gradient ascent (Madry et al. 2017):

        x_0 = Π(x + U(-ε, ε)),   x_{k+1} = Π(x_k + α · sign ∇_x L(z(x_k), y)),

    Π the projection onto {x' : ||x' − x||∞ ≤ ε} ∩ [0, 1]^d (clamp to the ball, then to [0, 1];
    the ball is a box around x ∈ [0, 1], so the two clamps are the exact projection).
    L: ``loss="ce"`` the cross-entropy (Madry's choice, used for training), ``"margin"`` the
    C&W margin max_{j≠y} z_j − z_y, whose gradient does not vanish when the softmax saturates
    (distilled networks).
    """

    eps: float = 0.3
    alpha: float = 0.01
    steps: int = 40
    random_start: bool = True
    loss: str = "ce"

    def __attrs_post_init__(self) -> None:
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise ValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        if self.loss not in ("ce", "margin"):
            raise ValueError(f'loss must be "ce" or "margin", got {self.loss!r}')

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        """Σ over the batch of the per-example loss L (so each example's gradient is its own)."""
        if self.loss == "ce":
            return F.cross_entropy(logits, y, reduction="sum")
        true = logits.gather(1, y.view(-1, 1)).squeeze(1)
        other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
        return (other - true).sum()

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, *, eps: Optional[float] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """Adversarial examples (B, ...) for [0, 1] images ``x`` with labels ``y`` (B,); ``eps``
        overrides ``self.eps`` (α is scaled alike, so ramps keep the step count meaningful);
        ``generator`` seeds the random start (drawn on the generator's device)."""
        eps = self.eps if eps is None else eps
        alpha = self.alpha * (eps / self.eps) if self.eps > 0 else 0.0
        x = x.detach()
        lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
        xk = x
        if self.random_start and eps > 0:
            dev = generator.device if generator is not None else x.device
            noise = torch.rand(x.shape, generator=generator, device=dev, dtype=x.dtype)
            noise = noise.to(x.device)
            xk = torch.min(torch.max(x + (2 * noise - 1) * eps, lo), hi)
        for _ in range(self.steps):
            xk = xk.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.objective(model(xk), y), xk)
            xk = torch.min(torch.max(xk.detach() + alpha * grad.sign(), lo), hi)
        return xk.detach()


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on [0, 1] ``images``."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size].to(device))
        correct += (logits.argmax(1).cpu() == labels[i : i + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(len(images), 1)


@torch.no_grad()
def _correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return model(x).argmax(1) == y


def robust_accuracy(model: nn.Module, images: Tensor, labels: Tensor,
                    pgd: Optional[PGD] = None, *, seed: int = 0, batch_size: int = 250) -> float:
    """Fraction of images classified correctly both clean and after ``pgd`` (default
    ``EVAL_PGD["pgd-ce"]``); the random starts come from
    ``torch.Generator().manual_seed(seed)``."""
    pgd = pgd or EVAL_PGD["pgd-ce"]
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"images and labels must be non-empty and of one length; got "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    gen = torch.Generator().manual_seed(seed)
    ok = 0
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
        x_adv = pgd(model, x, y, generator=gen)
        ok += int((_correct(model, x, y) & _correct(model, x_adv, y)).sum())
    model.train(was_training)
    return ok / len(images)


# the zoo's robustness protocol (ModelInfo.robust_accuracy): Madry et al.'s MNIST evaluation
# attack (ε = 0.3, 40 steps of 0.01, random start) with the cross-entropy and with the margin
# loss, on the first 500 digits of mnist-heldout (50 per class), seed 0
EVAL_PGD = {
    "pgd-ce": PGD(eps=0.3, alpha=0.01, steps=40),
    "pgd-margin": PGD(eps=0.3, alpha=0.01, steps=40, loss="margin"),
}
EVAL_DATASET = "mnist-heldout"
EVAL_PGD_IMAGES = 500


@attrs.frozen
class PGDTraining:
    """Madry et al.'s adversarial training: every batch replaced by ``pgd`` examples of the
    model being trained (eval mode during the attack); ε ramps linearly from 0 to ``pgd.eps``
    over the first ``warmup`` fraction of the steps (then stays at ``pgd.eps``)."""

    pgd: PGD
    warmup: float = 0.0

    def fit(self, train: TrainFn, images: Tensor, labels: Tensor, *, seed: int,
            log=print) -> nn.Module:
        gen = torch.Generator().manual_seed(seed + 1)

        def adversary(model: nn.Module, x: Tensor, y: Tensor, progress: float) -> Tensor:
            ramp = min(1.0, progress / self.warmup) if self.warmup > 0 else 1.0
            return self.pgd(model, x, y, eps=self.pgd.eps * ramp, generator=gen)

        return train(images, labels, adversary=adversary, seed=seed, log=log)


# ----------------------------------------------------------------------------- data augmentation


def craft_examples(attack: Callable[..., Any], images: Tensor, labels: Tensor) -> Any:
    """Targeted adversarial examples of ``images`` by ``attack`` (any callable
    ``(images, labels, targets) -> AttackResult`` built on the source model, e.g.
    ``attacks.training.CraftingAttack("strattack", 4, 100)(model)``), one seeded random
    target per image. Returns the ``AttackResult`` (failures flagged, returned clean)."""
    return attack(images, labels, "random")


def augmented_dataset(images: Tensor, labels: Tensor, adversarial: Tensor, adv_labels: Tensor,
                      success: Tensor) -> Tuple[Tensor, Tensor]:
    """Clean images followed by the *successful* adversarial examples, each with its true label:
    ``(cat(images, adversarial[success]), cat(labels, adv_labels[success]))``."""
    if adversarial.shape[1:] != images.shape[1:]:
        raise ValueError(f"adversarial examples must have the images' shape "
                         f"{tuple(images.shape[1:])} per example; got {tuple(adversarial.shape)}")
    n = adversarial.shape[0]
    if adv_labels.shape != (n,) or success.shape != (n,) or success.dtype != torch.bool:
        raise ValueError(f"adv_labels must be ({n},) labels and success a ({n},) bool mask; got "
                         f"{tuple(adv_labels.shape)} and {success.dtype} {tuple(success.shape)}")
    return torch.cat([images, adversarial[success]]), torch.cat([labels, adv_labels[success]])


@attrs.frozen
class AdversarialAugmentation:
    """Appendix H: attack the first ``images`` training digits of ``source`` (a zoo name) with
    the attack ``attack(source_model, seed)`` builds (:data:`AttackFactory`), then train a
    fresh model on clean + successful adversarial examples."""

    attack: AttackFactory
    images: int
    source: str = "mnist-lenet"

    def fit(self, train: TrainFn, images: Tensor, labels: Tensor, *, seed: int,
            log=print) -> nn.Module:
        source = load_model(self.source)
        t0 = time.perf_counter()
        result = craft_examples(self.attack(source, seed), images[: self.images],
                                labels[: self.images])
        if log is not None:
            s = result.summary()
            log(f"{self.attack} on {self.source}: {s['successes']}/{s['examples']} successful "
                f"(l0 {s['l0']:.1f}, l2 {s['l2']:.3f}) in {time.perf_counter() - t0:.0f} s")
        x, y = augmented_dataset(images, labels, result.adversarial, result.labels,
                                 result.success)
        return train(x, y, seed=seed, log=log)


#: a defence: a frozen record with ``fit(train, images, labels, *, seed, log) -> model``
Defence = Union[Distillation, PGDTraining, AdversarialAugmentation]
