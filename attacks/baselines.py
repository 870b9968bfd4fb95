"""FGM and IFGSM (Goodfellow et al. 2015; Kurakin et al. 2017), ℓ∞ and ℓ2, as the paper's
reference points: each with the smallest successful ε found per sample by bisection; and ℓ∞
PGD at a fixed ε (Madry et al. 2017), the reference of the ε-bounded attacks.

Targeted steps descend the cross-entropy of the target, untargeted ones ascend that of the
label. IFGSM takes ``iterations`` steps of ε/iterations (the paper: 10), projecting onto the
ε-ball and [0, 1] after each.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from admmkit.solver.state import batch_where
from attacks.classifier import Classifier, in_eval_mode
from attacks.grid import snap_to_grid
from attacks.losses import is_adversarial
from attacks.pgd import PGD_LOSSES, pgd, random_start
from attacks.result import AttackResult, build_result
from attacks.spec import GroupSpec
from attacks.targets import TargetChoice, Targets, expand_targets
from attacks.verify import Evaluations, Outcome, verify

NORMS = ("inf", "2")


def _view(t: Tensor, like: Tensor) -> Tensor:
    return t.view(-1, *([1] * (like.dim() - 1)))


class GradientAttack:
    """``iterations`` signed (ℓ∞) or normalised (ℓ2) gradient steps of size ε/iterations."""

    name = "ifgsm"

    def __init__(self, model: nn.Module, *, norm: str = "inf", iterations: int = 10,
                 search_steps: int = 12, eps_max: Optional[float] = None,
                 normalize: Optional[tuple] = None, seed: int = 0, grid: bool = False):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
        for key, v in (("iterations", iterations), ("search_steps", search_steps)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{key} must be a positive integer; got {v!r}")
        if eps_max is not None and not eps_max > 0:
            raise ValueError(f"eps_max must be positive; got {eps_max!r}")
        self.norm, self.iterations, self.search_steps = norm, iterations, search_steps
        self.eps_max = eps_max
        self.classifier = Classifier(model, normalize)
        self.seed = seed
        self.grid = grid
        self.name = f"{'fgm' if iterations == 1 else 'ifgsm'}-l{norm}"

    def _direction(self, x: Tensor, tg: Targets) -> Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            logits = self.classifier(x)
            cls = torch.where(tg.targeted, tg.targets, tg.labels)
            sign = torch.where(tg.targeted, -1.0, 1.0).to(x.dtype)
            loss = (sign * F.cross_entropy(logits, cls, reduction="none")).sum()
            (g,) = torch.autograd.grad(loss, x)
        if self.norm == "inf":
            return g.sign()
        return g / _view(g.flatten(1).norm(dim=1).clamp_min(1e-12), g)

    def perturb(self, x0: Tensor, tg: Targets, eps: Tensor) -> Tensor:
        """The adversarial image for per-sample ``eps`` (B,)."""
        e = _view(eps, x0)
        x = x0
        for _ in range(self.iterations):
            x = x + (e / self.iterations) * self._direction(x, tg)
            d = x - x0
            if self.norm == "inf":
                d = torch.maximum(torch.minimum(d, e), -e)
            else:
                d = d * torch.clamp(e / _view(d.flatten(1).norm(dim=1).clamp_min(1e-12), d), max=1)
            x = (x0 + d).clamp(0, 1)
        return x

    @in_eval_mode
    def __call__(self, images: Tensor, labels: Tensor, targets: TargetChoice = None
                 ) -> AttackResult:
        x0, index, tg = baseline_inputs(self.classifier, images, labels, targets, self.seed)
        b = x0.shape[0]
        top = self.eps_max or (1.0 if self.norm == "inf" else math.sqrt(x0[0].numel()))
        lo = torch.zeros(b, dtype=x0.dtype, device=x0.device)
        hi = torch.full_like(lo, top)
        best = torch.zeros_like(x0)
        found = torch.zeros(b, dtype=torch.bool, device=x0.device)
        eps = hi.clone()
        for _ in range(self.search_steps + 1):  # ε_max first, then bisection
            adv = self.perturb(x0, tg, eps)
            with torch.no_grad():
                ok = is_adversarial(self.classifier(adv), tg.labels, tg.targets, tg.targeted)
            best = batch_where(ok, adv - x0, best)
            found = found | ok
            hi = torch.where(ok, eps, hi)
            lo = torch.where(ok, lo, eps)
            eps = (lo + hi) / 2
        # one gradient per IFGSM step of each ε tried, one check per ε, then the verification
        evals = Evaluations.zeros(b, x0.device)
        evals.gradient += (self.search_steps + 1) * self.iterations
        evals.forward += self.search_steps + 1
        adv, success = verify(self.classifier, x0, best, found, tg, evals)
        if self.grid:  # round, re-verify, repair; its evaluations are counted
            snap = snap_to_grid(self.classifier, x0, adv - x0, success, tg)
            adv, success = snap.adversarial, snap.success
            evals.gradient += snap.gradient_evals
            evals.forward += snap.forward_evals
        return baseline_result(self.name, x0, index, tg, adv, success, hi, evals, self.grid)


def FGM(model: nn.Module, *, norm: str = "inf", **kw) -> GradientAttack:
    """Fast gradient method: one step of size ε."""
    return GradientAttack(model, norm=norm, iterations=1, **kw)


def IFGSM(model: nn.Module, *, norm: str = "inf", iterations: int = 10, **kw) -> GradientAttack:
    """Iterative FGSM: ``iterations`` steps of ε/iterations (paper: 10)."""
    return GradientAttack(model, norm=norm, iterations=iterations, **kw)


class PGD:
    """ℓ∞ PGD at a fixed ε (Madry et al. 2017; the iteration: :func:`attacks.pgd.pgd`): a
    random start in the ε-ball (``random_start``, drawn from ``seed``), then ``steps``
    signed-gradient steps of ``step_size`` (default 2.5·ε/steps, Madry et al.'s rule) on the
    cross-entropy (``loss="ce"``) or the C&W margin (``"margin"``), each projected onto the
    ε-ball ∩ [0, 1]. An example stops at its first adversarial iterate; the answer is verified
    by a fresh forward pass like every other attack's. ``c`` of the result is ε."""

    name = "pgd"

    def __init__(self, model: nn.Module, *, eps: float, steps: int = 100,
                 step_size: Optional[float] = None, loss: str = "ce", random_start: bool = True,
                 normalize: Optional[tuple] = None, seed: int = 0):
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
            raise ValueError(f"eps must be a positive finite number; got {eps!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise ValueError(f"steps must be a positive integer; got {steps!r}")
        if step_size is not None and not 0 < step_size < math.inf:
            raise ValueError(f"step_size must be a positive finite number; got {step_size!r}")
        if loss not in PGD_LOSSES:
            raise ValueError(f"loss must be one of {PGD_LOSSES}; got {loss!r}")
        self.eps, self.steps, self.loss = float(eps), steps, loss
        self.step_size = 2.5 * self.eps / steps if step_size is None else float(step_size)
        self.random_start, self.seed = random_start, seed
        self.classifier = Classifier(model, normalize)

    @in_eval_mode
    def __call__(self, images: Tensor, labels: Tensor, targets: TargetChoice = None
                 ) -> AttackResult:
        x0, index, tg = baseline_inputs(self.classifier, images, labels, targets, self.seed)
        start = random_start(x0, self.eps, self.seed) if self.random_start else None
        run = pgd(self.classifier, x0, tg, self.eps, self.steps, self.step_size, loss=self.loss,
                  start=start)
        evals = Evaluations.zeros(x0.shape[0], x0.device)
        evals.gradient += run.gradient_evals
        adv, success = verify(self.classifier, x0, run.delta, torch.ones_like(run.found), tg,
                              evals)
        eps = torch.full_like(success, self.eps, dtype=x0.dtype)
        return baseline_result(self.name, x0, index, tg, adv, success, eps, evals)


def baseline_inputs(classifier: Classifier, images: Tensor, labels: Tensor,
                    targets: TargetChoice, seed: int):
    """``(x0, index, tg)``: the checked images, one row per example, and their targets."""
    images, labels = classifier.check_inputs(images, labels)
    index, tg = expand_targets(labels, classifier.num_classes, targets, seed)
    return images.index_select(0, index), index, tg


def baseline_result(name: str, x0: Tensor, index: Tensor, tg: Targets, adv: Tensor,
                    success: Tensor, c: Tensor, evals: Evaluations, grid: bool = False
                    ) -> AttackResult:
    """A baseline's verified examples as an :class:`AttackResult` (``c``: its ε per example,
    NaN where it failed; no refine)."""
    outcome = Outcome(adversarial=adv, success=success,
                      c=torch.where(success, c, torch.full_like(c, math.nan)),
                      gradient_evals=evals.gradient, forward_evals=evals.forward,
                      refined=torch.zeros_like(success), nonfinite=evals.nonfinite)
    groups = GroupSpec().resolve(tuple(x0.shape[1:]))
    return build_result(name, x0, index, tg, outcome, groups, grid=grid)
